"""The consumer's wait ratio, measured by the iterator with a scripted clock."""

from __future__ import annotations

import numpy as np

import datarax.dag.executor as executor
from datarax import from_source
from datarax.sources import MemorySource, MemorySourceConfig


class ScriptedClock:
    """``perf_counter`` that moves only when told to, and by ``per_call`` at each call."""

    def __init__(self, per_call: float) -> None:
        self.now, self.per_call = 0.0, per_call

    def perf_counter(self) -> float:
        self.now += self.per_call
        return self.now


def test_the_wait_ratio_splits_the_loop_between_loader_and_consumer(monkeypatch):
    clock = ScriptedClock(per_call=0.5)  # each next() measures 0.5 s of waiting
    monkeypatch.setattr(executor, "time", clock)
    source = MemorySource(MemorySourceConfig(), data={"x": np.arange(40.0)})
    it = iter(from_source(source, batch_size=4))
    next(it)
    clock.now += 10.0  # the first batch's wait is reported apart (compilation)
    for _ in range(4):
        next(it)
        clock.now += 1.5  # the consumer works 1.5 s on each batch
    waits = it.waits()
    assert waits["batches"] == 5
    assert waits["first_wait_s"] == 0.5
    # After the first batch: 4 waits of 0.5 s, from the end of the first (t = 1.0)
    # to the end of the last (t = 19.5); the clock also moves 0.5 s as each call starts.
    assert waits["wait_s"] == 2.0
    assert waits["wall_s"] == 18.5
    assert waits["wait_ratio"] == waits["wait_s"] / waits["wall_s"]


def test_reset_waits_starts_counting_again(monkeypatch):
    clock = ScriptedClock(per_call=1.0)
    monkeypatch.setattr(executor, "time", clock)
    source = MemorySource(MemorySourceConfig(), data={"x": np.arange(40.0)})
    it = iter(from_source(source, batch_size=4))
    next(it), next(it)
    it.reset_waits()
    assert it.waits() == {
        "batches": 0,
        "first_wait_s": 0.0,
        "wait_s": 0.0,
        "wall_s": 0.0,
        "wait_ratio": 0.0,
    }
    next(it)
    clock.now += 3.0
    next(it)
    waits = it.waits()
    assert (waits["batches"], waits["first_wait_s"], waits["wait_s"]) == (2, 1.0, 1.0)
    assert waits["wall_s"] == 5.0 and waits["wait_ratio"] == 0.2
