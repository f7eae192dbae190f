"""DefaultBatcher: cutting an epoch into batches, stacking and padding records."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax.batching import DefaultBatcher, DefaultBatcherConfig
from datarax.core.errors import ConfigError


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
