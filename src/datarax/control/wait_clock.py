"""`WaitClock`: how long a consumer waited for the batches it asked for.

A training loop alternates between asking for a batch and using it. The clock
adds up the time spent inside each request and the wall time of the whole loop,
so the *wait ratio* (waiting / wall time) says whether the loader (near 1) or the
consumer (near 0) bounds the loop. The first request is reported apart: it
includes compilation, which would hide the steady state of a short run.

Work dispatched asynchronously to a device is counted where it is waited for: a
batch handed out before its computation finished costs the loader nothing here,
and the consumer's step waits for it instead.

Example:
    >>> clock = WaitClock()
    >>> clock.record(0.0, 2.0)   # the first batch: 2 s (compiling)
    >>> clock.record(3.0, 3.5)   # then 1 s of training, 0.5 s of waiting
    >>> clock.record(4.5, 4.5)
    >>> f = clock.figures()
    >>> f["batches"], f["first_wait_s"], f["wait_s"], f["wall_s"], f["wait_ratio"]
    (3, 2.0, 0.5, 2.5, 0.2)
"""

from __future__ import annotations

from typing import Any


class WaitClock:
    """Accumulates the consumer's waits (see the module doc)."""

    __slots__ = ("_batches", "_first_wait", "_first_end", "_waited", "_last")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every request so far (the next one counts as the first)."""
        self._batches = 0
        self._first_wait = 0.0
        self._first_end = 0.0
        self._waited = 0.0
        self._last = 0.0

    def record(self, began: float, ended: float) -> None:
        """One request, from ``began`` to ``ended`` (``time.perf_counter()`` seconds)."""
        if self._batches == 0:
            self._first_wait, self._first_end = ended - began, ended
        else:
            self._waited += ended - began
        self._last = ended
        self._batches += 1

    def figures(self) -> dict[str, Any]:
        """``batches``, ``first_wait_s``, and after the first batch ``wait_s``,
        ``wall_s`` and ``wait_ratio`` (0.0 until a second batch was handed out)."""
        wall = self._last - self._first_end if self._batches > 1 else 0.0
        return {
            "batches": self._batches,
            "first_wait_s": self._first_wait,
            "wait_s": self._waited,
            "wall_s": wall,
            "wait_ratio": self._waited / wall if wall > 0 else 0.0,
        }
