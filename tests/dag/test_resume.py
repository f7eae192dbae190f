"""Resume: a state saved after k batches continues the stream exactly, in any process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipelines import augmented, stream
from resume_child import digest

from datarax import from_source
from datarax.core.errors import StateError
from datarax.sources import MemorySource, MemorySourceConfig

HERE = Path(__file__).parent
BATCHES_PER_EPOCH = 13  # 100 records in batches of 8: 12 full and one of 4


def states_and_rests(ks):
    """(state after k batches, digest of the remaining stream) for each k."""
    full = stream(augmented())
    out = []
    for k in ks:
        it = iter(augmented())
        for _ in range(k):
            next(it)
        out.append((it.get_state(), digest(full[k:])))
    return out


def test_state_is_small_and_json_able():
    it = iter(augmented())
    next(it)
    state = it.get_state()
    assert json.loads(json.dumps(state)) == state
    assert state["epoch"] == 0 and state["position"] == 8
    assert set(state) == {
        "format",
        "version",
        "pipeline",
        "first_epoch",
        "epoch",
        "position",
        "origin",
        "batching",
    }
    assert state["origin"] == 0 and state["batching"] == [[8, False]]


@settings(max_examples=10, deadline=None)
@given(k=st.integers(0, 3 * BATCHES_PER_EPOCH - 1))
def test_restore_in_a_fresh_iterator_continues_exactly(k):
    full = stream(augmented())
    it = iter(augmented())
    for _ in range(k):
        next(it)
    restored = iter(augmented())
    restored.set_state(it.get_state())
    rest = stream(restored)
    assert digest(rest) == digest(full[k:])


def test_restore_in_a_new_process_continues_exactly():
    rng = np.random.default_rng(0)
    ks = sorted(
        {
            0,
            BATCHES_PER_EPOCH - 1,
            BATCHES_PER_EPOCH,
            BATCHES_PER_EPOCH + 1,
            *rng.integers(1, 3 * BATCHES_PER_EPOCH, 4).tolist(),
        }
    )
    expected = states_and_rests(ks)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(HERE / "resume_child.py")],
        input=json.dumps([s for s, _ in expected]),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [d for _, d in expected]


def test_restore_is_independent_of_prefetched_work():
    it = iter(augmented(prefetch=4))
    for _ in range(5):
        next(it)
    state = it.get_state()
    expected = stream(it)
    it.set_state(state)
    assert digest(stream(it)) == digest(expected)


def test_state_from_a_differently_built_pipeline_is_rejected():
    state = iter(augmented(seed=0)).get_state()
    with pytest.raises(
        StateError,
        match=r"saved by a pipeline that produces other records.*expected records "
        r"fingerprint [0-9a-f]{16}, found '[0-9a-f]{16}'",
    ):
        iter(augmented(seed=1)).set_state(state)
    with pytest.raises(StateError, match=r"produces other records"):
        iter(augmented(shuffle=False)).set_state(state)


def test_malformed_states_are_rejected_and_leave_the_iterator_unchanged():
    it = iter(augmented())
    next(it)
    good = it.get_state()
    for bad, message in [
        ({}, "not a datarax pipeline iterator state"),
        ({**good, "version": 99}, "unsupported state version"),
        ({**good, "position": 101}, r"out of range.*position <= 100"),
        ({**good, "position": 3}, r"between two batches.*a multiple of 8.*found position=3"),
        ({**good, "origin": 16}, r"out of range.*origin <= position"),
        ({**good, "epoch": "x"}, "malformed state"),
        ({**good, "batching": [[8]]}, "malformed state"),
    ]:
        with pytest.raises(StateError, match=message):
            it.set_state(bad)
    assert it.get_state() == good


def test_exhausted_iterator_state_restores_to_an_exhausted_iterator():
    src = MemorySource(MemorySourceConfig(), data={"x": np.arange(5)})
    it = iter(from_source(src, 2))
    assert len(list(it)) == 3
    again = iter(from_source(src, 2))
    again.set_state(it.get_state())
    assert list(again) == []


def test_state_from_a_pipeline_with_other_functions_is_rejected():
    src = MemorySource(MemorySourceConfig(), data={"x": np.arange(6.0)})

    def build(fn):
        from datarax.dag.nodes import OperatorNode
        from datarax.operators import MapOperator, MapOperatorConfig

        return from_source(src, 2) >> OperatorNode(MapOperator(MapOperatorConfig(), fn=fn))

    state = iter(build(lambda x: x + 1)).get_state()
    iter(build(lambda x: x + 1)).set_state(state)  # same code: accepted
    with pytest.raises(StateError, match="produces other records"):
        iter(build(lambda x: x * 2)).set_state(state)


def _range_pipeline():
    from datarax.samplers import RangeSampler, RangeSamplerConfig

    sampler = RangeSampler(RangeSamplerConfig(start=5, stop=40, step=2, shuffle=True, seed=4))
    return augmented(60, 6, sampler=sampler)


HARNESS_PIPELINES = {
    "shuffled_device": lambda: augmented(30, 8, placement="device"),
    "shuffled_host": lambda: augmented(30, 8, placement="host"),
    "sequential_drop_remainder": lambda: augmented(30, 8, shuffle=False, drop_remainder=True),
    "one_batch_per_call_host": lambda: augmented(30, 4, placement="host", batches_per_call=1),
    "no_prefetch": lambda: augmented(30, 8, prefetch=0),
    "range_sampler": _range_pipeline,
}


@pytest.mark.parametrize("name", sorted(HARNESS_PIPELINES))
def test_every_iterator_resumes_at_every_step_and_resets(name):
    from harness import assert_reset_replays, assert_resumes_at_every_step

    assert_resumes_at_every_step(HARNESS_PIPELINES[name])
    assert_reset_replays(HARNESS_PIPELINES[name])
