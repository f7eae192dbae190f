"""`CacheNode`: memoises the output of the deterministic nodes before it, by record id.

The first time a record passes, the nodes before the cache compute it and the
result is stored on the device; later epochs gather the stored rows instead, so
the compiled function of a fully cached chunk starts at the cache. Stored values
are keyed by the record id *and* by the values of the upstream operators'
parameters (and the source, sampler and seed): changing a parameter with
``nnx.update`` gives a fresh cache, never a stale one.

Everything before a cache must be a function of each record alone: a stochastic
operator or a per-batch decision upstream is a build-time error. The cache holds
derived data only; it is not part of the iterator's state (a restored iterator
refills it, and the stream is the same either way). The node is a value; the rows
live in a :class:`CacheStore` of the pipeline's runtime (:mod:`datarax.dag.runtime`).
"""

from __future__ import annotations

import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import check_int
from datarax.core.errors import PipelineBuildError
from datarax.dag.base import Node, TraceContext


class CacheNode(Node):
    """Stores the output of the nodes before it, per record, on the device.

    Args:
        max_records: How many records to keep (``None``: every record of the
            source). When full, the oldest entries are evicted first; a chunk runs
            from the cache only when all of its records are stored.

    Example:
        >>> CacheNode()
        Cache(all)
        >>> CacheNode(max_records=10_000)
        Cache(10000)
    """

    __slots__ = ("max_records",)
    max_records: int | None

    def __init__(self, max_records: int | None = None) -> None:
        max_records = check_int(
            max_records,
            where="CacheNode",
            minimum=1,
            allow_none=True,
            error=PipelineBuildError,
            message="invalid cache size",
        )
        self._init(max_records=max_records)

    def lower(self, flow: Any, ctx: TraceContext) -> Any:
        raise PipelineBuildError(
            "a CacheNode memoises the pipeline's records",
            where=repr(self),
            expected="CacheNode at the top level of a pipeline",
            found="a CacheNode inside a Parallel, Branch or operator",
        )

    def capacity(self, num_records: int) -> int:
        """Slots used for a source of ``num_records`` records."""
        return num_records if self.max_records is None else min(self.max_records, num_records)

    def structure_key(self) -> Any:
        return ("cache",)

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "CacheNode"}  # a cache never changes the stream

    def __repr__(self) -> str:
        return f"Cache({'all' if self.max_records is None else self.max_records})"


class CacheStore:
    """Stored rows on the device, and which record sits in which slot.

    Thread-safe: readers dispatch under :attr:`lock`, and inserts (which donate the
    old arrays to the scatter) take it too.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tag: Any = None
        self.arrays: Any = None
        self.capacity = 0
        self._slot_of = np.empty(0, np.int64)
        self._owner = np.empty(0, np.int64)
        self._next = 0

    def prepare(self, tag: Any, spec: Any, num_records: int, capacity: int) -> None:
        """Make the store hold ``spec`` rows for ``tag``; a new tag empties it."""
        with self.lock:
            if tag == self.tag:
                return
            self.arrays = jax.tree_util.tree_map(
                lambda s: jnp.zeros((capacity, *s.shape), s.dtype), spec
            )
            self.capacity = capacity
            self._slot_of = np.full(num_records, -1, np.int64)
            self._owner = np.full(capacity, -1, np.int64)
            self._next = 0
            self.tag = tag

    @property
    def size(self) -> int:
        """Records stored now."""
        return int(np.count_nonzero(self._owner >= 0))

    def slots(self, record_ids: np.ndarray) -> np.ndarray | None:
        """The slots of ``record_ids`` if every one is stored, else ``None``."""
        slots = self._slot_of[record_ids]
        return slots if slots.size and bool(np.all(slots >= 0)) else None

    def insert(self, record_ids: np.ndarray, rows: Any, num_rows: int) -> None:
        """Store the rows of ``record_ids`` (the first ``len(record_ids)`` of ``rows``)."""
        with self.lock:
            missing = self._slot_of[record_ids] < 0
            if not missing.any():
                return
            ids, first = np.unique(record_ids[missing], return_index=True)
            positions = np.flatnonzero(missing)[first]
            if ids.size > self.capacity:  # only the newest fit
                ids, positions = ids[-self.capacity :], positions[-self.capacity :]
            if self.capacity == self._slot_of.size:
                new_slots = ids
            else:
                new_slots = (self._next + np.arange(ids.size)) % self.capacity
                self._next = int((self._next + ids.size) % self.capacity)
                evicted = self._owner[new_slots]
                self._slot_of[evicted[evicted >= 0]] = -1
            self._owner[new_slots] = ids
            self._slot_of[ids] = new_slots
            row_slots = np.full(num_rows, self.capacity, np.int32)  # out of range: dropped
            row_slots[positions] = new_slots
            self.arrays = scatter_rows(self.arrays, row_slots, rows)


def _scatter(arrays: Any, slots: jax.Array, rows: Any) -> Any:
    return jax.tree_util.tree_map(lambda a, r: a.at[slots].set(r, mode="drop"), arrays, rows)


#: Writes rows into the store's arrays in place (the old arrays are donated).
scatter_rows = jax.jit(_scatter, donate_argnums=0)
