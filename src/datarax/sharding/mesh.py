"""Meshes: `DeviceMesh` (a ``jax.sharding.Mesh`` from axis names and sizes) and axis types.

JAX meshes carry an axis type per axis: ``Auto`` (the compiler chooses layouts
inside ``jit``), ``Explicit`` (shardings are part of array types; the default of
``jax.make_mesh``) or ``Manual`` (inside ``shard_map``). A pipeline computes on
the ``Auto`` twin of the mesh it is given (:func:`auto_axes`) and hands its
batches out on the given mesh, so both kinds of mesh place batches the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

from datarax.core.errors import ConfigError


class DeviceMesh:
    """Devices arranged on named axes, e.g. ``{"data": 4, "model": 2}``.

    One size may be ``-1``: it takes the devices left over. Devices are taken in
    ``jax.devices()`` order (grouped by process), so the leading axis runs across
    processes and each process holds a contiguous block of it.

    Args:
        axes: Axis names and sizes, in order (a mapping or ``(name, size)`` pairs).
        devices: The devices to use (default: all of them), in any shape (a mesh's
            ``devices`` array is read in its order).
        axis_types: ``"auto"`` (the default), ``"explicit"``, or one
            ``jax.sharding.AxisType`` per axis (``Auto`` or ``Explicit``).

    Example:
        >>> import jax
        >>> mesh = DeviceMesh({"data": -1})
        >>> mesh.shape == {"data": len(jax.devices())}
        True
        >>> DeviceMesh({"data": -1}, axis_types="explicit").mesh.axis_types
        (Explicit,)
    """

    def __init__(
        self,
        axes: Mapping[str, int] | Sequence[tuple[str, int]],
        devices: Sequence[jax.Device] | np.ndarray | None = None,
        axis_types: str | Sequence[AxisType] = "auto",
    ) -> None:
        pairs = list(axes.items()) if isinstance(axes, Mapping) else list(axes)
        flat = list(np.asarray(jax.devices() if devices is None else devices, dtype=object).flat)
        names = [str(name) for name, _ in pairs]
        sizes = [int(size) for _, size in pairs]
        if not pairs or len(set(names)) != len(names):
            raise ConfigError(
                "mesh axes must be distinct names",
                where="DeviceMesh",
                expected="e.g. {'data': 4, 'model': 2}",
                found=repr(pairs),
            )
        if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
            raise ConfigError(
                "invalid axis sizes",
                where="DeviceMesh",
                expected="positive sizes, at most one -1",
                found=repr(dict(zip(names, sizes, strict=True))),
            )
        known = int(np.prod([s for s in sizes if s != -1]))
        if -1 in sizes:
            sizes[sizes.index(-1)] = len(flat) // known if known else 0
        if int(np.prod(sizes)) != len(flat) or 0 in sizes:
            raise ConfigError(
                "axis sizes do not match the devices",
                where="DeviceMesh",
                expected=f"sizes multiplying to {len(flat)} devices",
                found=repr(dict(zip(names, sizes, strict=True))),
            )
        types = _axis_types(axis_types, len(names))
        grid = np.asarray(flat, dtype=object).reshape(sizes)
        self.mesh = Mesh(grid, tuple(names), axis_types=types)

    @property
    def shape(self) -> dict[str, int]:
        """Axis name -> size."""
        return dict(self.mesh.shape)

    @property
    def axis_names(self) -> tuple[str, ...]:
        """The axis names, in order."""
        return tuple(self.mesh.axis_names)

    def __repr__(self) -> str:
        explicit = any(t == AxisType.Explicit for t in self.mesh.axis_types)
        types = f", axis_types={tuple(t.name for t in self.mesh.axis_types)}" if explicit else ""
        return f"DeviceMesh({self.shape}{types})"


def as_mesh(mesh: Mesh | DeviceMesh, where: str = "as_mesh") -> Mesh:
    """The ``jax.sharding.Mesh`` of ``mesh`` (a ``Mesh``, e.g. from ``jax.make_mesh``).

    Example:
        >>> as_mesh(DeviceMesh({"data": -1})).axis_names
        ('data',)
    """
    if isinstance(mesh, DeviceMesh):
        return mesh.mesh
    if isinstance(mesh, Mesh):
        return mesh
    raise ConfigError(
        "not a device mesh",
        where=where,
        expected="a jax.sharding.Mesh (e.g. jax.make_mesh(...)) or a datarax DeviceMesh",
        found=type(mesh).__name__,
    )


def auto_axes(mesh: Mesh) -> Mesh:
    """``mesh`` with every axis ``Auto``: same devices, names and sizes (``mesh`` if so already).

    Pipelines compute on this twin, where the compiler chooses the layouts inside
    ``jit`` as it always has; with ``Explicit`` axes every gather, slice and reshape
    of a sharded batch would need a sharding written by hand.

    Example:
        >>> explicit = DeviceMesh({"data": -1}, axis_types="explicit").mesh
        >>> auto_axes(explicit).axis_types
        (Auto,)
    """
    if all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def explicit_axes(mesh: Mesh, axes: Sequence[str | None], where: str) -> bool:
    """Whether the named ``axes`` of ``mesh`` are ``Explicit`` (``False``: ``Auto``).

    Raises :class:`ConfigError` for a ``Manual`` axis (meaningful only inside
    ``shard_map``) and for placement axes of both kinds, which no one sharding can
    name (``reshard`` takes only ``Explicit`` axes, ``with_sharding_constraint`` only
    ``Auto`` ones).
    """
    types = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))
    manual = [name for name, t in types.items() if t == AxisType.Manual]
    if manual:
        raise ConfigError(
            "a mesh with Manual axes cannot place batches",
            where=where,
            expected="mesh axes of type Auto or Explicit (Manual axes exist inside shard_map)",
            found=f"Manual axes {manual}",
        )
    used = {name: types[name] for name in axes if name is not None}
    kinds = set(used.values())
    if len(kinds) > 1:
        raise ConfigError(
            "the placement axes mix axis types",
            where=where,
            expected="data and model axes both Auto or both Explicit",
            found=", ".join(f"'{name}': {t.name}" for name, t in used.items()),
        )
    return kinds == {AxisType.Explicit}


def _axis_types(value: Any, count: int) -> tuple[AxisType, ...]:
    if isinstance(value, str) and value.lower() in ("auto", "explicit"):
        return (AxisType.Auto if value.lower() == "auto" else AxisType.Explicit,) * count
    if not isinstance(value, str) and isinstance(value, Sequence):
        types = tuple(value)
        allowed = (AxisType.Auto, AxisType.Explicit)
        if len(types) == count and all(t in allowed for t in types):
            return types
    raise ConfigError(
        "invalid axis types",
        where="DeviceMesh",
        expected=f"'auto', 'explicit' or {count} jax.sharding.AxisType values (Auto or Explicit)",
        found=repr(value),
    )
