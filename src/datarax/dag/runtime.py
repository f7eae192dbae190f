"""The one place where a pipeline's run-time state lives.

A :class:`~datarax.dag.pipeline.Pipeline` is an immutable value; running it needs
a little state that its iterators share within a process:

- the **host plane** (:class:`~datarax.control.host_plane.HostPlane`): the worker
  pool, made on first use and reused by every iterator of the pipeline;
- the **epoch cursor**: a second ``for`` loop over the same pipeline continues with
  the epochs after those the first loop handed out (``iter(pipeline)`` starts at
  :attr:`PipelineRuntime.epoch_cursor`);
- the **cache stores**: the rows memoised by each ``CacheNode``, filled by one
  iterator and read by the next ones (they never change the stream, and are
  emptied when anything before their cache changed);
- the pipeline's entry of the program cache (see :mod:`datarax.dag.program`).

Nothing else is shared: each iterator owns its position. The runtime is held
weakly by its pipeline's identity, so it goes away with the pipeline.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from datarax.control.host_plane import HostPlane
from datarax.dag.cache import CacheStore

if TYPE_CHECKING:
    from datarax.dag.pipeline import Pipeline


class PipelineRuntime:
    """What the iterators of one pipeline share in this process (see the module doc).

    Attributes:
        host_plane: Reads the pipeline's chunks.
        epoch_cursor: The epoch a new ``for`` loop starts at.
        stores: One :class:`~datarax.dag.cache.CacheStore` per ``CacheNode``.
        compiled: The program cache's entry for this pipeline (``None`` until compiled).
        replicated: The device-placed source copied to every device of the mesh.
    """

    def __init__(self, host_plane: HostPlane, num_caches: int) -> None:
        self.host_plane = host_plane
        self.epoch_cursor = 0
        self.stores = tuple(CacheStore() for _ in range(num_caches))
        self.compiled: Any = None
        self.replicated: Any = None

    def advance(self, epoch: int) -> None:
        """Note that a batch of ``epoch`` was handed out: new loops start after it."""
        self.epoch_cursor = max(self.epoch_cursor, epoch + 1)


_RUNTIMES: weakref.WeakKeyDictionary[Any, PipelineRuntime] = weakref.WeakKeyDictionary()


def attach_runtime(pipeline: Pipeline, host_plane: HostPlane) -> None:
    """Give a newly built pipeline its runtime (called once, by ``Pipeline``)."""
    _RUNTIMES[pipeline] = PipelineRuntime(host_plane, len(pipeline.cache_nodes))


def runtime_of(pipeline: Pipeline) -> PipelineRuntime:
    """The runtime of ``pipeline``."""
    return _RUNTIMES[pipeline]
