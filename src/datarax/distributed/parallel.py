"""`DataParallel`: batches split over a mesh axis, model state copied on every device."""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh

from datarax.distributed.mesh import DeviceMesh


class DataParallel:
    """Helpers for data-parallel training on a mesh.

    Args:
        mesh: A ``jax.sharding.Mesh`` or :class:`DeviceMesh`.
        data_axis: The mesh axis the batch is split over.

    Example:
        >>> import numpy as np
        >>> dp = DataParallel(DeviceMesh({"data": -1}))
        >>> params = dp.replicate({"w": np.ones(3)})
        >>> params["w"].sharding.is_fully_replicated
        True
    """

    def __init__(self, mesh: Mesh | DeviceMesh, data_axis: str = "data") -> None:
        from datarax.sharding.array import ArraySharder

        self.sharder = ArraySharder(mesh, data_axis)

    @property
    def mesh(self) -> Mesh:
        """The mesh."""
        return self.sharder.mesh

    def pipeline(self, pipeline: Any) -> Any:
        """``pipeline`` with its batches split over the data axis."""
        from datarax.dag.sharder import SharderNode

        return pipeline >> SharderNode(self.sharder)

    def shard_batch(self, batch: Any) -> Any:
        """Place a batch (any pytree of arrays, batch axis first) split over the data axis."""
        return self.sharder.shard(batch)

    def replicate(self, tree: Any) -> Any:
        """A copy of ``tree`` (parameters, optimizer state) on every device of the mesh."""
        return jax.device_put(tree, self.sharder.replicated())
