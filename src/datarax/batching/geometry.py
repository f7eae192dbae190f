"""`Geometry`: how an epoch's positions are grouped into batches and chunks.

A pipeline has one batch size per stage (its ``BatchNode``, then each
``RebatchNode``). Every stage groups the epoch's positions from the start of the
epoch, so batch boundaries of all stages coincide at multiples of the least common
multiple of their sizes. A chunk (the rows of one compiled call) starts at such a
multiple and holds a whole number of batches of every stage.

Example:
    >>> g = Geometry(num_records=100, stages=((32, False), (48, False)))
    >>> g.check()
    >>> g.epoch_end, g.batch_size, g.align
    (100, 48, 96)
    >>> g.output_bounds(chunk_start=96, rows=96, position=96)
    [(96, 4)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from datarax.core.errors import PipelineBuildError


@dataclass(frozen=True)
class Geometry:
    """Batch sizes per stage over an epoch of ``num_records`` positions.

    Args:
        num_records: Positions per epoch.
        stages: ``(batch_size, drop_remainder)`` of each stage, in order.
    """

    num_records: int
    stages: tuple[tuple[int, bool], ...]

    def check(self) -> None:
        """Raise :class:`PipelineBuildError` when a stage leaves no batch in an epoch."""
        for i, (size, _drop) in enumerate(self.stages):
            if self.ends[i] == 0:
                where = "BatchNode" if i == 0 else f"RebatchNode({size})"
                available = self.num_records if i == 0 else self.ends[i - 1]
                raise PipelineBuildError(
                    "drop_remainder leaves no batch in an epoch",
                    where=where,
                    expected=f"batch_size <= {available} records per epoch",
                    found=f"batch_size={size}",
                )

    def remaining(self, origin: int) -> Geometry:
        """The geometry of an epoch's positions from ``origin`` on, batched from there.

        Used when an epoch resumes at a position that is not on its batch grid (a
        state saved with another batch size): positions are then relative to
        ``origin``, and the rest of the epoch is grouped from it.
        """
        return self if origin == 0 else Geometry(self.num_records - origin, self.stages)

    @cached_property
    def ends(self) -> tuple[int, ...]:
        """Positions of an epoch that reach the end of each stage."""
        out, n = [], self.num_records
        for size, drop in self.stages:
            n = n // size * size if drop else n
            out.append(n)
        return tuple(out)

    @property
    def read_end(self) -> int:
        """Positions read from the source each epoch."""
        return self.ends[0]

    @property
    def epoch_end(self) -> int:
        """Positions handed out each epoch."""
        return self.ends[-1]

    @property
    def batch_size(self) -> int:
        """Records per output batch."""
        return self.stages[-1][0]

    def batch_sizes(self) -> tuple[int, ...]:
        """The batch size of every stage."""
        return tuple(size for size, _ in self.stages)

    @cached_property
    def align(self) -> int:
        """Chunks start at multiples of this (the sizes' least common multiple)."""
        return math.lcm(*self.batch_sizes())

    @property
    def batches_per_epoch(self) -> int:
        """Output batches per epoch."""
        return -(-self.epoch_end // self.batch_size)

    def rows_for(self, batches: int) -> int:
        """Rows of a chunk holding at least ``batches`` output batches."""
        return -(-max(1, batches) * self.batch_size // self.align) * self.align

    def chunk_start(self, position: int) -> int:
        """Start of the chunk that produces the batch at ``position``."""
        return position // self.align * self.align

    def output_bounds(self, chunk_start: int, rows: int, position: int) -> list[tuple[int, int]]:
        """``(start, size)`` of the output batches of a chunk, from ``position`` on."""
        size, end = self.batch_size, self.epoch_end
        first = max(chunk_start, -(-position // size) * size)
        stop = min(chunk_start + rows, end)
        return [(b, min(size, end - b)) for b in range(first, stop, size)]
