"""Several devices and several processes: meshes, data-parallel helpers, a launcher."""

from datarax.distributed.mesh import DeviceMesh, as_mesh
from datarax.distributed.parallel import DataParallel
from datarax.distributed.runtime import initialize

__all__ = ["DataParallel", "DeviceMesh", "as_mesh", "initialize"]
