"""Length bucketing against a streaming Python model, and as a resumable pipeline stage.

The model reads records one at a time, appends each to its bucket and emits a batch
whenever a bucket is full, then the part-full buckets in bucket order; the plan and
the pipeline stage must give exactly its batches.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax import from_source
from datarax.core.errors import ConfigError, RecordError, SchemaError
from datarax.dag.bucketing import BucketedPipeline
from datarax.operators.text.bucketing import BucketConfig, plan_buckets
from datarax.sources import MemorySource, MemorySourceConfig
from harness import assert_resumes_at_every_step


def model_plan(lengths, boundaries, batch_sizes, drop_remainder):
    open_buckets = [[] for _ in boundaries]
    out = []
    for row, n in enumerate(lengths):
        bucket = next(i for i, b in enumerate(boundaries) if n <= b)
        open_buckets[bucket].append(row)
        if len(open_buckets[bucket]) == batch_sizes[bucket]:
            out.append((bucket, open_buckets[bucket]))
            open_buckets[bucket] = []
    if not drop_remainder:
        out += [(b, rows) for b, rows in enumerate(open_buckets) if rows]
    return out


@given(
    lengths=st.lists(st.integers(0, 20), min_size=1, max_size=60),
    sizes=st.lists(st.integers(1, 6), min_size=3, max_size=3),
    drop=st.booleans(),
)
@settings(max_examples=25, deadline=None)
def test_plan_equals_the_model(lengths, sizes, drop):
    config = BucketConfig(boundaries=(4, 9, 20), batch_sizes=tuple(sizes), drop_remainder=drop)
    got = [(b, rows.tolist()) for b, rows in plan_buckets(np.array(lengths), config)]
    assert got == model_plan(lengths, (4, 9, 20), sizes, drop)


WIDTH = 12
LENGTHS = np.random.default_rng(1).integers(0, WIDTH + 1, 50)
CONFIG = BucketConfig(boundaries=(3, 6, 12), batch_sizes=(6, 4, 2), window_batches=2)


def _source():
    rows = [np.arange(1, n + 1, dtype=np.int32) + 100 * r for r, n in enumerate(LENGTHS)]
    return MemorySource(
        MemorySourceConfig(pad_to={"tokens": WIDTH}, pad_value=-1),
        data={"tokens": rows, "label": np.arange(50, dtype=np.int32) * 2},
    )


def _bucketed(config=CONFIG, num_epochs=2):
    return BucketedPipeline(
        from_source(_source(), 8, shuffle=True, seed=2, num_epochs=num_epochs), config
    )


@pytest.mark.parametrize("drop", [False, True])
def test_stream_equals_the_model_window_by_window(drop):
    config = BucketConfig(
        boundaries=CONFIG.boundaries,
        batch_sizes=CONFIG.batch_sizes,
        window_batches=2,
        drop_remainder=drop,
    )
    got = list(_bucketed(config))
    upstream = list(from_source(_source(), 8, shuffle=True, seed=2, num_epochs=2))
    want = []
    for epoch in (0, 1):
        batches = [b for b in upstream if b.epoch == epoch]
        for w in range(0, len(batches), 2):
            ids = np.concatenate([b.record_ids for b in batches[w : w + 2]])
            lengths = LENGTHS[ids].tolist()
            for bucket, rows in model_plan(lengths, config.boundaries, config.batch_sizes, drop):
                want.append((epoch, bucket, ids[rows].tolist()))
    assert len(got) == len(want)
    for batch, (epoch, bucket, ids) in zip(got, want, strict=True):
        size, boundary = config.batch_sizes[bucket], config.boundaries[bucket]
        assert batch.epoch == epoch
        assert batch["tokens"].shape == (size, boundary) and batch["label"].shape == (size,)
        assert batch.record_ids.tolist() == ids + [-1] * (size - len(ids))
        for row, rid in enumerate(ids):
            n = LENGTHS[rid]
            want_tokens = np.full(boundary, -1, np.int32)  # the source's padding
            want_tokens[:n] = np.arange(1, n + 1) + 100 * rid
            np.testing.assert_array_equal(batch["tokens"][row], want_tokens)
            assert batch["label"][row] == 2 * rid and batch["tokens_length"][row] == n
        pad = slice(len(ids), size)
        assert np.all(batch["tokens"][pad] == 0) and np.all(batch["tokens_length"][pad] == 0)
    if not drop:  # every record once per epoch
        for epoch in (0, 1):
            ids = [i for b in got if b.epoch == epoch for i in b.record_ids.tolist() if i >= 0]
            assert sorted(ids) == list(range(50))


def test_resumes_exactly_at_every_step():
    stream = assert_resumes_at_every_step(_bucketed)
    assert len(stream) > 10


def test_errors():
    with pytest.raises(
        ConfigError,
        match=(
            r"BucketConfig.boundaries: boundaries must increase; expected "
            r"strictly increasing lengths, found \(8, 4\)"
        ),
    ):
        BucketConfig(boundaries=(8, 4), batch_sizes=(1, 1))
    with pytest.raises(
        ConfigError,
        match=r"BucketConfig.batch_sizes: one batch size per bucket; expected 2 batch sizes",
    ):
        BucketConfig(boundaries=(4, 8), batch_sizes=(1,))
    with pytest.raises(ConfigError, match=r"BucketConfig.batch_sizes: must be positive integers"):
        BucketConfig(boundaries=(4,), batch_sizes=(0,))
    with pytest.raises(ConfigError, match=r"BucketConfig.drop_remainder: must be a bool"):
        BucketConfig(drop_remainder=1)
    pipeline = from_source(_source(), 8)
    with pytest.raises(
        SchemaError, match=r"BucketedPipeline: field missing; expected a field 'ids'"
    ):
        BucketedPipeline(pipeline, BucketConfig(field="ids"))
    short = BucketedPipeline(pipeline, BucketConfig(boundaries=(4, 8), batch_sizes=(2, 2)))
    first_long = next(i for i in range(50) if LENGTHS[i] > 8)
    with pytest.raises(
        RecordError,
        match=(
            rf"bucketing, record {first_long}, field 'tokens_length': sequence length outside "
            r"the buckets; expected a length in \[0, 8\]"
        ),
    ):
        list(short)
