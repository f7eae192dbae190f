"""What flows out of each device node: shapes and dtypes, found by abstract tracing.

A pipeline is validated when it is built: each top-level device node is traced on
one abstract batch (``jax.eval_shape``, nothing is computed), so a node that cannot
be compiled, or that receives fields it cannot handle, fails at ``>>`` with a
:class:`~datarax.core.errors.PipelineBuildError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from datarax.dag.base import Node, TraceContext, lower_node

#: ``(data, states)`` of one record: dicts of field name to ``jax.ShapeDtypeStruct``.
RecordSpec = Any


@dataclass(frozen=True)
class Step:
    """One top-level device node, with the record spec and batch size after it."""

    node: Node
    spec: RecordSpec
    batch_size: int


def infer_spec(node: Node, spec: RecordSpec, batch_size: int, seed: int) -> RecordSpec:
    """Trace ``node`` abstractly on one batch of ``spec`` records to learn its output.

    Example:
        >>> import jax.numpy as jnp
        >>> from datarax.dag.nodes import OperatorNode
        >>> from datarax.operators import ElementOperator, ElementOperatorConfig
        >>> half = ElementOperator(ElementOperatorConfig(),
        ...     fn=lambda e: e.update_data({"x": e.data["x"] / 2}))
        >>> spec = ({"x": jax.ShapeDtypeStruct((3,), jnp.int32)}, {})
        >>> infer_spec(OperatorNode(half), spec, batch_size=4, seed=0)[0]["x"].dtype
        dtype('float32')
    """
    batched = jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct((batch_size, *s.shape), s.dtype), spec
    )

    def run(flow: Any, ids: jax.Array, epoch: jax.Array) -> Any:
        ctx = TraceContext.for_rows(ids, epoch, seed, batch_size)
        return lower_node(node, flow, ctx)

    out = jax.eval_shape(
        run,
        batched,
        jax.ShapeDtypeStruct((batch_size,), jnp.int32),
        jax.ShapeDtypeStruct((), jnp.uint32),
    )
    return jax.tree_util.tree_map(lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), out)
