"""Training with datarax: a pipeline's batches and a train step fused into one compiled loop.

:func:`fuse` (a pure ``step(carry, batch) -> (carry, metrics)``) and
:func:`fuse_nnx` (a step over Flax NNX modules, updated in place) compile the
pipeline's device plane and the step into one compiled loop per
``steps_per_call`` steps, for pipelines whose source lives on the device. See
``docs/training.md`` for when to fuse and what it costs.
"""

from datarax.training.fused import FusedLoop, fuse, why_not_fused
from datarax.training.modules import NNXLoop, fuse_nnx

__all__ = ["FusedLoop", "NNXLoop", "fuse", "fuse_nnx", "why_not_fused"]
