"""`ArraySharder`: where each array of a batch lives on a device mesh.

The batch axis is split over the mesh's data axis; with a model axis, the last
axis of arrays of rank two or more is split over it too (when it divides), and
every other mesh axis holds copies.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from datarax.core.errors import ConfigError, PipelineBuildError
from datarax.distributed.mesh import DeviceMesh, as_mesh


class ArraySharder:
    """Places batches with ``NamedSharding``: batch axis on ``data_axis``.

    Args:
        mesh: A ``jax.sharding.Mesh`` or :class:`~datarax.distributed.DeviceMesh`.
        data_axis: The mesh axis the batch axis is split over.
        model_axis: An optional mesh axis the last axis of each array of rank >= 2
            is split over (arrays whose last axis does not divide are copied on it).

    Example:
        >>> import jax, numpy as np
        >>> from datarax.distributed import DeviceMesh
        >>> sharder = ArraySharder(DeviceMesh({"data": -1}))
        >>> sharder.sharding_for((8, 3)).spec
        PartitionSpec('data',)
    """

    def __init__(
        self, mesh: Mesh | DeviceMesh, data_axis: str = "data", model_axis: str | None = None
    ) -> None:
        mesh = as_mesh(mesh)
        for axis in (data_axis, model_axis):
            if axis is not None and axis not in mesh.axis_names:
                raise ConfigError(
                    "unknown mesh axis",
                    where="ArraySharder",
                    expected=f"one of {list(mesh.axis_names)}",
                    found=repr(axis),
                )
        self.mesh = mesh
        self.data_axis = data_axis
        self.model_axis = model_axis

    @classmethod
    def from_sharding(cls, sharding: NamedSharding) -> ArraySharder:
        """The sharder of a ``NamedSharding`` whose spec starts with the data axis."""
        spec = tuple(sharding.spec)
        if not spec or not isinstance(spec[0], str):
            raise PipelineBuildError(
                "the batch axis must be split over one mesh axis",
                where="from_source(sharding=...)",
                expected="NamedSharding(mesh, PartitionSpec('data', ...))",
                found=repr(sharding.spec),
            )
        model = spec[-1] if len(spec) > 1 and isinstance(spec[-1], str) else None
        mesh = sharding.mesh
        if not isinstance(mesh, Mesh):
            raise PipelineBuildError(
                "the sharding's mesh has no devices",
                where="from_source(sharding=...)",
                expected="a NamedSharding over a concrete jax.sharding.Mesh",
                found=type(mesh).__name__,
            )
        return cls(mesh, spec[0], model)

    @property
    def data_size(self) -> int:
        """Shards of the batch axis."""
        return int(self.mesh.shape[self.data_axis])

    def spec_for(self, shape: tuple[int, ...]) -> P:
        """The partition spec of an array of ``shape`` (batch axis first)."""
        model = self.model_axis
        if model is not None and len(shape) >= 2 and shape[-1] % int(self.mesh.shape[model]) == 0:
            return P(self.data_axis, *([None] * (len(shape) - 2)), model)
        return P(self.data_axis)

    def sharding_for(self, shape: tuple[int, ...]) -> NamedSharding:
        """The ``NamedSharding`` of an array of ``shape`` (batch axis first)."""
        return NamedSharding(self.mesh, self.spec_for(tuple(shape)))

    def replicated(self) -> NamedSharding:
        """A sharding holding a full copy on every device of the mesh."""
        return NamedSharding(self.mesh, P())

    def constrain(self, tree: Any) -> Any:
        """Inside ``jit``: ask for every leaf to be laid out as :meth:`sharding_for` says."""
        return jax.tree_util.tree_map(
            lambda x: jax.lax.with_sharding_constraint(x, self.sharding_for(x.shape)), tree
        )

    def shard(self, tree: Any) -> Any:
        """Place every leaf of ``tree`` (batch axis first) on the mesh."""
        return jax.tree_util.tree_map(lambda x: jax.device_put(x, self.sharding_for(x.shape)), tree)

    def check_batch_size(self, batch_size: int, where: str) -> None:
        """Raise unless ``batch_size`` splits evenly over the data axis."""
        if batch_size % self.data_size:
            raise PipelineBuildError(
                "the batch does not split evenly over the devices",
                where=where,
                expected=f"a batch size divisible by {self.data_size} (mesh axis "
                f"'{self.data_axis}')",
                found=f"batch_size={batch_size}",
            )

    def key(self) -> tuple:
        """What identifies this placement (for compiled-code caches)."""
        return (self.mesh, self.data_axis, self.model_axis)

    def __repr__(self) -> str:
        model = f", model_axis={self.model_axis!r}" if self.model_axis else ""
        return f"ArraySharder({dict(self.mesh.shape)}, data_axis={self.data_axis!r}{model})"
