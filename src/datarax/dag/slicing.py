"""What one process reads of a pipeline: its record order, batch grid and share of each batch.

A pipeline placed with a multi-process
:class:`~datarax.sharding.JaxProcessSharder` computes, in every process, only that
process's rows of each global batch: its sampler is a
:class:`~datarax.sharding.process.ProcessSliceSampler` over the global order and
its batches are ``global batch / processes`` records. Positions in iterator states
are always global, so a state restores on another number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from datarax.batching.geometry import Geometry
from datarax.samplers.base import Sampler
from datarax.sharding.process import JaxProcessSharder, ProcessSliceConfig, ProcessSliceSampler


@dataclass(frozen=True)
class ProcessSlice:
    """This process's rows of every global batch.

    Args:
        global_batch: Records per global batch.
        local_batch: Records this process computes of each.
        base: The global record order.
    """

    global_batch: int
    local_batch: int
    base: Sampler

    def global_position(self, position: int) -> int:
        """The position in the global stream of this process's ``position``."""
        return position // self.local_batch * self.global_batch

    def local_position(self, position: int) -> int | None:
        """This process's position for a global ``position`` (``None``: between batches)."""
        if position % self.global_batch:
            return None
        return position // self.global_batch * self.local_batch

    def global_record_ids(self, epoch: int, position: int) -> np.ndarray:
        """Record ids of the global batch holding this process's ``position``."""
        start = self.global_position(position)
        return self.base.indices(epoch, start, start + self.global_batch)


@dataclass(frozen=True)
class ProcessView:
    """What this process reads: its order, its batch grid, and the global grid.

    Attributes:
        sampler: The record order this process reads.
        geometry: This process's batch grid (equal to ``global_geometry`` unless split).
        global_geometry: The batch grid of the whole stream.
        slice: This process's share of each batch, when split over processes.
    """

    sampler: Sampler
    geometry: Geometry
    global_geometry: Geometry
    slice: ProcessSlice | None

    def global_position(self, position: int) -> int:
        """A position of this process as a position of the global stream."""
        return position if self.slice is None else self.slice.global_position(position)

    def local_position(self, position: int) -> int | None:
        """A global position as this process's position (``None``: between its batches)."""
        return position if self.slice is None else self.slice.local_position(position)


def process_view(
    sampler: Sampler, stages: tuple[tuple[int, bool], ...], sharder: Any
) -> ProcessView:
    """The view of this process for a pipeline's order, batch stages and placement.

    Raises:
        PipelineBuildError: A stage leaves no batch, or the batches cannot be split
            over the sharder's devices or processes.
    """
    global_geometry = Geometry(len(sampler), within_epoch(len(sampler), stages))
    global_geometry.check()
    batch_size, drop = stages[0]
    if isinstance(sharder, JaxProcessSharder):
        sharder.check_pipeline(batch_size, drop, len(stages) - 1)
        if sharder.multi_process:
            config = ProcessSliceConfig(batch_size, sharder.num_processes, sharder.process_index)
            local = ProcessSliceSampler(config, base=sampler)
            geometry = Geometry(len(local), ((local.local_batch_size, True),))
            split = ProcessSlice(batch_size, local.local_batch_size, sampler)
            return ProcessView(local, geometry, global_geometry, split)
    elif sharder is not None:
        sharder.check_batch_size(global_geometry.batch_size, "Pipeline")
    return ProcessView(sampler, global_geometry, global_geometry, None)


def within_epoch(
    num_records: int, stages: tuple[tuple[int, bool], ...]
) -> tuple[tuple[int, bool], ...]:
    """``stages`` with every batch larger than the records it can hold cut to their number.

    A batch larger than an epoch is the whole epoch: it is computed at that size, so
    ``batch_size=10**9`` over 5 records allocates 5 rows, not a billion. A stage
    that drops its short batch keeps its size (it has no batch: a build error).

    Example:
        >>> within_epoch(5, ((10**9, False),))
        ((5, False),)
        >>> within_epoch(100, ((32, True), (500, False)))
        ((32, True), (96, False))
    """
    out, available = [], num_records
    for size, drop in stages:
        if not drop:
            size = max(1, min(size, available))
        out.append((size, drop))
        available = available // size * size if drop else available
    return tuple(out)
