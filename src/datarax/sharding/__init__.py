"""Placing batches on devices: meshes, a mesh axis for the batch, optionally one for features."""

from datarax.sharding.array import ArraySharder
from datarax.sharding.mesh import DeviceMesh, as_mesh
from datarax.sharding.process import JaxProcessSharder

__all__ = ["ArraySharder", "DeviceMesh", "JaxProcessSharder", "as_mesh"]
