"""`ArraySharder`: where each array of a batch lives on a device mesh.

The batch axis is split over the mesh's data axis; with a model axis, the last
axis of arrays of rank two or more is split over it too (when it divides), and
every other mesh axis holds copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from datarax.core.errors import ConfigError, PipelineBuildError
from datarax.sharding.mesh import DeviceMesh, as_mesh, auto_axes, explicit_axes


class ArraySharder:
    """Places batches with ``NamedSharding``: batch axis on ``data_axis``.

    Any ``jax.sharding.Mesh`` works, with ``Auto`` axes (``Mesh(...)``,
    :class:`~datarax.sharding.DeviceMesh`) or ``Explicit`` ones (the default of
    ``jax.make_mesh``). Batches are computed on :attr:`mesh`, the given mesh with
    every axis ``Auto``, and handed out on :attr:`output_mesh`, the mesh given: with
    ``Explicit`` axes their shardings are part of their types
    (``jax.typeof(batch["x"])`` reads ``float32[8@data,...]``), ready for a train step
    under ``jax.set_mesh(mesh)``.

    Args:
        mesh: A ``jax.sharding.Mesh`` or :class:`~datarax.sharding.DeviceMesh`.
        data_axis: The mesh axis the batch axis is split over.
        model_axis: An optional mesh axis the last axis of each array of rank >= 2
            is split over (arrays whose last axis does not divide are copied on it).

    Example:
        >>> import jax, numpy as np
        >>> from datarax.sharding import DeviceMesh
        >>> sharder = ArraySharder(DeviceMesh({"data": -1}))
        >>> sharder.sharding_for((8, 3)).spec
        P('data',)
        >>> explicit = ArraySharder(jax.make_mesh((len(jax.devices()),), ("data",)))
        >>> explicit.shard(np.zeros((8, 3))).sharding.mesh.axis_types
        (Explicit,)
    """

    mesh: Mesh
    """The mesh batches are computed on: :attr:`output_mesh` with every axis ``Auto``."""
    output_mesh: Mesh
    """The mesh batches are handed out on (the one given)."""

    def __init__(
        self, mesh: Mesh | DeviceMesh, data_axis: str = "data", model_axis: str | None = None
    ) -> None:
        given = as_mesh(mesh, "ArraySharder")
        for axis in (data_axis, model_axis):
            if axis is not None and axis not in given.axis_names:
                raise ConfigError(
                    "unknown mesh axis",
                    where="ArraySharder",
                    expected=f"one of {list(given.axis_names)}",
                    found=repr(axis),
                )
        self._explicit = explicit_axes(given, (data_axis, model_axis), "ArraySharder")
        self.output_mesh = given
        self.mesh = auto_axes(given)
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
        """The partition spec of an array of ``shape`` (batch axis first).

        On ``Explicit`` axes it names every axis of ``shape``, as the sharding in an
        array's type does, so batches placed on the host and on the devices agree.
        """
        model = self.model_axis
        rank = len(shape)
        if model is not None and rank >= 2 and shape[-1] % int(self.mesh.shape[model]) == 0:
            return P(self.data_axis, *([None] * (rank - 2)), model)
        if self._explicit:
            return P(self.data_axis, *([None] * (rank - 1)))
        return P(self.data_axis)

    def sharding_for(self, shape: tuple[int, ...]) -> NamedSharding:
        """The ``NamedSharding`` of a handed-out array of ``shape`` (batch axis first)."""
        return NamedSharding(self.output_mesh, self.spec_for(tuple(shape)))

    def replicated(self) -> NamedSharding:
        """A full copy on every device of :attr:`mesh`, for inputs of the compiled function."""
        return NamedSharding(self.mesh, P())

    def constrain(self, tree: Any) -> Any:
        """Inside ``jit``: lay every leaf out as :meth:`sharding_for` says.

        On a mesh with ``Explicit`` placement axes the leaves are resharded onto it
        (``jax.sharding.reshard``); otherwise the layout is asked of the compiler
        (``jax.lax.with_sharding_constraint``).
        """
        if self._explicit:
            return jax.tree_util.tree_map(
                lambda x: jax.sharding.reshard(x, self.sharding_for(x.shape)), tree
            )
        return jax.tree_util.tree_map(
            lambda x: jax.lax.with_sharding_constraint(x, self.sharding_for(x.shape)), tree
        )

    def shard(self, tree: Any) -> Any:
        """Place every leaf of ``tree`` (batch axis first) on :attr:`output_mesh`."""
        return jax.tree_util.tree_map(lambda x: jax.device_put(x, self.sharding_for(x.shape)), tree)

    def first_rows(self, tree: Any, size: int) -> Any:
        """The first ``size`` rows of every leaf of a handed-out batch (a short last batch).

        Rows that do not split evenly over the data axis of ``Explicit`` axes cannot
        keep the batch's sharding (its type would name an uneven split): they are
        copied on every device of :attr:`output_mesh` instead.
        """
        if self._explicit and size % self.data_size:
            copies = NamedSharding(self.output_mesh, P())
            tree = jax.tree_util.tree_map(lambda x: jax.sharding.reshard(x, copies), tree)
        return jax.tree_util.tree_map(lambda x: jax.lax.slice_in_dim(x, 0, size), tree)

    @contextmanager
    def computing(self) -> Iterator[None]:
        """The context to call compiled functions in (outside ``jit``), inputs on :attr:`mesh`.

        A caller's own current mesh (``with jax.set_mesh(mesh):`` around a training
        loop, e.g. with ``Explicit`` axes) would be the context of those functions'
        tracing, and JAX refuses inputs on another mesh than the context's. So while
        another mesh is current, :attr:`mesh` is made current for the call and the
        caller's restored after; with none (or :attr:`mesh`) current, nothing changes.
        """
        current = jax.sharding.get_abstract_mesh()
        if current.empty or current == self.mesh.abstract_mesh:
            yield
            return
        with jax.set_mesh(self.mesh):
            yield

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

    def key(self) -> tuple[Any, ...]:
        """What identifies this placement (for compiled-code caches)."""
        return (self.output_mesh, self.data_axis, self.model_axis)

    def __repr__(self) -> str:
        model = f", model_axis={self.model_axis!r}" if self.model_axis else ""
        explicit = ", explicit axes" if self._explicit else ""
        shape = dict(self.mesh.shape)
        return f"ArraySharder({shape}, data_axis={self.data_axis!r}{model}{explicit})"
