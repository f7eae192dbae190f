"""Host-resident and record sources: batches are on the device before they are asked for."""

from __future__ import annotations

import threading

import jax
import numpy as np
import pytest

from datarax import from_source
from datarax.dag.program import Program
from datarax.sources import MemorySource, MemorySourceConfig, SequenceSource


@pytest.fixture
def dispatched(monkeypatch):
    """Every chunk output dispatched, in order; ``changed`` is notified at each dispatch."""
    calls: list = []
    changed = threading.Condition()
    real = Program.run

    def counting(self, *args):
        out = real(self, *args)
        with changed:
            calls.append(out)
            changed.notify_all()
        return out

    monkeypatch.setattr(Program, "run", counting)
    return calls, changed


def test_host_arrays_are_transferred_and_computed_prefetch_chunks_ahead(dispatched):
    calls, _ = dispatched
    source = MemorySource(MemorySourceConfig(placement="host"), data={"x": np.arange(64.0)})
    it = iter(from_source(source, 4, batches_per_call=1, prefetch=2))
    first = next(it)
    # The batch handed out and two more chunks, dispatched on the caller's thread.
    assert len(calls) == 3
    ahead = calls[-1].batches[0][0]["x"]
    assert isinstance(ahead, jax.Array) and ahead.devices() == {jax.devices()[0]}
    np.testing.assert_array_equal(np.asarray(ahead), [8.0, 9.0, 10.0, 11.0])
    np.testing.assert_array_equal(np.asarray(first["x"]), [0.0, 1.0, 2.0, 3.0])
    next(it)
    assert len(calls) == 4  # one more dispatched per batch taken: always two ahead


def test_records_read_one_by_one_are_dispatched_ahead_by_the_thread(dispatched):
    calls, changed = dispatched
    records = [{"x": np.float32(i)} for i in range(64)]
    it = iter(from_source(SequenceSource(records), 4, batches_per_call=1, prefetch=2))
    next(it)
    with changed:  # the thread dispatches ahead of the consumer
        assert changed.wait_for(lambda: len(calls) >= 3, timeout=120), len(calls)
    assert isinstance(calls[2].batches[0][0]["x"], jax.Array)
    np.testing.assert_array_equal(np.asarray(calls[2].batches[0][0]["x"]), [8, 9, 10, 11])
    it.close()
