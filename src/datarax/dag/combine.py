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
The arithmetic is :func:`datarax.operators.combine.merge_outputs`, shared with
:class:`~datarax.operators.CompositeOperator`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from datarax.core.errors import PipelineBuildError
from datarax.dag.base import Fanout, Node, Pair, TraceContext, as_node, lower_node, single
from datarax.operators.combine import MERGE_STRATEGIES, default_axis, merge_outputs


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
        if strategy not in MERGE_STRATEGIES:
            raise PipelineBuildError(
                "unknown merge strategy",
                where="Merge",
                expected=f"one of {', '.join(MERGE_STRATEGIES)}",
                found=repr(strategy),
            )
        if axis is not None and default_axis(strategy) is None:
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
        self._init(
            strategy=strategy,
            axis=default_axis(strategy) if axis is None else int(axis),
            fields=None if fields is None else tuple(fields),
            weights=None if weights is None else tuple(float(w) for w in weights),
        )

    def lower(self, flow: Any, ctx: TraceContext) -> Pair:
        if not isinstance(flow, Fanout):
            raise PipelineBuildError(
                "nothing to merge",
                where=repr(self),
                expected="the outputs of a Parallel node (a | b) before Merge",
                found="a single batch",
            )
        return merge_outputs(
            flow,
            self.strategy,
            axis=self.axis,
            fields=self.fields,
            weights=self.weights,
            where=repr(self),
        )

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
