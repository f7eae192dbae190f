"""Several processes on JAX's distributed runtime (coordinator on 127.0.0.1).

Each run starts local processes with ``python -m datarax.distributed.launch``; every
process checks its shards of each global batch against the one-process stream
(``mp_child.py``) and reports the records it read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # run by the separate slow step of .ci/run

CHILD = Path(__file__).with_name("mp_child.py")
N, BATCH = 70, 16


def launch(n: int, out: Path, *args: str, timeout: float = 240, child: Path = CHILD):
    command = [
        sys.executable,
        "-m",
        "datarax.distributed.launch",
        "-n",
        str(n),
        "--devices-per-process",
        "2",
        "--grace",
        "3",
        str(child),
        str(out),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def one_process_orders():
    sys.path.insert(0, str(Path(__file__).parents[1] / "dag"))
    from pipelines import augmented

    pipeline = augmented(N, BATCH, drop_remainder=True, num_epochs=2, placement="host")
    return {e: pipeline.sampler.indices(e, 0, N)[: N // BATCH * BATCH] for e in (0, 1)}


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_read_disjoint_complete_shares_and_see_the_one_process_batches(
    processes, tmp_path
):
    result = launch(processes, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    reads = [json.loads((tmp_path / f"ids-{p}.json").read_text()) for p in range(processes)]
    assert {r["processes"] for r in reads} == {processes}
    for epoch, order in one_process_orders().items():
        shares = [r["read"][str(epoch)] for r in reads]
        everything = sorted(i for share in shares for i in share)
        assert everything == sorted(order.tolist())  # complete, and nothing read twice
        assert all(len(s) == len(order) // processes for s in shares)


def test_a_state_saved_with_two_processes_restores_on_one_and_on_four(tmp_path):
    saved = launch(2, tmp_path, "--save-after", "3")
    assert saved.returncode == 0, saved.stderr[-4000:]
    state = tmp_path / "state.json"
    assert json.loads(state.read_text())["position"] == 3 * BATCH
    for processes in (1, 4):
        out = tmp_path / f"restored-{processes}"
        out.mkdir()
        restored = launch(processes, out, "--restore", str(state))
        assert restored.returncode == 0, restored.stderr[-4000:]


def test_a_killed_process_stops_the_others_with_a_clear_error(tmp_path):
    start = time.monotonic()
    result = launch(2, tmp_path, "--die-after", "2", timeout=120)
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert "process 1 of 2 was killed by SIGKILL; stopped the other processes" in result.stderr
    assert elapsed < 90


CHECKPOINT_CHILD = Path(__file__).with_name("mp_checkpoint_child.py")


def test_orbax_checkpoints_per_process_restore_on_another_number_of_processes(tmp_path):
    def run(n, *args):
        result = launch(n, tmp_path / "ckpt", str(tmp_path), *args, child=CHECKPOINT_CHILD)
        assert result.returncode == 0, result.stderr[-4000:]

    run(2, "save", "3")
    files = sorted(p.name for p in (tmp_path / "ckpt" / "1" / "data").iterdir())
    assert "iterator.process-0.json" in files and "iterator.process-1.json" in files
    saved = json.loads((tmp_path / "rest-2-0.json").read_text())
    assert json.loads((tmp_path / "rest-2-1.json").read_text()) == saved
    for n in (1, 4):
        run(n, "restore")
        for p in range(n):
            assert json.loads((tmp_path / f"rest-{n}-{p}.json").read_text()) == saved
