"""`Parallel` feeds one batch to several branches; `Merge` combines their outputs.

``a | b`` builds a ``Parallel``; its output is one ``(data, states)`` pair per
branch, which a following :class:`Merge` combines field by field:

- reductions ``"mean"``, ``"sum"``, ``"max"``, ``"min"`` and ``"weighted"``
  (``sum(w_i * branch_i)``) keep shapes and dtypes (integer fields are averaged or
  weighted in float32 and rounded to the nearest integer);
- ``"concat"`` joins along a record axis (``axis``, default ``-1``);
- ``"stack"`` adds a record axis (``axis``, default ``0``) of one entry per branch.

By default the floating-point fields are combined and every other field (labels,
ids, masks) is taken from the first branch; ``fields=[...]`` names the combined
fields instead. Axes count within a record: the batch axis is never touched.
Branches must produce the same fields with the same dtypes and shapes (apart from
the concatenation axis); anything else is a build-time :class:`PipelineBuildError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.errors import PipelineBuildError
from datarax.dag.base import Fanout, Node, Pair, TraceContext, as_node, lower_node, single

REDUCTIONS = ("mean", "sum", "max", "min", "weighted")
STRATEGIES = (*REDUCTIONS, "concat", "stack")


class Parallel(Node):
    """Runs each branch on the same input; outputs one result per branch.

    Example:
        >>> from datarax.operators import ElementOperator, ElementOperatorConfig
        >>> from datarax.dag.base import OperatorNode
        >>> op = ElementOperator(ElementOperatorConfig(), fn=lambda e: e)
        >>> par = OperatorNode(op) | OperatorNode(op) | OperatorNode(op)
        >>> len(par.branches)
        3
    """

    __slots__ = ("branches",)
    branches: tuple[Node, ...]

    def __init__(self, branches: Iterable[Any]) -> None:
        flat: list[Node] = []
        for branch in branches:
            node = as_node(branch, "Parallel")
            if not node.device or _is_pipeline(node):
                raise PipelineBuildError(
                    "a branch cannot start at a source",
                    where="Parallel",
                    expected="device nodes (operators, Merge, Branch) in each branch",
                    found=node.name,
                )
            flat.extend(node.branches if type(node) is Parallel else (node,))
        if len(flat) < 2:
            raise PipelineBuildError(
                "too few branches",
                where="Parallel",
                expected="at least 2 branches",
                found=len(flat),
            )
        self._init(branches=tuple(flat))

    def lower(self, flow: Any, ctx: TraceContext) -> Fanout:
        pair = single(flow, self.name)
        return Fanout(single(lower_node(b, pair, ctx), self.name) for b in self.branches)

    def children(self) -> tuple[Node, ...]:
        return self.branches

    def structure_key(self) -> Any:
        return ("parallel", tuple(b.structure_key() for b in self.branches))

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "Parallel", "branches": [b.fingerprint() for b in self.branches]}

    def __repr__(self) -> str:
        return f"({' | '.join(repr(b) for b in self.branches)})"


def _is_pipeline(node: Node) -> bool:
    nodes: tuple[Node, ...] = getattr(node, "nodes", ())
    return bool(nodes) and not nodes[0].device


class Merge(Node):
    """Combines the outputs of a :class:`Parallel` into one batch.

    Args:
        strategy: One of ``"mean"``, ``"sum"``, ``"max"``, ``"min"``,
            ``"weighted"``, ``"concat"``, ``"stack"``.
        axis: Record axis for ``"concat"`` (default ``-1``) and ``"stack"``
            (default ``0``).
        fields: Data fields to combine (default: every floating-point field; the
            others are taken from the first branch). State fields always follow
            the default.
        weights: One weight per branch, for ``"weighted"``.

    Example:
        >>> Merge("concat", axis=-1)
        Merge(concat, axis=-1)
    """

    __slots__ = ("strategy", "axis", "fields", "weights")
    strategy: str
    axis: int | None
    fields: tuple[str, ...] | None
    weights: tuple[float, ...] | None

    def __init__(
        self,
        strategy: str = "mean",
        *,
        axis: int | None = None,
        fields: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise PipelineBuildError(
                "unknown merge strategy",
                where="Merge",
                expected=f"one of {', '.join(STRATEGIES)}",
                found=repr(strategy),
            )
        if axis is not None and strategy not in ("concat", "stack"):
            raise PipelineBuildError(
                "axis applies only to concat and stack",
                where=f"Merge({strategy})",
                expected="axis=None",
                found=f"axis={axis}",
            )
        if (weights is None) != (strategy != "weighted"):
            raise PipelineBuildError(
                "weights go with the 'weighted' strategy, and only with it",
                where=f"Merge({strategy})",
                expected="weights=[...]" if strategy == "weighted" else "weights=None",
                found=repr(weights),
            )
        if isinstance(fields, str):
            fields = (fields,)
        default_axis = {"concat": -1, "stack": 0}.get(strategy)
        self._init(
            strategy=strategy,
            axis=default_axis if axis is None else int(axis),
            fields=None if fields is None else tuple(fields),
            weights=None if weights is None else tuple(float(w) for w in weights),
        )

    def lower(self, flow: Any, ctx: TraceContext) -> Pair:
        return merge_pairs(self, flow, self.weights)

    def structure_key(self) -> Any:
        return ("merge", self.strategy, self.axis, self.fields, self.weights)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "type": "Merge",
            "strategy": self.strategy,
            "axis": self.axis,
            "fields": self.fields,
            "weights": self.weights,
        }

    def __repr__(self) -> str:
        extras = [] if self.axis is None else [f"axis={self.axis}"]
        if self.fields is not None:
            extras.append(f"fields={list(self.fields)}")
        if self.weights is not None:
            extras.append(f"weights={list(self.weights)}")
        return f"Merge({', '.join([self.strategy, *extras])})"


def merge_pairs(merge: Merge, flow: Any, weights: Any) -> Pair:
    """Combine the branch outputs in ``flow`` as ``merge`` says.

    ``weights`` may be traced values (learnable weights of a composite operator).
    """
    where = repr(merge)
    if not isinstance(flow, Fanout):
        raise PipelineBuildError(
            "nothing to merge",
            where=where,
            expected="the outputs of a Parallel node (a | b) before Merge",
            found="a single batch",
        )
    if weights is not None and len(weights) != len(flow):
        raise PipelineBuildError(
            "one weight per branch is needed",
            where=where,
            expected=f"{len(flow)} weights",
            found=f"{len(weights)}",
        )
    data = _merge_fields(merge, [d for d, _ in flow], weights, where, "")
    states = _merge_fields(merge, [s for _, s in flow], weights, where, "state:")
    return data, states


def _merge_fields(
    merge: Merge, branches: list[dict], weights: Any, where: str, prefix: str
) -> dict:
    names = list(branches[0])
    for i, branch in enumerate(branches[1:], start=1):
        if list(branch) != names and sorted(branch) != sorted(names):
            raise PipelineBuildError(
                "branches produce different fields",
                where=where,
                expected=f"fields {sorted(names)} (as branch 0)",
                found=f"{sorted(branch)} in branch {i}",
            )
    out = {}
    for name in names:
        values = [b[name] for b in branches]
        if merge.fields is None or prefix:  # states always follow the default rule
            combine = bool(jnp.issubdtype(values[0].dtype, jnp.inexact))
        else:
            combine = name in merge.fields
        _check_alike(merge, values, f"{where}, field '{prefix}{name}'", combine)
        out[name] = _combine(merge, values, weights) if combine else values[0]
    if merge.fields is not None and not prefix:
        missing = [f for f in merge.fields if f not in out]
        if missing:
            raise PipelineBuildError(
                "unknown field to merge",
                where=where,
                expected=f"one of {sorted(out)}",
                found=repr(missing[0]),
            )
    return out


def _check_alike(merge: Merge, values: list, where: str, combined: bool) -> None:
    first = values[0]
    concat = combined and merge.strategy == "concat"
    rank = first.ndim - 1  # the record's rank; axis 0 of the arrays is the batch
    if combined and merge.strategy in ("concat", "stack"):
        limit = rank if concat else rank + 1
        axis = merge.axis
        assert axis is not None
        if limit == 0 or not -limit <= axis < limit:
            raise PipelineBuildError(
                f"axis out of range for {merge.strategy}",
                where=where,
                expected=f"-{limit} <= axis < {limit} for records of shape {first.shape[1:]}",
                found=f"axis={axis}",
            )
    for i, value in enumerate(values[1:], start=1):
        if value.dtype != first.dtype:
            raise PipelineBuildError(
                "branches produce different dtypes",
                where=where,
                expected=f"{first.dtype} (as branch 0)",
                found=f"{value.dtype} in branch {i}",
            )
        shape_a, shape_b = list(first.shape[1:]), list(value.shape[1:])
        if concat and len(shape_a) == len(shape_b):
            assert merge.axis is not None
            shape_a[merge.axis] = shape_b[merge.axis] = -1
        if shape_a != shape_b:
            raise PipelineBuildError(
                "branches produce different shapes",
                where=where,
                expected=f"records of shape {tuple(first.shape[1:])} (as branch 0)"
                + (" apart from the concat axis" if concat else ""),
                found=f"{tuple(value.shape[1:])} in branch {i}",
            )


def _combine(merge: Merge, values: list, weights: Any) -> jax.Array:
    strategy = merge.strategy
    dtype = values[0].dtype
    if strategy in ("mean", "weighted") and not jnp.issubdtype(dtype, jnp.inexact):
        # Integer and boolean fields: combined in float32, rounded back to the dtype.
        as_float = [v.astype(jnp.float32) for v in values]
        return jnp.round(_combine(merge, as_float, weights)).astype(dtype)
    if strategy in ("mean", "sum"):
        total = values[0]
        for v in values[1:]:
            total = total + v
        return total / np.asarray(len(values), dtype) if strategy == "mean" else total
    if strategy == "max":
        return _fold(jnp.maximum, values)
    if strategy == "min":
        return _fold(jnp.minimum, values)
    if strategy == "weighted":
        total = values[0] * jnp.asarray(weights[0], dtype)
        for v, w in zip(values[1:], weights[1:], strict=True):
            total = total + v * jnp.asarray(w, dtype)
        return total
    axis = merge.axis
    assert axis is not None
    batch_axis = axis + 1 if axis >= 0 else axis
    if strategy == "concat":
        return jnp.concatenate(values, axis=batch_axis)
    return jnp.stack(values, axis=batch_axis)


def _fold(fn, values: list) -> jax.Array:
    out = values[0]
    for v in values[1:]:
        out = fn(out, v)
    return out
