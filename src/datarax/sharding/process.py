"""`JaxProcessSharder`: every process reads and computes only its rows of each batch.

With ``P`` processes a global batch of ``B`` records is split in ``P`` contiguous
blocks of ``B / P`` rows, block ``p`` on the devices of process ``p``. Process ``p``
reads only the records of its blocks, runs the pipeline on them on its own devices,
and hands out global ``jax.Array`` batches assembled from the local shards (no
copy). Every random choice follows the record id, so the global batches equal
those of a one-process run, and a state saved with ``P`` processes restores with
any other number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from datarax.core.config import Config, require_positive
from datarax.core.errors import ConfigError, PipelineBuildError
from datarax.samplers.base import Sampler
from datarax.sharding.array import ArraySharder
from datarax.sharding.mesh import DeviceMesh, as_mesh


class JaxProcessSharder(ArraySharder):
    """Splits each global batch over the processes of ``jax.distributed``.

    Args:
        mesh: A mesh whose only axis of size > 1 is ``data_axis`` (default: every
            device of every process on one ``"data"`` axis). Each process must own a
            contiguous block of it (``jax.devices()`` order does).
        data_axis: The mesh axis the batch is split over.

    In one process it behaves like :class:`ArraySharder`.
    """

    def __init__(self, mesh: Mesh | DeviceMesh | None = None, data_axis: str = "data") -> None:
        if mesh is None:
            mesh = DeviceMesh({data_axis: -1})
        mesh = as_mesh(mesh, "JaxProcessSharder")
        super().__init__(mesh, data_axis)
        others = {name: size for name, size in mesh.shape.items() if name != data_axis}
        if any(size > 1 for size in others.values()):
            raise ConfigError(
                "only the data axis may split devices",
                where="JaxProcessSharder",
                expected=f"a mesh with '{data_axis}' as its only axis of size > 1",
                found=repr(dict(mesh.shape)),
            )
        devices = list(np.asarray(mesh.devices).reshape(-1))
        self.num_processes = jax.process_count()
        self.process_index = jax.process_index()
        local = [d for d in devices if d.process_index == self.process_index]
        first = devices.index(local[0])
        if devices[first : first + len(local)] != local or len(devices) != len(local) * (
            self.num_processes
        ):
            raise ConfigError(
                "each process must own a contiguous block of the data axis",
                where="JaxProcessSharder",
                expected="mesh devices grouped by process (jax.devices() order)",
                found=[d.process_index for d in devices],
            )
        # One process computes on the whole mesh; several each on their own devices,
        # and their rows are assembled into arrays on the whole mesh (`assemble`).
        self.local = (
            ArraySharder(Mesh(np.asarray(local, dtype=object), (data_axis,)), data_axis)
            if self.num_processes > 1
            else ArraySharder(mesh, data_axis)
        )

    @property
    def multi_process(self) -> bool:
        """Whether more than one process takes part."""
        return self.num_processes > 1

    def check_pipeline(self, batch_size: int, drop_remainder: bool, batch_nodes: int) -> None:
        """Raise unless a pipeline's batches can be split over the processes."""
        self.check_batch_size(batch_size, "JaxProcessSharder")
        if self.multi_process and (not drop_remainder or batch_nodes):
            raise PipelineBuildError(
                "every global batch must be full and of one size across processes",
                where="JaxProcessSharder",
                expected="drop_remainder=True and no RebatchNode",
                found=f"drop_remainder={drop_remainder}, {batch_nodes} RebatchNode(s)",
            )

    def assemble(self, tree: Any, batch_size: int) -> Any:
        """Global arrays from this process's local batch (sharded over its devices)."""
        if not self.multi_process:
            return tree

        rows = NamedSharding(self.output_mesh, P(self.data_axis))

        def one(leaf: jax.Array) -> jax.Array:
            shape = (batch_size, *leaf.shape[1:])
            shards = sorted(leaf.addressable_shards, key=lambda s: s.index[0].start or 0)
            return jax.make_array_from_single_device_arrays(shape, rows, [s.data for s in shards])

        return jax.tree_util.tree_map(one, tree)

    def key(self) -> tuple[Any, ...]:
        """What identifies this placement (for compiled-code caches)."""
        return (*super().key(), "process", self.num_processes, self.process_index)

    def __repr__(self) -> str:
        return (
            f"JaxProcessSharder({dict(self.mesh.shape)}, process {self.process_index} "
            f"of {self.num_processes})"
        )


@dataclass(frozen=True)
class ProcessSliceConfig(Config):
    """Args: batch_size: global batch; num_processes; process_index."""

    batch_size: int = 1
    num_processes: int = 1
    process_index: int = 0

    def validate(self) -> None:
        require_positive(self, "batch_size")
        require_positive(self, "num_processes")


class ProcessSliceSampler(Sampler):
    """The positions of one process's rows of each global batch of ``base``.

    Local position ``q`` is row ``q % b`` of local batch ``q // b`` (``b = B / P``),
    i.e. global position ``(q // b) * B + p * b + q % b``. Only whole global batches
    are covered.
    """

    config_type = ProcessSliceConfig
    config: ProcessSliceConfig

    def __init__(self, config: ProcessSliceConfig, *, base: Sampler) -> None:
        super().__init__(config)
        self.base = base

    @property
    def local_batch_size(self) -> int:
        """Rows of each global batch read by this process."""
        return self.config.batch_size // self.config.num_processes

    def __len__(self) -> int:
        return len(self.base) // self.config.batch_size * self.local_batch_size

    def global_positions(self, local: np.ndarray) -> np.ndarray:
        """The global positions of local positions."""
        b, big = self.local_batch_size, self.config.batch_size
        return local // b * big + self.config.process_index * b + local % b

    def indices(self, epoch: int, start: int, stop: int) -> np.ndarray:
        self._check_range(epoch, start, stop)
        if stop == start:
            return np.empty(0, np.int64)
        positions = self.global_positions(np.arange(start, stop, dtype=np.int64))
        low, high = int(positions[0]), int(positions[-1]) + 1
        return self.base.indices(epoch, low, high)[positions - low]

    @property
    def records_addressed(self) -> int | None:
        return self.base.records_addressed

    def fingerprint(self) -> dict:
        return self.base.fingerprint()
