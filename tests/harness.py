"""The shared resume harness: every iterator and node is checked with it.

:func:`assert_resumes_at_every_step` records a pipeline's whole stream with the
state saved before every step, then restores each state in a fresh iterator of a
freshly built pipeline and compares the rest of the stream bit for bit; it also
checks that states keep one structure and a bounded size. :func:`assert_reset_replays`
checks that ``reset()`` goes back to the iterator's start. Streams are compared as
:func:`snapshot` values (epoch, record ids and the raw bytes of every array).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from datarax.dag.pipeline import Pipeline

MAX_STATE_BYTES = 400

# -- the stream, as plain comparable values --------------------------------------------


def _leaves(batch) -> list[tuple[str, str, tuple[int, ...], bytes]]:
    """(path, dtype, shape, raw bytes) of every data and state array of a batch."""
    out = []
    tree = {"data": dict(batch.data), "states": dict(batch.states)}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        array = np.asarray(leaf)
        out.append((jax.tree_util.keystr(path), array.dtype.str, array.shape, array.tobytes()))
    return out


def snapshot(output) -> tuple:
    """A pipeline output (a Batch or a tuple of them) as nested tuples compared bit for bit.

    Each batch becomes ``(epoch, record ids, leaves)``; an unmerged ``Parallel``
    output keeps one such entry per branch, and whether it was a tuple.
    """
    batches = output if isinstance(output, tuple) else (output,)
    return (
        isinstance(output, tuple),
        tuple(
            (
                int(b.epoch),
                tuple(int(i) for i in np.asarray(b.record_ids)),
                tuple(_leaves(b)),
            )
            for b in batches
        ),
    )


def _state_structure(value: Any) -> Any:
    """The keys and value types of a state, without its values."""
    if isinstance(value, dict):
        return {k: _state_structure(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_state_structure(v) for v in value]
    return type(value).__name__


def _first_difference(got: tuple, want: tuple) -> str:
    if got[0] != want[0]:
        return f"a tuple of batches: {got[0]}, expected {want[0]}"
    for i, ((e1, ids1, leaves1), (e2, ids2, leaves2)) in enumerate(
        zip(got[1], want[1], strict=False)
    ):
        where = f"branch {i}: " if got[0] else ""
        if (e1, ids1) != (e2, ids2):
            return f"{where}epoch {e1}, ids {list(ids1)}; expected epoch {e2}, ids {list(ids2)}"
        for (path, *found), (_, *expected) in zip(leaves1, leaves2, strict=False):
            if found != expected:
                return f"{where}field {path} differs (dtype, shape or bits)"
    return "different batches or fields"


def assert_same_rest(rest: list[tuple], expected: list[tuple], where: str) -> None:
    for j, (got, want) in enumerate(zip(rest, expected, strict=False)):
        assert got == want, (
            f"{where}: step {j} of the continuation differs: {_first_difference(got, want)}"
        )
    assert len(rest) == len(expected), (
        f"{where}: the continuation has {len(rest)} steps, expected {len(expected)}"
    )


def _check_states(states: list[dict], max_state_bytes: int) -> None:
    """Every state has one structure and a bounded size.

    The one list allowed to vary is ``skipped`` (the bad records skipped in the
    current epoch, bounded by the skip budget): it is checked to hold record ids and
    is left out of the structure and size comparisons.
    """
    for state in states:
        skipped = state.get("skipped", [])
        assert isinstance(skipped, list) and all(type(i) is int for i in skipped), skipped
    states = [{k: v for k, v in s.items() if k != "skipped"} for s in states]
    structure = _state_structure(states[0])
    sizes = []
    for k, state in enumerate(states):
        text = json.dumps(state)
        assert json.loads(text) == state, f"state {k} does not survive JSON"
        assert _state_structure(state) == structure, (
            f"state {k} has structure {_state_structure(state)}, state 0 has {structure}"
        )
        sizes.append(len(text))
    assert max(sizes) < max_state_bytes, f"states of up to {max(sizes)} bytes"
    # Only the digits of the epoch and position may differ: nothing grows with the data.
    assert max(sizes) - min(sizes) <= 6, f"state sizes vary: {sorted(set(sizes))}"


def record_stream(pipeline: Pipeline) -> tuple[list[tuple], list[dict]]:
    """A fresh iterator's whole stream, and the state saved before every step.

    ``states[k]`` is the state before step ``k``; the last one is the exhausted
    iterator's (there is one more state than steps).
    """
    it = iter(pipeline)
    states, stream = [], []
    while True:
        states.append(it.get_state())
        try:
            output = next(it)
        except StopIteration:
            break
        stream.append(snapshot(output))
    assert it.get_state() == states[-1], "the state changed after StopIteration"
    return stream, states


def assert_resumes_at_every_step(
    make_pipeline: Callable[[], Pipeline], *, max_state_bytes: int = MAX_STATE_BYTES
) -> list[tuple]:
    """Check that a state saved before any step continues the stream exactly.

    ``make_pipeline()`` must build the pipeline anew on each call (a pipeline
    remembers how far it was iterated). The whole stream of one pipeline is
    recorded with the state before each step ``k`` (``k = 0`` before the first
    ``next``, the last after exhaustion). Then, for every ``k``, a fresh iterator
    of a freshly built pipeline restored from state ``k`` (passed through JSON) must
    yield exactly the recorded steps ``k..``: same epochs, record ids and every
    array bit for bit (tuples of batches from an unmerged ``Parallel`` included),
    and report the recorded state before each of them.

    Also checks that every state has the same keys and value types, is JSON-able
    and stays under ``max_state_bytes`` whatever the position.

    Returns:
        The recorded stream (one :func:`snapshot` per step).
    """
    stream, states = record_stream(make_pipeline())
    assert stream, "the pipeline yields nothing"
    _check_states(states, max_state_bytes)
    for k, state in enumerate(states):
        restored = iter(make_pipeline())
        restored.set_state(json.loads(json.dumps(state)))
        rest = []
        while True:
            assert k + len(rest) < len(states), (
                f"restored from step {k}: more steps than the {len(stream)} recorded"
            )
            assert restored.get_state() == states[k + len(rest)], (
                f"restored from step {k}: state before step {k + len(rest)} differs"
            )
            try:
                output = next(restored)
            except StopIteration:
                break
            rest.append(snapshot(output))
        assert_same_rest(rest, stream[k:], f"restored from step {k}")
    return stream


def assert_reset_replays(make_pipeline: Callable[[], Pipeline], steps: int = 3) -> None:
    """After ``steps`` batches (or all of them), ``reset()`` replays the stream from its start."""
    full, states = record_stream(make_pipeline())
    it = iter(make_pipeline())
    for _ in range(min(steps, len(full))):
        next(it)
    it.reset()
    assert it.get_state() == states[0], "reset() did not return to the first state"
    assert_same_rest([snapshot(b) for b in it], full, "after reset()")
    it.reset()  # also from an exhausted iterator
    assert_same_rest([snapshot(b) for b in it], full, "after reset() of an exhausted iterator")


# -- the stream in another process -----------------------------------------------------

TESTS = Path(__file__).resolve().parent


def stream_digest(batches: Iterable) -> str:
    """A SHA-256 of every batch's epoch, record ids and field bytes, in order."""
    h = hashlib.sha256()
    for batch in batches:
        h.update(np.int64(batch.epoch).tobytes())
        h.update(np.asarray(batch.record_ids, np.int64).tobytes())
        for name in sorted(batch.data):
            h.update(name.encode())
            h.update(np.ascontiguousarray(np.asarray(batch[name])).tobytes())
    return h.hexdigest()


def run_child(script: Path, payload: Any, timeout: float = 300) -> Any:
    """Run ``script`` in a fresh Python with ``payload`` as JSON on stdin.

    The script's folder and this one are on its path (so it can import its
    pipelines and this harness); returns its last line of output, read as JSON.
    """
    path = os.pathsep.join([str(script.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
