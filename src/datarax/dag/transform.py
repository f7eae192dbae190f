"""A pipeline's device plane as a function of records: the transform a loss differentiates.

Iterating a pipeline reads records on the host plane and runs the device plane on
them in a compiled call. :class:`PipelineTransform` is that device plane on its
own, as an ``nnx.Module`` that holds the pipeline's operators (the same objects,
not copies). Called inside a user's jitted step on a batch of raw records (as the
host plane delivers them: :meth:`PipelineTransform.records`) with their record ids
and epoch, it computes what iteration computes for those records, with the same
per-record keys, so the batch is the same, bit for bit. Under ``nnx.grad`` or
``nnx.value_and_grad`` gradients reach the operators' ``nnx.Param`` s (learnable
magnitudes, relaxed choices) and the records themselves; an Optax optimizer over
the transform updates the pipeline's own operators, so the next iterator and the
Orbax checkpoint of the iterator see the learned values.

Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from flax import nnx
    >>> from datarax import from_source
    >>> from datarax.dag.nodes import OperatorNode
    >>> from datarax.operators.image import Brightness, BrightnessConfig
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> images = np.linspace(0, 1, 4 * 2 * 2 * 1, dtype=np.float32).reshape(4, 2, 2, 1)
    >>> source = MemorySource(MemorySourceConfig(), data={"image": images})
    >>> bright = Brightness(BrightnessConfig(factor=1.5, learnable=True))
    >>> pipeline = from_source(source, batch_size=4) >> OperatorNode(bright)
    >>> transform = pipeline.transform()
    >>> ids = np.arange(4)
    >>> def loss(t):
    ...     return t(t.records(ids), ids)["image"].sum()
    >>> grads = nnx.grad(loss)(transform)
    >>> float(grads.operators[0].factor[...][0]) > 0
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax.core.batch import Batch
from datarax.core.errors import PipelineBuildError
from datarax.dag.base import Fanout
from datarax.dag.chunks import padded

if TYPE_CHECKING:
    from datarax.dag.pipeline import Pipeline


def as_batch(out: Any, record_ids: Any, epoch: Any) -> Any:
    """The :class:`~datarax.core.batch.Batch` (a tuple of them for a fan-out) of an output."""
    if isinstance(out, Fanout):
        return tuple(as_batch(part, record_ids, epoch) for part in out)
    data, states = out
    # Traced ids and epoch are allowed: a Batch's fields are whatever arrays it is given.
    return Batch(data, states=states, record_ids=cast(Any, record_ids), epoch=epoch)


class PipelineTransform(nnx.Module):
    """The device plane of ``pipeline`` as a module (see the module doc).

    Its only state is ``operators``, the pipeline's operators in their order, so
    ``nnx.grad(loss)(transform)`` differentiates with respect to their
    ``nnx.Param`` s, ``nnx.Optimizer(transform, tx, wrt=nnx.Param)`` trains them,
    and ``nnx.state(transform, nnx.Param)`` reads them.

    Args:
        pipeline: The pipeline whose device plane this is.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        from datarax.dag.program import device_plan

        self.operators = nnx.List(pipeline.operators)
        self.plan = device_plan(pipeline)
        self.batch_size = pipeline.batch_node.batch_size
        self.field_names = tuple(pipeline.element_spec)
        self._pipeline = _PipelineRef(pipeline)

    def __call__(self, records: Any, record_ids: Any, epoch: Any = 0, *, states: Any = None) -> Any:
        """The pipeline's output batch for ``records``, as iteration computes it.

        Args:
            records: Field name to array, one row per record (what :meth:`records`
                returns, or the same arrays made by the caller: they may be traced
                and differentiated).
            record_ids: The source record id of each row (their random keys derive
                from it, with the pipeline seed and ``epoch``).
            epoch: The epoch the records are read in.
            states: Per-record state fields to start from (default: none).

        Returns:
            A :class:`~datarax.core.batch.Batch` (a tuple of them when the pipeline
            ends in an unmerged ``Parallel``). Rows are whole batches of the
            pipeline's batch size inside: a count that is not a multiple of it is
            padded the way an epoch's short last batch is, and the padding dropped.

        Raises:
            PipelineBuildError: a field is missing, or the rows of the fields and
                the ids disagree.
        """
        data = self._checked(records)
        ids = jnp.asarray(record_ids, jnp.int32)
        n = int(ids.shape[0]) if ids.ndim == 1 else -1
        rows = {k: int(jnp.shape(v)[0]) for k, v in data.items()}
        if n < 0 or any(r != n for r in rows.values()):
            raise PipelineBuildError(
                "records and record ids disagree in rows",
                where="PipelineTransform",
                expected=f"one record id per row of every field ({n} ids)",
                found=", ".join(f"'{k}': {r} rows" for k, r in rows.items()) or "no fields",
            )
        full = -(-n // self.batch_size) * self.batch_size
        flow: Any = (data, {} if states is None else dict(states))
        if full != n:  # the padding of a short last batch
            take = jnp.asarray(padded(np.arange(n), full, self.batch_size))
            flow = jax.tree_util.tree_map(lambda v: jnp.take(v, take, axis=0), flow)
            ids = jnp.take(ids, take)
        valid = jnp.arange(full) < n
        epoch = jnp.asarray(epoch, jnp.uint32)
        out, _ = self.plan.apply(list(self.operators), flow, ids, epoch, valid)
        if full != n:
            out = jax.tree_util.tree_map(lambda v: v[:n] if v.shape[:1] == (full,) else v, out)
            ids = ids[:n]
        return as_batch(out, ids, epoch)

    def records(self, record_ids: Any, epoch: int = 0) -> dict[str, np.ndarray]:
        """The raw records ``record_ids`` as the host plane delivers them (host arrays).

        Host operators run on them (with ``epoch``) as when iterating; a record that
        fails raises its error, as the raise policy does.
        """
        pipeline = self._pipeline.get()
        ids = np.asarray(record_ids, np.int64).reshape(-1)
        plane = pipeline.host_plane
        data, _, failure = plane.read(ids, np.arange(ids.size), int(epoch), self.batch_size)
        if failure is not None:
            raise failure[1]
        return data

    def _checked(self, records: Any) -> dict[str, Any]:
        if not isinstance(records, dict):
            raise PipelineBuildError(
                "records must be a dict of field arrays",
                where="PipelineTransform",
                expected=f"a dict with fields {list(self.field_names)}",
                found=type(records).__name__,
            )
        missing = [k for k in self.field_names if k not in records]
        if missing:
            raise PipelineBuildError(
                "record field missing",
                where=f"PipelineTransform, field '{missing[0]}'",
                expected=f"fields {list(self.field_names)}",
                found=f"fields {sorted(records)}",
            )
        return {k: jnp.asarray(records[k]) for k in self.field_names}


class _PipelineRef:
    """The pipeline a transform reads records from (host side), kept out of its state.

    All references compare equal, so transforms of pipelines built alike (another
    seed of the same data, say) share a graph definition and their compiled steps;
    only :meth:`PipelineTransform.records`, outside the trace, reads the pipeline.
    """

    __slots__ = ("_pipeline",)

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def get(self) -> Pipeline:
        return self._pipeline

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PipelineRef)

    def __hash__(self) -> int:
        return hash(_PipelineRef)
