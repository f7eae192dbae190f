"""RunAhead: items made ahead of the consumer, inline or on a thread, bounded, errors in place."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from datarax.control import RunAhead


class Counted:
    """Yields 0, 1, 2, ... up to ``n`` (failing at ``fail_at``), counting what was made."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at, self.made = n, fail_at, 0
        self.threads: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def __iter__(self):
        return self

    def __next__(self) -> int:
        self.gate.wait()
        if self.made == self.fail_at:
            raise ValueError(f"broken at {self.made}")
        if self.made >= self.n:
            raise StopIteration
        self.threads.append(threading.current_thread().name)
        self.made += 1
        return self.made - 1


def wait_until(condition, what: str) -> None:
    """Wait for a condition the producer thread will make true (10 s at most)."""
    event = threading.Event()
    for _ in range(1000):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_every_item_in_order_then_stop_iteration_every_time(threaded, depth):
    ahead = RunAhead(Counted(7), depth, threaded=threaded)
    assert [ahead.get() for _ in range(7)] == list(range(7))
    for _ in range(2):
        with pytest.raises(StopIteration):
            ahead.get()


def test_inline_keeps_exactly_depth_items_made_ahead_on_the_consumers_thread():
    items = Counted(100)
    ahead = RunAhead(items, 3, threaded=False)
    assert ahead.get() == 0
    assert items.made == 4 and ahead.ready == 3
    assert set(items.threads) == {threading.current_thread().name}


def test_a_thread_makes_at_most_depth_items_ahead():
    items = Counted(100)
    ahead = RunAhead(items, 2, name="ahead-test")
    assert ahead.get() == 0
    wait_until(lambda: items.made >= 3, "two items ahead")
    items.gate.clear()  # a third item ahead would block here; the bound stops before it
    assert ahead.ready == 2
    items.gate.set()
    assert ahead.get() == 1
    wait_until(lambda: items.made >= 4, "the freed slot to be refilled")
    ahead.stop()
    assert items.made == 4 and set(items.threads) == {"ahead-test"}


def test_first_inline_makes_the_first_item_on_the_consumers_thread():
    items = Counted(3)
    ahead = RunAhead(items, 2, first_inline=True, name="ahead-test")
    assert [ahead.get() for _ in range(3)] == [0, 1, 2]
    assert items.threads == [threading.current_thread().name, "ahead-test", "ahead-test"]


def test_the_byte_bound_stops_the_thread_but_one_item_always_passes():
    def blocks():
        for i in range(50):
            yield np.full(256, i, np.float32)  # 1 KiB each

    ahead = RunAhead(blocks(), 50, max_bytes=3000, measure=lambda a: a.nbytes)
    assert ahead.get()[0] == 0
    wait_until(lambda: ahead.buffered_bytes >= 3000, "three blocks ahead")
    assert ahead.ready == 3 and ahead.buffered_bytes == 3072 and ahead.peak_bytes == 3072
    ahead.stop()
    huge = RunAhead(iter([np.zeros(4096, np.uint8)]), 2, max_bytes=1, measure=lambda a: a.nbytes)
    assert huge.get().nbytes == 4096


@pytest.mark.parametrize("threaded", [False, True])
def test_an_error_reaches_the_consumer_at_its_item_and_every_later_call(threaded):
    items = Counted(10, fail_at=3)
    ahead = RunAhead(items, 4, threaded=threaded)
    assert [ahead.get() for _ in range(3)] == [0, 1, 2]
    for _ in range(2):
        with pytest.raises(ValueError, match="^broken at 3$"):
            ahead.get()
    assert items.made == 3  # nothing after the failure was made
