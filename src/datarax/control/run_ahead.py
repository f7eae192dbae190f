"""`RunAhead`: produces an iterator's items ahead of its consumer, bounded in items and bytes.

The host plane's one run-ahead mechanism. A pipeline iterator runs its chunks
through it (so the host reads and the dispatch of the next chunks overlap the
consumer), and :class:`~datarax.control.Prefetcher` offers it for any iterator.

Two ways to run ahead:

- **threaded**: a daemon thread makes items while the consumer works, and waits
  while ``depth`` items (or ``max_bytes`` bytes) are ready, so a slow consumer never
  makes it grow;
- **inline**: the consumer's own thread makes up to ``depth`` items ahead whenever it
  asks for one. That is all the overlap needed when making an item only dispatches
  asynchronous XLA work, and it never hands the interpreter between two threads.

An error raised while making an item reaches the consumer at that item, and every
later call raises it again: nothing after a failure is handed out. After the last
item every call raises ``StopIteration``.

Example:
    >>> ahead = RunAhead(iter(range(3)), depth=2)
    >>> [ahead.get() for _ in range(3)]
    [0, 1, 2]
    >>> ahead.get()
    Traceback (most recent call last):
    ...
    StopIteration
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from datarax.core.exit import stop_at_exit

Measure = Callable[[Any], int]


class _End:
    """The producer's last word: the items ended (``error is None``) or failed.

    The error's traceback is kept as the producer raised it: each time the error is
    raised again it starts from that traceback, so it neither grows with every call
    nor keeps the frames of earlier callers (and the objects they hold) alive.
    """

    __slots__ = ("error", "traceback")

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.traceback = None if error is None else error.__traceback__


class RunAhead:
    """Makes the items of ``items`` ahead of the consumer (see the module doc).

    Args:
        items: The iterator whose items are made ahead.
        depth: Items made ahead of the one being consumed (0: made when asked).
        threaded: Make them on a daemon thread (else on the consumer's thread).
        max_bytes: Threaded only: stop making items while this many bytes are
            ready (one item is always allowed, however large).
        measure: The size in bytes of an item (needed with ``max_bytes``).
        first_inline: Threaded only: make the first item on the consumer's thread
            (waiting for a new thread to be scheduled would only delay it).
        name: The thread's name.
    """

    def __init__(
        self,
        items: Iterator[Any],
        depth: int,
        *,
        threaded: bool = True,
        max_bytes: int | None = None,
        measure: Measure | None = None,
        first_inline: bool = False,
        name: str = "datarax-run-ahead",
    ) -> None:
        self._items = items
        self._depth = depth
        self._threaded = threaded and depth > 0
        self._max_bytes, self._measure = max_bytes, measure
        self._first_inline = first_inline
        self._name = name
        self._ready: deque[tuple[Any, int]] = deque()
        self._bytes = 0
        self._end: _End | None = None  # once seen by the consumer, it stays
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.peak_bytes = 0
        """Largest number of bytes held ready at once."""

    @property
    def buffered_bytes(self) -> int:
        """Bytes of the items ready now (threaded with ``measure``; else 0)."""
        return self._bytes

    @property
    def ready(self) -> int:
        """Items made and not handed out yet."""
        return len(self._ready)

    def get(self) -> Any:
        """The next item; raises the producer's error (every time) or ``StopIteration``."""
        if self._end is not None:
            return self._finish(self._end)
        if not self._threaded:
            while len(self._ready) <= self._depth and not self._ended():
                self._ready.append((self._make(), 0))
            item = self._ready.popleft()[0]
        elif self._thread is None and self._first_inline and not self._ready:
            self._first_inline = False
            item = self._make()
            if not isinstance(item, _End):
                self._start()
        else:
            if self._thread is None and not self._ready:
                self._start()
            with self._cond:
                while not self._ready:
                    self._cond.wait()
                item, nbytes = self._ready.popleft()
                self._bytes -= nbytes
                self._cond.notify_all()
        if isinstance(item, _End):
            self._end = item
            self._join()
            return self._finish(item)
        return item

    def stop(self, *, wait: bool = True) -> None:
        """Stop the thread (it finishes the item it is making); what is ready is kept.

        Args:
            wait: Wait for the thread to finish (without: it ends on its own, and
                what it still makes is dropped with this object).
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if wait:
            self._join()
        else:
            self._thread = None

    # -- producing ----------------------------------------------------------------------
    def _make(self) -> Any:
        try:
            return next(self._items)
        except StopIteration:
            return _End()
        except Exception as error:  # handed to the consumer at this item
            return _End(error)

    def _ended(self) -> bool:
        return bool(self._ready) and isinstance(self._ready[-1][0], _End)

    def _finish(self, end: _End) -> Any:
        if end.error is not None:
            raise end.error.with_traceback(end.traceback)
        raise StopIteration

    def _start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        stop_at_exit(self)
        self._thread.start()

    def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _full(self) -> bool:
        if not self._ready:
            return False
        if len(self._ready) >= self._depth:
            return True
        return self._max_bytes is not None and self._bytes >= self._max_bytes

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._full() and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
            try:
                item = next(self._items)
            except StopIteration:
                item = _End()
            except BaseException as error:  # forwarded to the consumer, raised there
                item = _End(error)
            ended = isinstance(item, _End)
            nbytes = 0 if ended or self._measure is None else self._measure(item)
            with self._cond:
                self._ready.append((item, nbytes))
                self._bytes += nbytes
                self.peak_bytes = max(self.peak_bytes, self._bytes)
                self._cond.notify_all()
            if ended:
                return
