"""The executor: typed chunks from the chunk stream, cursors, skip budgets, index windows."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax import from_source
from datarax.control import BadRecordPolicy
from datarax.core.errors import RecordError
from datarax.dag.chunks import Chunk, ChunkStream, IndexWindow, SkipBudget, padded
from datarax.dag.nodes import HostOperator
from datarax.dag.program import Program
from datarax.dag.schedule import ProgramSchedule
from datarax.dag.state import Cursor
from datarax.samplers import ShuffleSampler, ShuffleSamplerConfig
from datarax.sources import MemorySource, MemorySourceConfig


def counting(n: int, placement: str = "auto") -> MemorySource:
    return MemorySource(MemorySourceConfig(placement=placement), data={"x": np.arange(n)})


def test_the_chunk_stream_yields_typed_chunks_on_the_batch_grid():
    pipeline = from_source(counting(10), 3, num_epochs=2, batches_per_call=2)
    plane = pipeline.host_plane
    schedule = ProgramSchedule(pipeline)
    # The full program from the start (an iterator's first chunks may use a one-batch
    # program while the full one compiles).
    assert schedule.current(wait=True).rows == 6
    stream = ChunkStream(schedule, plane, pipeline.sampler, pipeline.view.geometry, 1, plane.policy)
    chunks = list(stream.run(0, 3, 0, []))  # from position 3 of epoch 0
    assert all(isinstance(c, Chunk) for c in chunks)
    assert [(c.epoch, c.start, c.bounds) for c in chunks] == [
        (0, 3, [(3, 3), (6, 3)]),  # chunks start on the grid of batches, here at 3
        (0, 9, [(9, 1)]),  # the short last batch, computed padded
        (1, 0, [(0, 3), (3, 3)]),
        (1, 6, [(6, 3), (9, 1)]),
    ]
    assert chunks[3].ids.tolist() == [6, 7, 8, 9] and chunks[3].batch_size == 3
    assert len(chunks[3].outputs) == 2 and chunks[3].skipped == []
    np.testing.assert_array_equal(np.asarray(chunks[3].outputs[1][0]["x"])[:1], [9])


def test_the_cursor_moves_batch_by_batch_and_over_epochs():
    it = iter(from_source(counting(5), 2, num_epochs=2))
    assert it.cursor == Cursor(0, 0, 0, 0)
    next(it)
    assert it.cursor == Cursor(0, 0, 2, 0)
    next(it), next(it)
    assert it.cursor == Cursor(0, 1, 0, 0)
    assert len(list(it)) == 3 and it.cursor == Cursor(0, 2, 0, 0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 50), batch=st.integers(1, 9), extra=st.integers(0, 3))
def test_padding_repeats_the_last_batchs_first_position(n, batch, extra):
    rows = (-(-n // batch) + extra) * batch
    out = padded(np.arange(n), rows, batch)
    assert out.dtype == np.int32 and out.size == rows
    np.testing.assert_array_equal(out[:n], np.arange(n))
    assert (out[n:] == (n - 1) // batch * batch).all()


def test_the_skip_budget_names_the_records_where_it_runs_out():
    budget = SkipBudget(BadRecordPolicy("skip", max_skipped=2), 100, "src", skipped=[7])
    ids = np.array([10, 11, 12, 13])
    assert budget.spend(0, ids, [1]) is None
    row, error = budget.spend(0, ids, [3])
    assert row == 3 and isinstance(error, RecordError)
    assert str(error) == (
        "src: too many bad records in epoch 0; expected at most 2 skipped records per "
        "epoch, found 3 (records [7, 11, 13])"
    )
    budget.new_epoch()
    assert budget.spend(1, ids, [0, 1]) is None


def test_the_index_window_equals_the_samplers_indices_for_any_range():
    sampler = ShuffleSampler(ShuffleSamplerConfig(num_records=50_000, seed=3))
    window = IndexWindow(sampler, epoch=2, num_records=len(sampler))
    for start, stop in [(0, 10), (5, 20_000), (19_990, 20_010), (100, 200), (49_000, 50_000)]:
        np.testing.assert_array_equal(window.get(start, stop), sampler.indices(2, start, stop))


def test_records_read_one_by_one_run_ahead_on_a_thread_and_arrays_inline(monkeypatch):
    names: list[str] = []

    def tag(record):
        names.append(threading.current_thread().name)
        return record

    host = counting(64, placement="host")
    list(from_source(host, 4, batches_per_call=1, prefetch=2) >> HostOperator(tag))
    assert names[0] == threading.current_thread().name  # the first chunk: by the caller
    assert "datarax-prefetch" in names  # then by the run-ahead thread

    dispatched: list[str] = []
    real_run = Program.run

    def run(self, *args):
        dispatched.append(threading.current_thread().name)
        return real_run(self, *args)

    monkeypatch.setattr(Program, "run", run)
    assert len(list(from_source(counting(64), 4, batches_per_call=1, prefetch=2))) == 16
    assert set(dispatched) == {threading.current_thread().name}  # a device source: inline


@pytest.mark.parametrize("prefetch", [0, 3])
def test_an_abandoned_iterator_stops_its_thread(prefetch):
    import gc

    def same(record):
        return record

    it = iter(from_source(counting(400, "host"), 4, prefetch=prefetch) >> HostOperator(same))
    next(it)
    del it
    gc.collect()
    ahead = [t for t in threading.enumerate() if t.name == "datarax-prefetch"]
    for thread in ahead:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in ahead)
