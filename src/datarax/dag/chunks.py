"""The host side of running a program: record ids, host reads and one dispatch per chunk.

A chunk is the rows of one compiled call: a whole number of batches of every
stage, cut from an epoch's positions on the batch grid
(:class:`~datarax.batching.Geometry`). :class:`ChunkStream` walks the epochs from a
cursor and, for each chunk, asks the sampler for its record ids, finds where its
computation starts (the source, or the last cache holding all its records), reads
the records on the host plane when needed and dispatches the compiled call. It
yields :class:`Chunk` values; the iterator cuts them into batches.

The stream runs on the run-ahead thread (or inline); it keeps its Python work, and
so its hold on the interpreter, to the minimum.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from datarax.batching.geometry import Geometry
from datarax.control.bad_records import BadRecordPolicy
from datarax.control.host_plane import HostPlane
from datarax.core.errors import RecordError
from datarax.samplers.base import Sampler
from datarax.sources.base import check_indices
from datarax.sources.record import StreamingSource

if TYPE_CHECKING:
    from datarax.dag.program import Program
    from datarax.dag.schedule import ProgramSchedule

#: Positions of an epoch whose record ids are computed in one sampler call.
INDEX_WINDOW = 16_384


@dataclass(frozen=True, eq=False)
class Chunk:
    """One dispatched compiled call and the batches it hands out.

    Attributes:
        epoch: The epoch.
        start: The chunk's first position, relative to the epoch's origin.
        ids: Record ids of the chunk's positions (without padding).
        bounds: ``(position, size)`` of each output batch handed out from it.
        outputs: The compiled call's output, one entry per batch of the chunk.
        batch_size: Records per output batch.
        skipped: Rows (into ``ids``) of records skipped as bad.
    """

    epoch: int
    start: int
    ids: np.ndarray
    bounds: list[tuple[int, int]]
    outputs: list[Any]
    batch_size: int
    skipped: list[int]


class ChunkStream:
    """Chunks of a program over the epochs, from a cursor on (see the module doc).

    Args:
        schedule: The programs to run (a small one while the full one compiles).
        plane: Reads the records of chunks that start at the source on the host.
        sampler: The record order.
        geometry: The batch grid of this process.
        last_epoch: The last epoch to run (``None``: forever).
        policy: The bad-record policy (its per-epoch budget is counted here).
    """

    def __init__(
        self,
        schedule: ProgramSchedule,
        plane: HostPlane,
        sampler: Sampler,
        geometry: Geometry,
        last_epoch: int | None,
        policy: BadRecordPolicy,
    ) -> None:
        self.schedule, self.plane, self.sampler = schedule, plane, sampler
        self.geometry, self.last_epoch, self.policy = geometry, last_epoch, policy

    def run(self, epoch: int, position: int, origin: int, skipped: list[int]) -> Iterator[Chunk]:
        """Chunks from ``position`` of ``epoch`` on; that epoch's batches start at ``origin``.

        Positions inside an epoch are handled relative to its origin (0 except after
        an elastic restore), so chunk and batch boundaries fall on that epoch's grid.
        ``skipped`` lists the records of ``epoch`` skipped before ``position``.
        """
        first_epoch = epoch
        budget = SkipBudget(self.policy, len(self.sampler), self.plane.source.name, skipped)
        while self.last_epoch is None or epoch <= self.last_epoch:
            if epoch > first_epoch:
                budget.new_epoch()
            yield from self._epoch(epoch, position, origin, budget, wait=epoch > first_epoch)
            epoch, position, origin = epoch + 1, 0, 0

    def _epoch(
        self, epoch: int, position: int, origin: int, budget: SkipBudget, wait: bool
    ) -> Iterator[Chunk]:
        window = IndexWindow(self.sampler, epoch, len(self.plane.source))
        grid = self.geometry.remaining(origin)
        local = position - origin
        start = grid.chunk_start(local)
        batch_size = self.geometry.stages[0][0]
        source = self.plane.source
        if isinstance(source, StreamingSource) and start < grid.epoch_end:  # start where needed
            ahead = origin + min(start + self.sampler.lookahead, grid.read_end)
            source.seek(int(window.get(origin + start, ahead).min()))
        while start < grid.epoch_end:
            program = self.schedule.current(wait=wait)
            rows = program.rows
            ids = window.get(origin + start, origin + min(start + rows, grid.read_end))
            positions = program.arrange(padded(np.arange(ids.size), rows, batch_size))
            record_ids = ids[positions].astype(np.int32)
            skipped: list[int] = []
            failure = None
            with contextlib.ExitStack() as held:  # readers and inserts of shared caches
                for store in program.stores:
                    held.enter_context(store.lock)
                segment, inputs, index = chunk_inputs(program, ids, record_ids, batch_size)
                if inputs is None:
                    data, skipped, failure = self.plane.read(ids, positions, epoch, batch_size)
                    failure = failure or budget.spend(epoch, ids, skipped)
                    inputs = (data, {})
                out = program.run(segment, inputs, index, record_ids, epoch, ids.size)
                if failure is None:
                    for store, values in zip(program.stores[segment:], out.cached, strict=True):
                        store.insert(ids, values, rows)
            bounds = grid.output_bounds(start, rows, local)
            if failure is not None:  # hand out the batches before the failing one, then stop
                row, error = failure
                end = start + row - row % batch_size
                bounds = [(b, size) for b, size in bounds if b + size <= end]
                skipped = [r for r in skipped if r < row - row % batch_size]
                if bounds:
                    yield Chunk(epoch, start, ids, bounds, out.batches, program.batch_size, skipped)
                raise error
            yield Chunk(epoch, start, ids, bounds, out.batches, program.batch_size, skipped)
            self.schedule.started()
            start += rows


def padded(values: np.ndarray, rows: int, batch_size: int) -> np.ndarray:
    """``values`` as ``rows`` int32 entries; the tail repeats the last batch's first value.

    Padding depends only on the positions of the epoch's last batch, never on how
    the epoch is cut into chunks, so whatever reads a whole batch (a per-batch
    decision) sees the same rows whichever chunk computes it.

    Example:
        >>> padded(np.arange(6), rows=8, batch_size=4).tolist()
        [0, 1, 2, 3, 4, 5, 4, 4]
    """
    out = np.empty(rows, np.int32)
    out[: values.size] = values
    out[values.size :] = values[(values.size - 1) // batch_size * batch_size]
    return out


def chunk_inputs(
    program: Program, ids: np.ndarray, record_ids: np.ndarray, batch_size: int
) -> tuple[int, Any, np.ndarray]:
    """Where a chunk starts: ``(segment, inputs, gather index)``.

    The segment is after the last cache holding all the chunk's records, else the
    source (0). The inputs are ``None`` when the records must be read on the host.
    """
    stores = program.stores
    for c in range(len(stores) - 1, -1, -1):
        slots = stores[c].slots(ids)
        if slots is not None:
            slots = padded(slots, record_ids.size, batch_size)
            return c + 1, stores[c].arrays, program.arrange(slots)
    if program.gather:
        return 0, (program.gather_from, {}), record_ids
    return 0, None, record_ids


class SkipBudget:
    """Counts skipped records per epoch; the error where the policy's budget runs out.

    Args:
        policy: The bad-record policy.
        records_per_epoch: Records of an epoch (for a budget given as a fraction).
        source: The source's name (for the error).
        skipped: Records of the current epoch skipped already.
    """

    def __init__(
        self, policy: BadRecordPolicy, records_per_epoch: int, source: str, skipped: list[int]
    ) -> None:
        self.limit = policy.limit(records_per_epoch)
        self.source, self.spent = source, len(skipped)
        self.ids: list[int] = list(skipped)

    def new_epoch(self) -> None:
        """Start counting a new epoch."""
        self.spent = 0
        self.ids = []

    def spend(self, epoch: int, ids: np.ndarray, rows: list[int]) -> tuple[int, RecordError] | None:
        """Count a chunk's skipped ``rows`` (into ``ids``); where the budget runs out, if so."""
        for row in rows:
            self.spent += 1
            self.ids.append(int(ids[row]))
            if self.limit is not None and self.spent > self.limit:
                return row, RecordError(
                    f"too many bad records in epoch {epoch}",
                    where=self.source,
                    expected=f"at most {self.limit} skipped records per epoch",
                    found=f"{self.spent} (records {self.ids[:20]}"
                    + (" ...)" if len(self.ids) > 20 else ")"),
                )
        return None


class IndexWindow:
    """Computes an epoch's record ids ``INDEX_WINDOW`` positions at a time.

    Vectorised samplers pay a fixed cost per call; asking for a few thousand
    positions at once keeps that cost negligible while memory stays bounded.
    """

    def __init__(self, sampler: Sampler, epoch: int, num_records: int) -> None:
        self._sampler, self._epoch, self._n = sampler, epoch, len(sampler)
        self._records = num_records
        self._start, self._ids = 0, np.empty(0, np.int64)

    def get(self, start: int, stop: int) -> np.ndarray:
        """Record ids of positions ``[start, stop)``."""
        end = self._start + self._ids.size
        if start < self._start or stop > end:
            self._start = start
            self._ids = self._sampler.indices(
                self._epoch, start, min(self._n, max(stop, start + INDEX_WINDOW))
            )
            # A sampler's ids past the source would be clamped by device gathers.
            check_indices(self._ids, self._records, where=type(self._sampler).__name__)
        return self._ids[start - self._start : stop - self._start]
