"""Geometry: an epoch's positions grouped into batches of every stage, and into chunks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax.batching import DefaultBatcher, DefaultBatcherConfig, Geometry
from datarax.core.errors import PipelineBuildError

stages = st.lists(st.tuples(st.integers(1, 12), st.booleans()), min_size=1, max_size=3)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 400), stages=stages, batches=st.integers(1, 6))
def test_chunks_hold_whole_batches_of_every_stage_and_cover_the_epoch(n, stages, batches):
    g = Geometry(n, tuple(stages))
    if any(end == 0 for end in g.ends):
        with pytest.raises(PipelineBuildError, match="drop_remainder leaves no batch"):
            g.check()
        return
    g.check()
    rows = g.rows_for(batches)
    assert rows % g.align == 0 and all(rows % size == 0 for size in g.batch_sizes())
    assert rows >= batches * g.batch_size
    assert g.align == math.lcm(*(size for size, _ in stages))
    # Chunk after chunk, the output batches partition [0, epoch_end) in order.
    handed = []
    for start in range(0, g.epoch_end, rows):
        assert g.chunk_start(start) == start
        handed.extend(g.output_bounds(start, rows, start))
    assert [b for b, _ in handed] == list(range(0, g.epoch_end, g.batch_size))
    assert sum(size for _, size in handed) == g.epoch_end
    assert all(size == g.batch_size for _, size in handed[:-1])
    assert len(handed) == g.batches_per_epoch


def test_ends_follow_each_stage_drop_rule():
    g = Geometry(100, ((32, True), (48, False)))
    assert g.ends == (96, 96)
    assert (g.read_end, g.epoch_end, g.batch_size, g.align) == (96, 96, 48, 96)
    assert Geometry(100, ((32, False), (48, True))).ends == (100, 96)


def test_a_resumed_position_between_batches_starts_mid_chunk():
    g = Geometry(100, ((10, False),))
    assert g.chunk_start(37) == 30
    # From position 40 of a chunk starting at 30 of 30 rows: batches 40 and 50.
    assert g.output_bounds(30, 30, 40) == [(40, 10), (50, 10)]
    rest = g.remaining(35)
    assert rest.num_records == 65 and rest.output_bounds(60, 10, 60) == [(60, 5)]
    assert g.remaining(0) is g


def test_the_error_names_the_stage_that_leaves_no_batch():
    with pytest.raises(
        PipelineBuildError,
        match=r"^RebatchNode\(128\): drop_remainder leaves no batch in an epoch; "
        r"expected batch_size <= 100 records per epoch, found batch_size=128$",
    ):
        Geometry(100, ((10, False), (128, True))).check()
    with pytest.raises(PipelineBuildError, match=r"expected batch_size <= 5 records per epoch"):
        Geometry(5, ((8, True),)).check()


def test_the_default_batcher_is_one_stage_of_a_geometry():
    batcher = DefaultBatcher(DefaultBatcherConfig(batch_size=4, drop_remainder=True))
    assert batcher.stage == (4, True)
    assert batcher.geometry(10) == Geometry(10, ((4, True),))
    assert batcher.bounds(10) == [(0, 4), (4, 4)]
    assert batcher.epoch_end(10) == 8
