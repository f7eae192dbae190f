"""What the library stops when the interpreter exits, in a fixed order.

Background work must end before the interpreter does: a thread killed inside an
XLA call aborts the process, worker processes must not outlive it, and
shared-memory files must not be left in ``/dev/shm``. Everything registers here,
and one exit hook stops it stage by stage:

1. ``POOLS``: worker pools are terminated first, so that a thread waiting for a
   read from them wakes up;
2. ``THREADS``: background threads (run-ahead, compilation) are stopped and joined;
3. ``FILES``: files the process created (shared memory) are removed.

Objects are held weakly: one that is collected needs no stopping.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

POOLS, THREADS, FILES = 0, 1, 2
_STAGES = (POOLS, THREADS, FILES)


class Stoppable(Protocol):
    """Anything with a ``stop()`` method."""

    def stop(self) -> None: ...


_objects: dict[int, weakref.WeakSet[Stoppable]] = {s: weakref.WeakSet() for s in _STAGES}
_callbacks: dict[int, list[Callable[[], None]]] = {s: [] for s in _STAGES}
_lock = threading.Lock()


def stop_at_exit(obj: Stoppable, *, stage: int = THREADS) -> None:
    """Call ``obj.stop()`` at exit (unless ``obj`` was collected before)."""
    with _lock:
        _objects[stage].add(obj)


def at_exit(callback: Callable[[], None], *, stage: int) -> None:
    """Call ``callback()`` at exit, in ``stage`` (each callback registered once)."""
    with _lock:
        if callback not in _callbacks[stage]:
            _callbacks[stage].append(callback)


@atexit.register
def run_exit_stages() -> None:
    """Stop everything registered, stage by stage (run by the exit hook)."""
    for stage in _STAGES:
        with _lock:
            objects, callbacks = list(_objects[stage]), list(_callbacks[stage])
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()
        for obj in objects:
            with contextlib.suppress(Exception):
                obj.stop()
