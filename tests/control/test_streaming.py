"""Streaming sources: read in order, shuffled in windows, one pass per epoch, exact resume.

A stream is read forward; a ``ShuffleNode`` permutes it within windows, so only about
a window of records is held. A new epoch or a restored state starts the stream again
where the records are needed; worker processes get the records from this process.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from host_records import CountedStream

from datarax import from_source
from datarax.core.errors import PipelineBuildError, SourceError
from datarax.dag.nodes import ShuffleNode
from harness import record_stream, snapshot

N, BATCH, WINDOW, EPOCHS = 64, 8, 8, 3


def raises(cls, *parts: str):
    """``pytest.raises`` requiring every part, literally and in order, in the message."""
    return pytest.raises(cls, match=".*".join(re.escape(p) for p in parts))


def shuffled(stream: CountedStream, *, batch_size: int = BATCH, window: int = WINDOW, **options):
    pipeline = from_source(
        stream, batch_size, num_epochs=EPOCHS, batches_per_call=1, **options
    ) >> ShuffleNode(window, seed=5)
    stream.starts.clear()  # reading the fields at build time is not part of an epoch
    return pipeline


def epochs_of(batches) -> dict[int, list[int]]:
    orders: dict[int, list[int]] = {}
    for batch in batches:
        orders.setdefault(batch.epoch, []).extend(batch.record_ids.tolist())
    return orders


def test_each_epoch_is_a_window_permutation_read_in_one_pass():
    stream = CountedStream(N, num_records=N)
    batches = list(shuffled(stream))
    orders = epochs_of(batches)
    assert sorted(orders) == list(range(EPOCHS))
    for order in orders.values():
        assert sorted(order) == list(range(N))
        assert order != list(range(N))
        # Records move only within a window (plus the epoch's phase): never far.
        assert max(abs(p - i) for p, i in enumerate(order)) < 2 * WINDOW
    assert len({tuple(o) for o in orders.values()}) == EPOCHS
    for batch in batches:  # every record's values follow it
        np.testing.assert_array_equal(np.asarray(batch["id"]), batch.record_ids)
        np.testing.assert_array_equal(np.asarray(batch["x"])[:, 1], batch.record_ids)
    assert stream.starts == [0] * EPOCHS  # one pass per epoch
    assert 0 < stream.most_ahead <= WINDOW + BATCH


def test_batches_smaller_than_the_window_still_read_one_pass_per_epoch():
    for seed in range(4):
        stream = CountedStream(N, num_records=N)
        pipeline = from_source(stream, 2, num_epochs=EPOCHS, batches_per_call=1) >> ShuffleNode(
            16, seed=seed
        )
        stream.starts.clear()
        list(pipeline)
        assert stream.starts == [0] * EPOCHS, f"seed {seed}"


def test_restored_state_restarts_the_stream_where_its_records_are():
    stream, states = record_stream(shuffled(CountedStream(N, num_records=N)))
    k = next(i for i, s in enumerate(states) if s["epoch"] == 1 and s["position"] == 24)
    fresh = CountedStream(N, num_records=N)
    restored = iter(shuffled(fresh))
    restored.set_state(json.loads(json.dumps(states[k])))
    rest = [snapshot(b) for b in restored]
    assert rest == stream[k:]
    first_ids = rest[0][1][0][1]
    # The stream starts at the lowest record still needed in the epoch, not at 0, and
    # once more for the next epoch.
    assert fresh.starts == [min(first_ids), 0]
    assert min(first_ids) > 0


def test_worker_processes_get_the_records_from_this_process():
    stream = CountedStream(N, num_records=N)
    reference = [snapshot(b) for b in shuffled(CountedStream(N, num_records=N), workers=2)]
    assert [snapshot(b) for b in shuffled(stream, workers=2, worker_mode="process")] == reference
    assert stream.starts == [0] * EPOCHS  # read here, once per epoch: never in the workers
    assert stream.most_ahead <= WINDOW + BATCH


def test_global_shuffle_of_a_stream_is_refused():
    with raises(
        PipelineBuildError,
        "CountedStream: a streaming source cannot be shuffled globally; expected "
        "shuffle=False, then ShuffleNode(buffer_size) to shuffle in windows, found shuffle=True",
    ):
        from_source(CountedStream(N, num_records=N), BATCH, shuffle=True)


def test_a_stream_shorter_than_announced_is_an_error():
    counted = CountedStream(10)
    assert len(counted) == 10 and counted.starts == [0]  # counted with one pass
    it = iter(from_source(CountedStream(10, num_records=12), 4, batches_per_call=1))
    assert [next(it).record_ids.tolist() for _ in range(2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with raises(
        SourceError,
        "CountedStream, record 10: the stream ended early; expected 12 records, found 10 records",
    ):
        next(it)


def test_records_read_ahead_are_kept_when_the_stream_restarts():
    stream = CountedStream(20, num_records=20)
    ids = lambda records: [int(r["id"]) for r in records]  # noqa: E731
    assert ids(stream.read_records(np.arange(10))) == list(range(10))
    assert ids(stream.read_records(np.array([12]))) == [12]  # 10 and 11 are held
    assert ids(stream.read_records(np.array([11, 12, 10]))) == [11, 12, 10]  # 12 again
    assert stream.starts == [0, 10]
    assert ids(stream.read_records(np.array([13]))) == [13]
