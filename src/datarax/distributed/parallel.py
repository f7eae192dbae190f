"""`DataParallel`: batches split over a mesh axis, model state copied on every device."""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from datarax.dag.sharder import SharderNode
from datarax.sharding.array import ArraySharder
from datarax.sharding.mesh import DeviceMesh


class DataParallel:
    """Helpers for data-parallel training on a mesh.

    Args:
        mesh: A ``jax.sharding.Mesh`` (``Auto`` or ``Explicit`` axes, e.g. from
            ``jax.make_mesh``) or :class:`~datarax.sharding.DeviceMesh`.
        data_axis: The mesh axis the batch is split over.

    Example:
        >>> import numpy as np
        >>> dp = DataParallel(DeviceMesh({"data": -1}))
        >>> params = dp.replicate({"w": np.ones(3)})
        >>> params["w"].sharding.is_fully_replicated
        True
    """

    def __init__(self, mesh: Mesh | DeviceMesh, data_axis: str = "data") -> None:
        self.sharder = ArraySharder(mesh, data_axis)

    @property
    def mesh(self) -> Mesh:
        """The mesh batches and copies are placed on (the one given)."""
        return self.sharder.output_mesh

    def pipeline(self, pipeline: Any) -> Any:
        """``pipeline`` with its batches split over the data axis."""
        return pipeline >> SharderNode(self.sharder)

    def shard_batch(self, batch: Any) -> Any:
        """Place a batch (any pytree of arrays, batch axis first) split over the data axis."""
        return self.sharder.shard(batch)

    def replicate(self, tree: Any) -> Any:
        """A copy of ``tree`` (parameters, optimizer state) on every device of the mesh."""
        return jax.device_put(tree, NamedSharding(self.mesh, P()))
