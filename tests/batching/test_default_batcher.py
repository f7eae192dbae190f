"""DefaultBatcher: cutting an epoch into batches, stacking and padding records."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax.batching import DefaultBatcher, DefaultBatcherConfig
from datarax.core.errors import ConfigError, SchemaError


def batcher(batch_size: int, drop_remainder: bool = False, name: str | None = None):
    return DefaultBatcher(
        DefaultBatcherConfig(batch_size=batch_size, drop_remainder=drop_remainder), name=name
    )


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 5000), batch_size=st.integers(1, 300), start=st.integers(0, 5000))
def test_bounds_partition_the_rest_of_the_epoch(n, batch_size, start):
    start = min(start, n)
    bounds = batcher(batch_size).bounds(n, start)
    # Contiguous, starting at `start`, covering [start, n) exactly.
    pos = start
    for s, size in bounds:
        assert s == pos
        assert size > 0
        pos += size
    assert pos == n
    # Every batch is full except possibly the last.
    assert all(size == batch_size for _, size in bounds[:-1])
    if bounds:
        assert bounds[-1][1] == (n - start) % batch_size or bounds[-1][1] == batch_size
    assert len(bounds) == -(-(n - start) // batch_size)
    assert batcher(batch_size).epoch_end(n) == n


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 5000), batch_size=st.integers(1, 300), start_batch=st.integers(0, 100))
def test_drop_remainder_drops_only_the_short_last_batch(n, batch_size, start_batch):
    full = n // batch_size
    start = min(start_batch, full) * batch_size
    b = batcher(batch_size, drop_remainder=True)
    bounds = b.bounds(n, start)
    assert bounds == [(s, batch_size) for s in range(start, full * batch_size, batch_size)]
    assert b.epoch_end(n) == full * batch_size
    kept = batcher(batch_size).bounds(n, start)
    assert bounds == [bd for bd in kept if bd[1] == batch_size]


def test_bounds_docstring_examples():
    assert batcher(4).bounds(10) == [(0, 4), (4, 4), (8, 2)]
    assert batcher(4, drop_remainder=True).bounds(10) == [(0, 4), (4, 4)]
    assert batcher(4).bounds(10, start=6) == [(6, 4)]
    assert batcher(4).bounds(10, start=7) == [(7, 3)]
    assert batcher(4).bounds(8) == [(0, 4), (4, 4)]
    assert batcher(4).bounds(3) == [(0, 3)]
    assert batcher(4, drop_remainder=True).bounds(3) == []
    assert batcher(4).bounds(0) == []


def test_batch_size_property():
    assert batcher(7).batch_size == 7


@pytest.mark.parametrize("bad", [0, -1, 2.0, "4", None, True])
def test_bad_batch_size_raises_config_error(bad):
    expected = re.escape(
        "DefaultBatcherConfig.batch_size: must be a positive integer; expected an int > 0, "
        f"found {bad!r}"
    )
    with pytest.raises(ConfigError, match=f"^{expected}$"):
        DefaultBatcherConfig(batch_size=bad)


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_bad_drop_remainder_raises_config_error(bad):
    with pytest.raises(
        ConfigError,
        match=r"^DefaultBatcherConfig\.drop_remainder: must be a bool;"
        rf" expected True or False, found {re.escape(repr(bad))}$",
    ):
        DefaultBatcherConfig(batch_size=2, drop_remainder=bad)


def test_config_is_frozen():
    config = DefaultBatcherConfig(batch_size=3)
    with pytest.raises(AttributeError):
        config.batch_size = 4  # type: ignore[misc]
    assert config.to_dict() == {"batch_size": 3, "drop_remainder": False}


def test_collate_stacks_fields():
    records = [{"image": np.full((2, 3), i, np.float32), "label": np.int32(i)} for i in range(4)]
    out = batcher(4).collate(records)
    assert set(out) == {"image", "label"}
    assert out["image"].shape == (4, 2, 3) and out["image"].dtype == np.float32
    assert out["label"].shape == (4,) and out["label"].dtype == np.int32
    for i in range(4):
        np.testing.assert_array_equal(out["image"][i], records[i]["image"])
    np.testing.assert_array_equal(out["label"], np.arange(4))


def test_collate_single_record():
    out = batcher(4).collate([{"x": np.arange(3)}])
    np.testing.assert_array_equal(out["x"], [[0, 1, 2]])


def test_collate_shape_mismatch_raises_schema_error_naming_row_and_field():
    records = [{"x": np.zeros(3, np.float32), "y": np.int32(0)} for _ in range(3)]
    records[2] = {"x": np.zeros(4, np.float32), "y": np.int32(0)}
    with pytest.raises(
        SchemaError,
        match=re.escape(
            "collator, batch row 2, field 'x': record does not match the batch's first record; "
            "expected float32(3,), found float32(4,)"
        ),
    ):
        batcher(3, name="collator").collate(records)


def test_collate_dtype_mismatch_raises_schema_error():
    records = [{"x": np.zeros(3, np.float32)}, {"x": np.zeros(3, np.int32)}]
    with pytest.raises(
        SchemaError,
        match=r"^DefaultBatcher, batch row 1, field 'x': .*"
        r"expected float32\(3,\), found int32\(3,\)$",
    ):
        batcher(2).collate(records)


def test_schema_error_is_type_error():
    with pytest.raises(TypeError):
        batcher(2).collate([{"x": np.zeros(2)}, {"x": np.zeros(3)}])


def test_collate_missing_field_raises_schema_error():
    with pytest.raises(
        SchemaError,
        match=r"batch row 1: record has different fields.*expected \['x', 'y'\], found \['x'\]",
    ):
        batcher(2).collate([{"x": 1, "y": 2}, {"x": 1}])


def test_collate_extra_field_raises_schema_error():
    with pytest.raises(SchemaError, match=r"batch row 1"):
        batcher(2).collate([{"x": 1}, {"x": 1, "y": 2}])


def test_pad_repeats_row_zero():
    columns = {"x": np.arange(6).reshape(3, 2), "y": np.array([7, 8, 9], np.int32)}
    out = DefaultBatcher.pad(columns, 5)
    np.testing.assert_array_equal(out["x"], [[0, 1], [2, 3], [4, 5], [0, 1], [0, 1]])
    np.testing.assert_array_equal(out["y"], [7, 8, 9, 7, 7])
    assert out["y"].dtype == np.int32
    # The input is not modified.
    assert columns["x"].shape == (3, 2)


def test_pad_to_same_size_returns_input_unchanged():
    columns = {"x": np.arange(4)}
    assert DefaultBatcher.pad(columns, 4) is columns


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), extra=st.integers(0, 20))
def test_pad_property(n, extra):
    x = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    out = DefaultBatcher.pad({"x": x}, n + extra)["x"]
    assert out.shape == (n + extra, 3)
    np.testing.assert_array_equal(out[:n], x)
    np.testing.assert_array_equal(out[n:], np.broadcast_to(x[0], (extra, 3)))
