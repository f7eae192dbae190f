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

from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from datarax.control.run_ahead import RunAhead
from datarax.core.config import check_int
from datarax.core.errors import ConfigError, StateError


class Prefetcher(Iterator[Any]):
    """Iterates ``iterator`` ahead of the consumer on a daemon thread.

    A :class:`~datarax.control.RunAhead` over the wrapped iterator, which also
    remembers the wrapped iterator's state before each item it holds.

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
        if not hasattr(iterator, "__next__"):
            raise ConfigError(
                "not an iterator",
                where="Prefetcher",
                expected="an iterator (e.g. iter(pipeline))",
                found=type(iterator).__name__,
            )
        if transform is not None and not callable(transform):
            raise ConfigError(
                "transform is not a function",
                where="Prefetcher(transform=...)",
                expected="a callable item -> item, or None",
                found=type(transform).__name__,
            )
        check_int(buffer_size, where="Prefetcher", minimum=1, message="invalid buffer size")
        check_int(
            max_bytes, where="Prefetcher", minimum=1, allow_none=True, message="invalid byte bound"
        )
        self._iterator = iterator
        self._buffer_size, self._max_bytes, self._transform = buffer_size, max_bytes, transform
        self._stateful = hasattr(iterator, "get_state") and hasattr(iterator, "set_state")
        # The wrapped iterator's state before the next item handed out: its state after
        # each item is noted by the thread that made it, so it is never read mid-item.
        self._state = self._iterator.get_state() if self._stateful else None  # type: ignore[attr-defined]
        self._ahead = self._run_ahead()
        self._peak = 0

    @property
    def peak_bytes(self) -> int:
        """Largest number of bytes held ahead at once."""
        return max(self._peak, self._ahead.peak_bytes)

    @property
    def buffered_bytes(self) -> int:
        """Bytes of array leaves held ahead right now."""
        return self._ahead.buffered_bytes

    # -- consumer --------------------------------------------------------------------
    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        # After a failure every call raises it again (nothing after the failed item is
        # handed out) until ``set_state``; an interrupt while waiting loses nothing.
        after, item = self._ahead.get()
        self._state = after
        if isinstance(item, _Interrupted):
            raise item.interrupt
        return item

    def get_state(self) -> dict[str, Any]:
        """The wrapped iterator's state before the next item this prefetcher hands out."""
        if not self._stateful:
            raise StateError(
                "the wrapped iterator has no state",
                where="Prefetcher.get_state",
                expected="an iterator with get_state() and set_state()",
                found=type(self._iterator).__name__,
            )
        assert self._state is not None
        return self._state

    def set_state(self, state: dict[str, Any]) -> None:
        """Drop what is buffered and continue the wrapped iterator from ``state``."""
        self.get_state()  # the same check
        self.close()
        self._iterator.set_state(state)  # type: ignore[attr-defined]
        self._state = self._iterator.get_state()  # type: ignore[attr-defined]
        self._peak = self.peak_bytes
        self._ahead = self._run_ahead()

    def close(self) -> None:
        """Stop the background thread (it finishes the item it is computing)."""
        self._ahead.stop()

    # -- producer --------------------------------------------------------------------
    def _run_ahead(self) -> RunAhead:
        return RunAhead(
            self._items(),
            self._buffer_size,
            max_bytes=self._max_bytes,
            measure=lambda pair: 0 if isinstance(pair[1], _Interrupted) else _nbytes(pair[1]),
            name="datarax-prefetcher",
        )

    def _items(self) -> Iterator[tuple[Any, Any]]:
        """``(state after, item)`` pairs of the wrapped iterator, transformed."""
        stateful, iterator, transform = self._stateful, self._iterator, self._transform
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except Exception:
                raise  # a failure: handed to the consumer at this item, every time
            except BaseException as interrupt:  # Ctrl-C inside the wrapped iterator
                # Handed to the consumer once, at this item; the wrapped iterator
                # continues from its state (a pipeline iterator loses nothing).
                item = _Interrupted(interrupt)
            state = iterator.get_state() if stateful else None  # type: ignore[attr-defined]
            if transform is not None and not isinstance(item, _Interrupted):
                item = transform(item)
            yield state, item


class _Interrupted:
    """An interrupt raised by the wrapped iterator, to be raised in the consumer."""

    __slots__ = ("interrupt",)

    def __init__(self, interrupt: BaseException) -> None:
        self.interrupt = interrupt


def _nbytes(item: Any) -> int:
    """Bytes of the array leaves of ``item`` (a Batch, dict, tuple...)."""
    if hasattr(item, "data") and hasattr(item, "states"):  # a Batch: count its arrays only
        item = (item.data, item.states)
    return sum(
        int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize
        for leaf in jax.tree_util.tree_leaves(item)
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype")
    )
