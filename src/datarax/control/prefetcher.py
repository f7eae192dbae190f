"""`Prefetcher`: runs any iterator ahead on a background thread, bounded in items and bytes.

Pipelines already prefetch their own chunks (``PrefetchNode``); a prefetcher is for
what comes after: a training loop's own per-batch work (host-side packing, a
``device_put`` with a sharding) or any other iterator. It holds at most
``buffer_size`` items and at most ``max_bytes`` bytes of arrays (one item is always
allowed, however large), so a slow consumer never makes it grow. Errors raised by
the wrapped iterator reach the consumer at the item where they happened.

When the wrapped iterator has ``get_state`` / ``set_state`` (a pipeline iterator),
the prefetcher's own state is the state *before the next item it will hand out*,
not the wrapped iterator's read-ahead position, so a checkpoint taken while items
are buffered resumes exactly.

Example:
    >>> import numpy as np
    >>> from datarax import from_source
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> src = MemorySource(MemorySourceConfig(), data={"x": np.arange(8)})
    >>> it = Prefetcher(iter(from_source(src, 2)), buffer_size=2)
    >>> _ = next(it); state = it.get_state(); state["position"]
    2
    >>> [b["x"].tolist() for b in it]
    [[2, 3], [4, 5], [6, 7]]
    >>> it.set_state(state); next(it)["x"].tolist()
    [2, 3]
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from datarax.core.errors import ConfigError, StateError

_END = object()


class Prefetcher(Iterator[Any]):
    """Iterates ``iterator`` ahead of the consumer on a daemon thread.

    Args:
        iterator: Any iterator (a pipeline iterator keeps its exact state).
        buffer_size: Most items held ahead (>= 1).
        max_bytes: Most bytes of array leaves held ahead (``None``: no byte bound).
        transform: Applied to each item on the background thread (for example
            ``lambda b: jax.device_put(dict(b), sharding)``).
    """

    def __init__(
        self,
        iterator: Iterator[Any],
        *,
        buffer_size: int = 2,
        max_bytes: int | None = None,
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            raise ConfigError(
                "invalid buffer size", where="Prefetcher", expected="an int >= 1", found=buffer_size
            )
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 1):
            raise ConfigError(
                "invalid byte bound",
                where="Prefetcher",
                expected="an int >= 1 or None",
                found=repr(max_bytes),
            )
        self._iterator = iterator
        self._buffer_size, self._max_bytes, self._transform = buffer_size, max_bytes, transform
        self._stateful = hasattr(iterator, "get_state") and hasattr(iterator, "set_state")
        self._cond = threading.Condition()
        self._items: deque[tuple[Any, Any, int]] = deque()  # (state before, item, bytes)
        self._bytes = 0
        self._thread: threading.Thread | None = None
        self._stop = False
        self._done = False
        self.peak_bytes = 0
        """Largest number of bytes held ahead at once."""

    # -- consumer --------------------------------------------------------------------
    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        if self._done and not self._items:
            raise StopIteration
        if self._thread is None:
            self._start()
        with self._cond:
            while not self._items:
                self._cond.wait()
            _, item, nbytes = self._items.popleft()
            self._bytes -= nbytes
            self._cond.notify_all()
        if item is _END:
            self._done = True
            self._join()
            raise StopIteration
        if isinstance(item, _Raised):
            self._done = True
            self._join()
            raise item.error
        return item

    @property
    def buffered_bytes(self) -> int:
        """Bytes of array leaves held ahead right now."""
        return self._bytes

    def get_state(self) -> dict[str, Any]:
        """The wrapped iterator's state before the next item this prefetcher hands out."""
        if not self._stateful:
            raise StateError(
                "the wrapped iterator has no state",
                where="Prefetcher.get_state",
                expected="an iterator with get_state() and set_state()",
                found=type(self._iterator).__name__,
            )
        with self._cond:
            if self._items:
                return self._items[0][0]
            return self._iterator.get_state()  # type: ignore[attr-defined]

    def set_state(self, state: dict[str, Any]) -> None:
        """Drop what is buffered and continue the wrapped iterator from ``state``."""
        self.get_state()  # the same check
        self.close()
        self._iterator.set_state(state)  # type: ignore[attr-defined]
        self._items.clear()
        self._bytes, self._stop, self._done = 0, False, False

    def close(self) -> None:
        """Stop the background thread (it finishes the item it is computing)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._join()

    # -- producer --------------------------------------------------------------------
    def _start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="datarax-prefetcher", daemon=True)
        self._thread.start()

    def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _full(self) -> bool:
        if not self._items:
            return False
        if len(self._items) >= self._buffer_size:
            return True
        return self._max_bytes is not None and self._bytes >= self._max_bytes

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._full() and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
            state = self._iterator.get_state() if self._stateful else None  # type: ignore[attr-defined]
            try:
                item = next(self._iterator)
                if self._transform is not None:
                    item = self._transform(item)
            except StopIteration:
                item = _END
            except BaseException as error:  # handed to the consumer at this item
                item = _Raised(error)
            nbytes = _nbytes(item) if item is not _END and not isinstance(item, _Raised) else 0
            with self._cond:
                self._items.append((state, item, nbytes))
                self._bytes += nbytes
                self.peak_bytes = max(self.peak_bytes, self._bytes)
                self._cond.notify_all()
            if item is _END or isinstance(item, _Raised):
                return


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _nbytes(item: Any) -> int:
    """Bytes of the array leaves of ``item`` (a Batch, dict, tuple...)."""
    if hasattr(item, "data") and hasattr(item, "states"):  # a Batch: count its arrays only
        item = (item.data, item.states)
    return sum(
        int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize
        for leaf in jax.tree_util.tree_leaves(item)
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype")
    )
