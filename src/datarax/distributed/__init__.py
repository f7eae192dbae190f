"""Several devices and several processes: meshes, data-parallel helpers, a launcher.

``DeviceMesh`` and ``as_mesh`` live in :mod:`datarax.sharding` and are re-exported here.
"""

from datarax.distributed.parallel import DataParallel
from datarax.distributed.runtime import initialize
from datarax.sharding.mesh import DeviceMesh, as_mesh

__all__ = ["DataParallel", "DeviceMesh", "as_mesh", "initialize"]
