"""Several devices and several processes: meshes and data-parallel helpers."""

from datarax.distributed.mesh import DeviceMesh, as_mesh
from datarax.distributed.parallel import DataParallel

__all__ = ["DataParallel", "DeviceMesh", "as_mesh"]
