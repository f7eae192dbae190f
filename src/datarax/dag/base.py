"""The node base, sequencing, operator nodes and the context nodes are lowered in.

Every device-plane node *lowers*: ``node.lower(flow, ctx)`` is a pure JAX function of
the rows flowing through it, called while the pipeline's chunk function is traced.
A flow is either one ``(data, states)`` pair (dicts of arrays, records on axis 0)
or a :class:`Fanout` of pairs, the outputs of a :class:`~datarax.dag.combine.Parallel`
waiting to be merged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import jax
import jax.numpy as jnp

from datarax.core.errors import DataraxError, PipelineBuildError
from datarax.operators.base import Fields, Operator, fusion_runs

Pair = tuple[Fields, Fields]


class Fanout(tuple[Any, ...]):
    """The outputs of parallel branches, one ``(data, states)`` pair per branch."""

    __slots__ = ()


jax.tree_util.register_pytree_node(Fanout, lambda f: (tuple(f), None), lambda _, c: Fanout(c))


@dataclass(frozen=True)
class TraceContext:
    """What a node may read while it is lowered, besides its input flow.

    Attributes:
        record_ids: Source record id of every row (``int32``, shape ``(rows,)``).
        epoch: The epoch (``uint32`` scalar).
        seed: The pipeline seed.
        batch_size: Records per batch at this point of the pipeline; rows are whole
            batches of this size (``None`` inside operators, where batches are unknown).
        valid: ``True`` for rows holding real records, ``False`` for the padding of
            an epoch's short last chunk.
        operators: Maps ``id(operator)`` of the pipeline's operators to the copies
            holding the traced parameters.
    """

    record_ids: jax.Array
    epoch: jax.Array
    seed: int
    batch_size: int | None
    valid: jax.Array
    operators: dict[int, Operator]

    def operator(self, op: Operator) -> Operator:
        """The traced copy of ``op`` (``op`` itself when built inside the trace)."""
        return self.operators.get(id(op), op)

    def with_rows(self, record_ids: jax.Array, valid: jax.Array) -> TraceContext:
        """The same context for a subset of rows (one batch, for example)."""
        return replace(self, record_ids=record_ids, valid=valid)

    def with_batch_size(self, batch_size: int | None) -> TraceContext:
        """The same context after the batch size changed."""
        return replace(self, batch_size=batch_size)

    @classmethod
    def for_rows(
        cls, record_ids: jax.Array, epoch: Any, seed: int, batch_size: int | None = None
    ) -> TraceContext:
        """A context over ``record_ids`` with every row valid and no operator mapping."""
        record_ids = jnp.asarray(record_ids, jnp.int32)
        return cls(
            record_ids=record_ids,
            epoch=jnp.asarray(epoch, jnp.uint32),
            seed=int(seed),
            batch_size=batch_size,
            valid=jnp.ones(record_ids.shape, bool),
            operators={},
        )


class Node:
    """Base of all DAG nodes: immutable values composed with ``>>`` and ``|``.

    Subclasses in the device plane implement :meth:`lower`; host-plane nodes
    (source, batching, shuffling, prefetching) set ``device = False``.
    """

    __slots__ = ()

    #: Whether the node runs inside the compiled function.
    device: bool = True

    #: Whether the node decides once per batch (it then needs whole batches in order).
    per_batch: bool = False

    @property
    def name(self) -> str:
        """The name shown in errors and descriptions."""
        return type(self).__name__

    def __rshift__(self, other: Node) -> Node:
        if not isinstance(other, Node):
            raise PipelineBuildError(
                "can only chain nodes with >>",
                where=self.name,
                expected="a Node (e.g. OperatorNode(op))",
                found=type(other).__name__,
            )
        from datarax.dag.pipeline import chain

        return chain(self, other)

    def __or__(self, other: Node) -> Node:
        from datarax.dag.combine import Parallel

        return Parallel([self, other])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; build a new node instead")

    def _init(self, **fields: Any) -> None:
        for k, v in fields.items():
            object.__setattr__(self, k, v)

    def __getstate__(self) -> dict[str, Any]:  # nodes travel to worker processes
        return {
            k: getattr(self, k)
            for cls in type(self).__mro__
            for k in getattr(cls, "__slots__", ())
            if k != "__weakref__" and hasattr(self, k)
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._init(**state)

    # -- compilation -----------------------------------------------------------------
    def lower(self, flow: Any, ctx: TraceContext) -> Any:
        """The node's computation on ``flow`` (traced into the pipeline's function)."""
        raise PipelineBuildError(
            "node cannot be compiled into the device plane",
            where=self.name,
            expected="a node that implements lower(flow, ctx)",
            found=f"{type(self).__name__} without a device computation",
        )

    def children(self) -> tuple[Node, ...]:
        """Nested nodes (branches, paths), in order."""
        return ()

    def collect_operators(self) -> list[Operator]:
        """Every operator of this node and its children, depth first."""
        out: list[Operator] = []
        for child in self.children():
            out.extend(child.collect_operators())
        return out

    def walk(self) -> Iterator[Node]:
        """This node and every nested node, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    def memoisable(self) -> str | None:
        """``None`` when the output is a function of each record alone, else why not."""
        for child in self.children():
            reason = child.memoisable()
            if reason is not None:
                return reason if isinstance(child, Sequential) else f"{child.name}: {reason}"
        return None

    def structure_key(self) -> Any:
        """A hashable description of what the node computes, apart from its operators.

        Two pipelines with equal keys (and equal operator graphs) share compiled code.
        """
        return (type(self).__name__, id(self))

    def fingerprint(self) -> dict[str, Any]:
        """What determines this node's output (compared when restoring state)."""
        return {"type": self.name}

    def __repr__(self) -> str:
        return self.name


def as_node(value: Node | Operator | None, where: str) -> Node:
    """A node from a node, an operator (wrapped in :class:`OperatorNode`) or ``None``."""
    if value is None:
        return Sequential([])
    if isinstance(value, Operator):
        return OperatorNode(value)
    if isinstance(value, Node):
        return value
    raise PipelineBuildError(
        "not a node",
        where=where,
        expected="a Node, an Operator or None",
        found=type(value).__name__,
    )


class OperatorNode(Node):
    """Runs an operator on every batch, inside the pipeline's compiled function."""

    __slots__ = ("operator",)
    operator: Operator

    def __init__(self, operator: Operator) -> None:
        if not isinstance(operator, Operator):
            raise PipelineBuildError(
                "not an operator",
                where="OperatorNode",
                expected="a datarax Operator (e.g. ElementOperator)",
                found=type(operator).__name__,
            )
        self._init(operator=operator)

    @property
    def name(self) -> str:
        """``OperatorNode(<operator name>)``."""
        return f"OperatorNode({self.operator.name})"

    @property
    def per_batch(self) -> bool:  # type: ignore[override]
        """Whether the operator sees whole batches (see ``Operator.mixes_batch``)."""
        return self.operator.mixes_batch

    def lower(self, flow: Any, ctx: TraceContext) -> Pair:
        data, states = single(flow, self.name)
        return apply_run([ctx.operator(self.operator)], data, states, ctx)

    def collect_operators(self) -> list[Operator]:
        return [self.operator]

    def memoisable(self) -> str | None:
        return "it draws random numbers" if self.operator.stochastic else None

    def structure_key(self) -> Any:
        return ("op",)

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "OperatorNode", "operator": self.operator.fingerprint()}


class Sequential(Node):
    """Nodes run one after another (nested ``Sequential`` nodes are flattened).

    An empty ``Sequential`` passes its input through unchanged.
    """

    __slots__ = ("nodes",)
    nodes: tuple[Node, ...]

    def __init__(self, nodes: Iterable[Node]) -> None:
        flat: list[Node] = []
        for node in nodes:
            if isinstance(node, Sequential):
                flat.extend(node.nodes)
            elif isinstance(node, Node):
                flat.append(node)
            else:
                raise PipelineBuildError(
                    "not a node",
                    where="Sequential",
                    expected="Node instances",
                    found=type(node).__name__,
                )
        self._init(nodes=tuple(flat))

    def lower(self, flow: Any, ctx: TraceContext) -> Any:
        return lower_chain(self.nodes, flow, ctx)

    def children(self) -> tuple[Node, ...]:
        return self.nodes

    def structure_key(self) -> Any:
        return ("seq", tuple(n.structure_key() for n in self.nodes))

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "Sequential", "nodes": [n.fingerprint() for n in self.nodes]}

    def __repr__(self) -> str:
        if not self.nodes:
            return "Identity"
        return f"{type(self).__name__}({' >> '.join(repr(n) for n in self.nodes)})"


def single(flow: Any, where: str) -> Pair:
    """``flow`` as one ``(data, states)`` pair; a clear error for unmerged branches."""
    if isinstance(flow, Fanout):
        raise PipelineBuildError(
            "the outputs of parallel branches must be merged first",
            where=where,
            expected="Merge(...) after a Parallel node",
            found=f"{len(flow)} unmerged branch outputs",
        )
    return cast(Pair, flow)


def lower_node(node: Node, flow: Any, ctx: TraceContext) -> Any:
    """``node.lower`` with host-plane and untraceable nodes turned into build errors."""
    if not node.device:
        raise PipelineBuildError(
            "a host-plane node cannot run inside the device plane",
            where=node.name,
            expected="device nodes (operators, Parallel, Merge, Branch) here",
            found=f"{node.name} after a device node",
            hint="Place source, batching, shuffle and prefetch nodes at the start",
        )
    with compiling(node):
        return node.lower(flow, ctx)


@contextlib.contextmanager
def compiling(node: Node) -> Iterator[None]:
    """Turn errors raised while ``node`` is traced into build errors naming it.

    The one wrapper around user code on the device plane: an operator's function,
    a branch condition or a selector that raises (a missing field, a wrong type, a
    ``key`` used without ``stochastic=True``), and JAX's errors about untraceable
    Python code, all become a :class:`PipelineBuildError` at ``>>`` that names the
    node and says what was raised. The innermost node names the error; library
    errors pass through unchanged.
    """
    try:
        yield
    except DataraxError:
        raise
    except Exception as exc:
        untraceable = isinstance(exc, _UNTRACEABLE)
        raise PipelineBuildError(
            "node cannot be compiled" if untraceable else "the node raised while it was traced",
            where=node.name,
            expected="a function JAX can trace (no Python branching or NumPy calls on values)"
            if untraceable
            else "a function of the batch's fields (and a key when stochastic)",
            found=_first_line(exc),
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


_UNTRACEABLE = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.UnexpectedTracerError,
)


def lower_chain(nodes: Sequence[Node], flow: Any, ctx: TraceContext) -> Any:
    """Lower ``nodes`` in order; adjacent operators of one fusion group run as one.

    See :meth:`Operator.fusion_group` and :func:`~datarax.operators.base.fusion_runs`:
    a run of adjacent operator nodes whose operators share a group is handed to
    ``apply_fused`` of the first.
    """
    i = 0
    while i < len(nodes):
        node = nodes[i]
        if not isinstance(node, OperatorNode):
            flow = lower_node(node, flow, ctx)
            i += 1
            continue
        j = i
        while j < len(nodes) and isinstance(nodes[j], OperatorNode):
            j += 1
        adjacent = cast(Sequence[OperatorNode], nodes[i:j])
        for run in fusion_runs([ctx.operator(n.operator) for n in adjacent]):
            first = adjacent[0]
            data, states = single(flow, first.name)
            with compiling(first):
                flow = apply_run(run, data, states, ctx)
            adjacent = adjacent[len(run) :]
        i = j
    return flow


def apply_run(run: Sequence[Operator], data: Fields, states: Fields, ctx: TraceContext) -> Pair:
    """A run of operators of one fusion group on the chunk's rows.

    An operator that mixes its batch (``Operator.mixes_batch``) is handed one batch
    at a time (``lax.map`` over the chunk's batches), so its pairs never cross two
    batches of a compiled call.
    """

    def apply(d: Fields, s: Fields, ids: jax.Array) -> Pair:
        return type(run[0]).apply_fused(run, d, s, ids, ctx.epoch, ctx.seed)

    rows, size = ctx.record_ids.shape[0], ctx.batch_size
    if not run[0].mixes_batch or size is None or rows == size:
        return apply(data, states, ctx.record_ids)
    split = lambda x: x.reshape(rows // size, size, *x.shape[1:])  # noqa: E731
    out = jax.lax.map(
        lambda a: apply(*a), jax.tree_util.tree_map(split, (data, states, ctx.record_ids))
    )
    return cast(Pair, jax.tree_util.tree_map(lambda x: x.reshape(rows, *x.shape[2:]), out))
