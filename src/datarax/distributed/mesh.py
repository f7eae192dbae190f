"""`DeviceMesh`: a ``jax.sharding.Mesh`` built from axis names and sizes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from datarax.core.errors import ConfigError


class DeviceMesh:
    """Devices arranged on named axes, e.g. ``{"data": 4, "model": 2}``.

    One size may be ``-1``: it takes the devices left over. Devices are taken in
    ``jax.devices()`` order (grouped by process), so the leading axis runs across
    processes and each process holds a contiguous block of it.

    Args:
        axes: Axis names and sizes, in order (a mapping or ``(name, size)`` pairs).
        devices: The devices to use (default: all of them).

    Example:
        >>> import jax
        >>> mesh = DeviceMesh({"data": -1})
        >>> mesh.shape == {"data": len(jax.devices())}
        True
    """

    def __init__(
        self,
        axes: Mapping[str, int] | Sequence[tuple[str, int]],
        devices: Sequence[jax.Device] | None = None,
    ) -> None:
        pairs = list(axes.items()) if isinstance(axes, Mapping) else list(axes)
        devices = list(jax.devices() if devices is None else devices)
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
            sizes[sizes.index(-1)] = len(devices) // known if known else 0
        if int(np.prod(sizes)) != len(devices) or 0 in sizes:
            raise ConfigError(
                "axis sizes do not match the devices",
                where="DeviceMesh",
                expected=f"sizes multiplying to {len(devices)} devices",
                found=repr(dict(zip(names, sizes, strict=True))),
            )
        self.mesh = Mesh(np.asarray(devices, dtype=object).reshape(sizes), tuple(names))

    @property
    def shape(self) -> dict[str, int]:
        """Axis name -> size."""
        return dict(self.mesh.shape)

    @property
    def axis_names(self) -> tuple[str, ...]:
        """The axis names, in order."""
        return tuple(self.mesh.axis_names)

    def __repr__(self) -> str:
        return f"DeviceMesh({self.shape})"


def as_mesh(mesh: Mesh | DeviceMesh) -> Mesh:
    """The ``jax.sharding.Mesh`` of ``mesh``."""
    return mesh.mesh if isinstance(mesh, DeviceMesh) else mesh
