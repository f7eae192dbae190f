"""Prefetcher: runs an iterator ahead within item and byte bounds, keeps exact state."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from datarax import from_source
from datarax.control import Prefetcher
from datarax.core.errors import ConfigError, StateError
from datarax.sources import MemorySource, MemorySourceConfig
from harness import snapshot


class Counting:
    """An iterator of 1 KiB arrays that records how far it was read."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at, self.produced = n, fail_at, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.produced == self.fail_at:
            raise ValueError(f"broken at {self.produced}")
        if self.produced >= self.n:
            raise StopIteration
        self.produced += 1
        return {"x": np.full(256, self.produced, np.float32)}  # 1024 bytes


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_yields_every_item_in_order():
    items = [int(b["x"][0]) for b in Prefetcher(Counting(10), buffer_size=3)]
    assert items == list(range(1, 11))


def test_holds_at_most_buffer_size_items_ahead():
    source = Counting(100)
    it = Prefetcher(source, buffer_size=3)
    next(it)
    wait_for(lambda: source.produced >= 4)
    time.sleep(0.1)
    assert source.produced == 4  # the one handed out + 3 ahead
    it.close()


def test_byte_bound_limits_what_is_held():
    source = Counting(100)
    it = Prefetcher(source, buffer_size=50, max_bytes=3000)
    next(it)
    wait_for(lambda: source.produced >= 4)
    time.sleep(0.1)
    assert source.produced == 4  # 3 KiB held: the third item reaches the bound
    assert it.buffered_bytes == 3072 and it.peak_bytes == 3072
    it.close()


def test_one_item_is_always_allowed_even_above_the_bound():
    assert [int(b["x"][0]) for b in Prefetcher(Counting(3), max_bytes=1)] == [1, 2, 3]


def test_errors_reach_the_consumer_at_their_item():
    it = Prefetcher(Counting(10, fail_at=4), buffer_size=8)
    assert [int(next(it)["x"][0]) for _ in range(4)] == [1, 2, 3, 4]
    for _ in range(2):  # refused again: nothing after the failed item is handed out
        with pytest.raises(ValueError, match="broken at 4"):
            next(it)


def test_transform_runs_on_the_background_thread():
    names = []

    def tag(item):
        names.append(threading.current_thread().name)
        return item["x"].sum()

    assert list(Prefetcher(Counting(2), transform=tag)) == [256.0, 512.0]
    assert names == ["datarax-prefetcher"] * 2


def test_state_is_the_consumers_position_not_the_read_ahead():
    src = MemorySource(MemorySourceConfig(), data={"x": np.arange(40)})

    def pipeline():
        return from_source(src, 4, shuffle=True, seed=2, num_epochs=2)

    reference = [snapshot(b) for b in pipeline()]
    it = Prefetcher(iter(pipeline()), buffer_size=5)
    for i in range(7):
        state = it.get_state()
        fresh = iter(pipeline())
        fresh.set_state(state)
        assert snapshot(next(fresh)) == reference[i]
        assert snapshot(next(it)) == reference[i]
    it.set_state(state)  # back to before batch 6
    assert [snapshot(b) for b in it] == reference[6:]


def test_bad_arguments_and_stateless_iterators():
    with pytest.raises(ConfigError, match="invalid buffer size"):
        Prefetcher(iter([]), buffer_size=0)
    with pytest.raises(ConfigError, match="invalid byte bound"):
        Prefetcher(iter([]), max_bytes=0)
    with pytest.raises(StateError, match="the wrapped iterator has no state"):
        Prefetcher(iter([1])).get_state()
