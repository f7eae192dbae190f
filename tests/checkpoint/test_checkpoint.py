"""Checkpointing the data iterator with Orbax: exact resume, crashes and bad files."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ckpt_pipelines import learnable, rest, scale_of, set_scale

from datarax.checkpoint import (
    CheckpointDependencyError,
    load_iterator_state,
    save_iterator_state,
)
from datarax.core.errors import DataraxError, StateError

ocp = pytest.importorskip("orbax.checkpoint")
from datarax.checkpoint import (  # noqa: E402
    NNXCheckpointHandler,
    NNXCheckpointRestore,
    NNXCheckpointSave,
)

pytestmark = pytest.mark.slow  # run by the separate slow step of .ci/run

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXAMPLE = ROOT / "examples" / "train_checkpointed.py"
K = 7  # batches read before saving: epoch 1, position 16 (five batches per epoch)
TIMEOUT = 180


def assert_same_stream(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def manager_save(directory: Path, step: int, it, **options) -> None:
    with ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(**options)) as m:
        m.save(step, args=ocp.args.Composite(data=NNXCheckpointSave(it)))
        m.wait_until_finished()


def manager_restore(directory: Path, step: int, it):
    with ocp.CheckpointManager(directory) as m:
        return m.restore(step, args=ocp.args.Composite(data=NNXCheckpointRestore(it)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A pipeline whose scale was trained to 2.5, saved after K batches; the rest of its stream."""
    root = tmp_path_factory.mktemp("saved")
    pipeline = learnable()
    set_scale(pipeline, 2.5)
    it = iter(pipeline)
    for _ in range(K):
        next(it)
    manager_save(root / "ckpt", K, it)
    save_iterator_state(root / "state.json", it)
    return root, rest(it)


# -- round trips -----------------------------------------------------------------------------
def test_restore_in_process_continues_bit_for_bit_with_the_learned_parameter(saved):
    root, expected = saved
    pipeline = learnable()
    assert scale_of(pipeline) == 1.0
    it = iter(pipeline)
    result = manager_restore(root / "ckpt", K, it)
    assert result.data is it
    assert scale_of(pipeline) == 2.5
    assert it.get_state()["epoch"] == 1
    assert_same_stream(rest(it), expected)
    assert len(expected["ids"]) == 2 * 40 - K * 8


def test_restore_into_a_used_iterator_runs_with_the_restored_parameter(saved):
    root, expected = saved
    pipeline = learnable()
    it = iter(pipeline)
    for _ in range(3):  # its compiled program holds scale 1.0
        next(it)
    manager_restore(root / "ckpt", K, it)
    assert_same_stream(rest(it), expected)


def test_json_helpers_round_trip_the_position(saved):
    root, expected = saved
    pipeline = learnable(scale=2.5)
    it = iter(pipeline)
    load_iterator_state(root / "state.json", it)
    assert_same_stream(rest(it), expected)
    document = json.loads((root / "state.json").read_text())
    assert document["format"] == "datarax.checkpoint.iterator"
    assert document["pipeline"] == pipeline.fingerprint_digest()


@pytest.mark.parametrize("checkpointer", ["Checkpointer", "AsyncCheckpointer"])
def test_handler_alone_with_a_checkpointer(checkpointer, saved, tmp_path):
    _, expected = saved
    pipeline = learnable()
    set_scale(pipeline, 2.5)
    it = iter(pipeline)
    for _ in range(K):
        next(it)
    with getattr(ocp, checkpointer)(NNXCheckpointHandler()) as c:
        c.save(tmp_path / "item", args=NNXCheckpointSave(it))
        if hasattr(c, "wait_until_finished"):
            c.wait_until_finished()
        fresh = iter(learnable())
        assert c.restore(tmp_path / "item", args=NNXCheckpointRestore(fresh)) is fresh
    assert_same_stream(rest(fresh), expected)


def test_checkpoint_metadata(saved):
    root, _ = saved
    document = json.loads((root / "ckpt" / str(K) / "data" / "iterator.json").read_text())
    assert document["format"] == "datarax.checkpoint.iterator"
    assert document["format_version"] == 1
    assert document["datarax_version"] == __import__("datarax").__version__
    assert document["pipeline"] == learnable().fingerprint_digest()
    paths = [leaf["path"] for leaf in document["operators"]["leaves"]]
    assert paths == [[1, "base_key"], [2, "scale"]]
    handlers = {"data": NNXCheckpointHandler()}
    with ocp.CheckpointManager(root / "ckpt", item_handlers=handlers) as m:
        meta = m.item_metadata(K)["data"]
    assert meta["format"] == "datarax.checkpoint.iterator" and meta["format_version"] == 1


def child_env(cache_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        # Processes started by these tests share their compiled programs.
        "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return child_env(tmp_path_factory.mktemp("jax-cache"))


def test_restore_in_a_new_process_continues_bit_for_bit(saved, env, tmp_path):
    root, expected = saved
    out = tmp_path / "child.npz"
    proc = subprocess.run(
        [sys.executable, str(HERE / "ckpt_child.py"), str(root / "ckpt"), str(root / "state.json")]
        + [str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    got = np.load(out)
    assert got["scale_before"] == 1.0 and got["scale"] == 2.5
    assert_same_stream({k[6:]: got[k] for k in got.files if k.startswith("orbax_")}, expected)
    assert_same_stream({k[5:]: got[k] for k in got.files if k.startswith("json_")}, expected)


# -- asynchronous saves ----------------------------------------------------------------------
def test_async_checkpoint_manager_saves_in_the_background_and_keeps_max_to_keep(
    tmp_path, monkeypatch
):
    from flax import nnx

    from datarax.checkpoint import snapshot

    released = {step: threading.Event() for step in range(1, 5)}
    written: list[int] = []
    write = snapshot.write_snapshot

    def gated_write(directory, snap):
        # Each write waits until the test has moved the iterator on after save().
        step = int(Path(str(directory)).parent.name.split(".")[0])
        assert released[step].wait(60), "save() did not return before the files were written"
        write(directory, snap)
        written.append(step)

    monkeypatch.setattr(snapshot, "write_snapshot", gated_write)
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    pipeline = learnable()
    it = iter(pipeline)
    states = {}
    options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=True)
    with ocp.CheckpointManager(tmp_path / "ckpt", options=options) as manager:
        for step in range(1, 5):
            next(it)
            states[step] = it.get_state()
            manager.save(
                step,
                args=ocp.args.Composite(
                    model=ocp.args.StandardSave(nnx.state(model)), data=NNXCheckpointSave(it)
                ),
            )
            next(it)  # after save() returned: must not change what is written
            released[step].set()
        manager.wait_until_finished()
        assert written == [1, 2, 3, 4]
        assert manager.all_steps() == [3, 4]
        fresh = iter(learnable())
        restored = manager.restore(
            3,
            args=ocp.args.Composite(
                model=ocp.args.StandardRestore(nnx.state(model)), data=NNXCheckpointRestore(fresh)
            ),
        )
    assert fresh.get_state() == states[3]
    np.testing.assert_array_equal(restored.model["kernel"][...], model.kernel[...])
    reference = iter(learnable())
    for _ in range(2 * 3 - 1):  # step 3 was saved after five batches
        next(reference)
    assert_same_stream(rest(fresh), rest(reference))


# -- the example, killed and restarted -------------------------------------------------------
_CHILDREN: list[Child] = []


@pytest.fixture(autouse=True)
def reap_children():
    """Kill any process a failed test left waiting."""
    yield
    while _CHILDREN:
        child = _CHILDREN.pop()
        if child.proc.poll() is None:
            child.kill()


class Child:
    """A process whose output lines are collected by a thread, to wait on and kill."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        _CHILDREN.append(self)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<eof>")
            self._changed.notify_all()

    def output(self, last: int = 40) -> str:
        return "\n".join(self.lines[-last:])

    def wait_for(self, pattern: str, until: Callable[[], bool] = lambda: True) -> str:
        """Wait for a line matching ``pattern`` (and then for ``until()``)."""
        deadline = time.monotonic() + TIMEOUT
        with self._changed:
            while True:
                found = [line for line in self.lines if re.fullmatch(pattern, line)]
                if found and until():
                    return found[0]
                assert "<eof>" not in self.lines, f"ended before {pattern!r}:\n{self.output()}"
                left = deadline - time.monotonic()
                assert left > 0, f"no {pattern!r} in time:\n{self.output()}"
                self._changed.wait(min(left, 0.1))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)

    def finish(self) -> str:
        code = self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        assert code == 0, self.output()
        return self.output(last=len(self.lines))


def example_args(workdir: Path, output: str) -> list[str]:
    return [
        "--steps",
        "40",
        "--checkpoint-every",
        "10",
        "--records",
        "256",
        "--batch-size",
        "32",
        "--checkpoint-dir",
        str(workdir / "ckpt"),
        "--output",
        str(workdir / output),
    ]


def run_example(workdir: Path, env, output: str = "params.npz", hook: list[str] | None = None):
    script = [str(HERE / "ckpt_example_child.py"), *hook, "--"] if hook else [str(EXAMPLE)]
    return Child([*script, *example_args(workdir, output)], env)


def load_params(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def assert_same_params(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b) == ["hidden/bias", "hidden/kernel", "out/bias", "out/kernel"]
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key  # bit for bit


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, env):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    out = run_example(workdir, env).finish()
    assert "starting from step 0" in out and "step 40 loss" in out
    assert re.search(r"done: 40 steps \(resumed from step 0\)", out)
    assert sorted(p.name for p in (workdir / "ckpt").iterdir()) == ["20", "30", "40"]
    return load_params(workdir / "params.npz")


def test_example_killed_mid_epoch_resumes_to_the_same_parameters(uninterrupted, env, tmp_path):
    # 8 steps per epoch: step 14 is in the middle of the second epoch, past checkpoint 10.
    child = run_example(tmp_path, env, hook=["--block-after-step", "14"])
    child.wait_for("blocked", until=lambda: (tmp_path / "ckpt" / "10").is_dir())
    assert "step 14 loss" in child.output()[-200:]
    child.kill()
    assert not (tmp_path / "params.npz").exists()
    out = run_example(tmp_path, env).finish()
    assert "resuming from step 10" in out
    assert "step 11 loss" in out and "step 10 loss" not in out
    assert_same_params(load_params(tmp_path / "params.npz"), uninterrupted)


def test_example_killed_while_writing_a_checkpoint_resumes_from_the_previous_one(
    uninterrupted, env, tmp_path
):
    child = run_example(tmp_path, env, hook=["--block-in-write", "20"])
    child.wait_for(r"writing checkpoint 20 in .*")
    child.kill()
    ckpt = tmp_path / "ckpt"
    names = sorted(p.name for p in ckpt.iterdir())
    assert "10" in names and "20" not in names, names
    assert any(n.startswith("20.") for n in names), names  # the unfinished write
    with ocp.CheckpointManager(ckpt, options=ocp.CheckpointManagerOptions(read_only=True)) as m:
        assert m.latest_step() == 10
    out = run_example(tmp_path, env).finish()
    assert "resuming from step 10" in out
    assert_same_params(load_params(tmp_path / "params.npz"), uninterrupted)
    assert sorted(p.name for p in ckpt.iterdir()) == ["20", "30", "40"]


# -- bad files -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def victim():
    """An iterator two batches in; every failed restore must leave it as it is."""
    pipeline = learnable()
    it = iter(pipeline)
    next(it)
    next(it)
    return pipeline, it


@pytest.fixture
def unchanged(victim):
    pipeline, it = victim
    state, scale = it.get_state(), scale_of(pipeline)
    yield it
    assert it.get_state() == state
    assert scale_of(pipeline) == scale


def edit_json(change: Callable[[dict], object]) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        document = json.loads(data)
        result = change(document)
        return json.dumps(document if result is None else result).encode()

    return edit


def set_key(key, value):
    return edit_json(lambda d: d.__setitem__(key, value))


DOCUMENT_CASES = {
    "truncated in half": (lambda b: b[: len(b) // 2], r"the file is truncated; expected a datarax"),
    "truncated in a string": (lambda b: b[:60], r"the file is truncated; .*Unterminated string"),
    "truncated at the end": (lambda b: b[:-3], r"the file is truncated; .*\(line \d+, column"),
    "empty": (lambda b: b"", r"the file is empty; .*found 0 bytes"),
    "binary garbage": (lambda b: b"\x89PNG\r\n\x1a\n\xff\xfe" + b[10:], r"corrupted: not UTF-8"),
    "not JSON": (lambda b: b.replace(b'"format"', b"format", 1), r"corrupted: not valid JSON"),
    "foreign JSON object": (
        lambda b: b'{"step": 3, "learning_rate": 0.1}',
        r"not a datarax iterator state; expected .*found a JSON object with keys "
        r"\['learning_rate', 'step'\]",
    ),
    "foreign JSON list": (lambda b: b"[1, 2, 3]", r"not a datarax iterator state.*JSON list"),
    "wrong format name": (
        set_key("format", "grain.iterator"),
        r"wrong format name; expected format 'datarax.checkpoint.iterator', "
        r"found format 'grain.iterator'",
    ),
    "version of the wrong type": (
        set_key("format_version", "1"),
        r"malformed state: field 'format_version'; expected an int, found '1'",
    ),
    "newer version": (set_key("format_version", 2), r"written by a newer datarax"),
    "iterator of the wrong type": (
        set_key("iterator", [0, 16]),
        r"malformed state: field 'iterator'; expected an object",
    ),
    "position of the wrong type": (
        edit_json(lambda d: d["iterator"].__setitem__("position", "sixteen")),
        r"\(field 'iterator'\)",
    ),
    "fingerprints of another pipeline": (
        edit_json(lambda d: d.update(pipeline="0123456789abcdef", records="fedcba9876543210")),
        r"saved by a differently built pipeline; expected pipeline fingerprint [0-9a-f]{16}, "
        r"found 0123456789abcdef",
    ),
}


def expect_error(path: Path, problem: str):
    return pytest.raises(StateError, match=re.escape(str(path)) + r"\b.*: .*" + problem)


@pytest.fixture
def checkpoint_copy(saved, tmp_path):
    root, _ = saved
    ckpt = tmp_path / "ckpt"
    shutil.copytree(root / "ckpt", ckpt)
    return ckpt, ckpt / str(K) / "data"


@pytest.mark.parametrize("case", DOCUMENT_CASES)
def test_bad_state_document_in_a_checkpoint_raises_and_changes_nothing(
    case, checkpoint_copy, unchanged
):
    ckpt, item = checkpoint_copy
    change, problem = DOCUMENT_CASES[case]
    path = item / "iterator.json"
    path.write_bytes(change(path.read_bytes()))
    with expect_error(path, problem):
        manager_restore(ckpt, K, unchanged)


@pytest.mark.parametrize("case", DOCUMENT_CASES)
def test_bad_json_state_file_raises_and_changes_nothing(case, saved, tmp_path, unchanged):
    root, _ = saved
    change, problem = DOCUMENT_CASES[case]
    path = tmp_path / "state.json"
    path.write_bytes(change((root / "state.json").read_bytes()))
    with expect_error(path, problem):
        load_iterator_state(path, unchanged)


def test_missing_files_raise_and_change_nothing(checkpoint_copy, tmp_path, unchanged):
    ckpt, item = checkpoint_copy
    with expect_error(tmp_path / "nothing.json", "no iterator state file"):
        load_iterator_state(tmp_path / "nothing.json", unchanged)
    (item / "operators.npz").unlink()
    with expect_error(item / "operators.npz", "the operator state file is missing"):
        manager_restore(ckpt, K, unchanged)
    (item / "iterator.json").unlink()
    with expect_error(item / "iterator.json", "no iterator state in the checkpoint"):
        manager_restore(ckpt, K, unchanged)


def test_json_of_the_plain_helper_is_not_a_full_checkpoint(checkpoint_copy, saved, unchanged):
    ckpt, item = checkpoint_copy
    root, _ = saved
    shutil.copy(root / "state.json", item / "iterator.json")
    with expect_error(item / "iterator.json", r"malformed state: field 'operators'"):
        manager_restore(ckpt, K, unchanged)


def npz_with_matching_checksum(item: Path, data: bytes) -> None:
    """Replace operators.npz and fix the checksum, as a buggy writer would."""
    import hashlib

    (item / "operators.npz").write_bytes(data)
    document = json.loads((item / "iterator.json").read_text())
    document["operators"]["sha256"] = hashlib.sha256(data).hexdigest()
    (item / "iterator.json").write_text(json.dumps(document))


NPZ_CASES = {
    "truncated": (lambda b: b[: len(b) - 40], r"truncated or corrupted: checksum mismatch"),
    "corrupted": (
        lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:],
        r"truncated or corrupted: checksum mismatch; expected sha256 [0-9a-f]{64}",
    ),
    "empty": (lambda b: b"", r"the file is empty"),
}


@pytest.mark.parametrize("case", NPZ_CASES)
def test_bad_operator_file_raises_and_changes_nothing(case, checkpoint_copy, unchanged):
    ckpt, item = checkpoint_copy
    change, problem = NPZ_CASES[case]
    path = item / "operators.npz"
    path.write_bytes(change(path.read_bytes()))
    with expect_error(path, problem):
        manager_restore(ckpt, K, unchanged)


def test_operator_file_that_is_not_npz_raises_even_with_a_matching_checksum(
    checkpoint_copy, unchanged
):
    ckpt, item = checkpoint_copy
    npz_with_matching_checksum(item, b"not a zip archive at all")
    with expect_error(item / "operators.npz", r"corrupted: not a NumPy \.npz archive"):
        manager_restore(ckpt, K, unchanged)


def test_operator_file_with_other_arrays_raises(checkpoint_copy, unchanged):
    import io

    ckpt, item = checkpoint_copy
    buffer = io.BytesIO()
    np.savez(buffer, a0=np.zeros(2, np.uint32), a1=np.zeros(3, np.float32))
    npz_with_matching_checksum(item, buffer.getvalue())
    with expect_error(
        item / "operators.npz",
        r"the file is corrupted: an array differs from its description; "
        r"expected float32\[\], found float32\[3\]",
    ) as info:
        manager_restore(ckpt, K, unchanged)
    assert info.value.where == f"{item / 'operators.npz'}, array a1 (2/scale)"


def test_state_of_a_differently_built_pipeline_raises(tmp_path, unchanged):
    other = iter(learnable(seed=1))  # another shuffle and other flips
    manager_save(tmp_path / "ckpt", 1, other)
    save_iterator_state(tmp_path / "state.json", other)
    problem = r"saved by a differently built pipeline; expected pipeline fingerprint"
    with expect_error(tmp_path / "ckpt" / "1" / "data" / "iterator.json", problem):
        manager_restore(tmp_path / "ckpt", 1, unchanged)
    with expect_error(tmp_path / "state.json", problem):
        load_iterator_state(tmp_path / "state.json", unchanged)


def test_same_records_batched_differently_resume_elastically(saved):
    root, expected = saved
    pipeline = learnable(batch_size=4)
    assert pipeline.fingerprint_digest() != learnable().fingerprint_digest()
    it = iter(pipeline)
    manager_restore(root / "ckpt", K, it)
    assert scale_of(pipeline) == 2.5
    assert_same_stream(rest(it), expected)  # the same records, in batches of 4


def test_operator_state_of_other_shapes_raises(tmp_path, unchanged):
    other = iter(learnable(shape=(3,)))  # same fingerprint, a parameter of another shape
    manager_save(tmp_path / "ckpt", 1, other)
    path = tmp_path / "ckpt" / "1" / "data" / "iterator.json"
    with expect_error(
        path,
        r"the operator state does not match the pipeline's operators; "
        r"expected 2 arrays, array 1: 2/scale float32\[\], found 2 arrays, array 1: "
        r"2/scale float32\[3\]",
    ):
        manager_restore(tmp_path / "ckpt", 1, unchanged)


def test_saving_something_else_than_a_pipeline_iterator_raises():
    with pytest.raises(StateError, match="not a datarax pipeline iterator"):
        NNXCheckpointSave(iter([1, 2]))


# -- without orbax ---------------------------------------------------------------------------
def test_without_orbax_the_error_names_the_extra(monkeypatch, tmp_path, victim):
    import datarax.checkpoint as dc

    for name in [m for m in sys.modules if m == "orbax" or m.startswith("orbax.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "orbax", None)
    monkeypatch.delitem(sys.modules, "datarax.checkpoint.handler", raising=False)
    with pytest.raises(CheckpointDependencyError, match=r"pip install 'datarax\[checkpoint\]'"):
        dc.NNXCheckpointHandler  # noqa: B018
    with pytest.raises(ImportError, match=r"datarax\[checkpoint\]") as info:
        from datarax.checkpoint import NNXCheckpointSave  # noqa: F401
    assert isinstance(info.value, DataraxError)
    assert str(info.value).startswith(
        "datarax.checkpoint.NNXCheckpointHandler: Orbax is not installed; expected "
        "orbax-checkpoint>=0.12"
    )
    _, it = victim
    save_iterator_state(tmp_path / "state.json", it)  # the JSON helpers need no Orbax
    assert json.loads((tmp_path / "state.json").read_text())["iterator"] == it.get_state()
