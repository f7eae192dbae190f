"""Lowering a pipeline's device nodes into jitted pure functions.

The operators are split into ``(graphdef, state)``; a compiled function takes
``(state, inputs, index, record_ids, epoch, valid rows)`` and computes a chunk of
rows (a whole number of batches of every stage) in one XLA dispatch. Cache nodes
cut the device plane into segments: there is one function per segment it can start
at (the source, or any cache), each returning its final output and the values at
the caches after its start (to be stored). A second small compiled function cuts
the chunk's output into batches (kept apart from the main function: fused, XLA
recomputes the chunk per slice). Shapes are fixed, so an epoch never recompiles.

This module only builds functions; :mod:`datarax.dag.program` decides when, and
keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.stages import Wrapped

from datarax.dag.base import Node, TraceContext, lower_chain
from datarax.dag.rebatch import RebatchNode
from datarax.operators.base import Operator

#: Output bytes one compiled call aims to produce; bounds latency and memory per call.
TARGET_CHUNK_BYTES = 4 * 1024**2
MAX_BATCHES_PER_CALL = 32


class DevicePlan:
    """The static part of a pipeline's device plane: segments between caches.

    Plans compare by structure, so pipelines built alike share compiled code.

    Args:
        segments: Top-level device nodes between caches (``RebatchNode`` included).
        batch_sizes: Batch size at the start of each segment.
        operators: Every operator, depth first (the order of the split state).
        seed: The pipeline seed.
    """

    def __init__(
        self,
        segments: tuple[tuple[Node, ...], ...],
        batch_sizes: tuple[int, ...],
        operators: tuple[Operator, ...],
        seed: int,
    ) -> None:
        self.segments = segments
        self.batch_sizes = batch_sizes
        self.operators = operators
        self.seed = seed
        self.key = (
            tuple(tuple(n.structure_key() for n in seg) for seg in segments),
            batch_sizes,
            seed,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DevicePlan) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def num_caches(self) -> int:
        """Cache nodes in the plan."""
        return len(self.segments) - 1

    def apply(
        self,
        operators: Any,
        flow: Any,
        record_ids: jax.Array,
        epoch: jax.Array,
        valid: jax.Array,
        segment: int = 0,
    ) -> tuple[Any, tuple[Any, ...]]:
        """The device plane on the rows ``flow`` of the records ``record_ids``.

        The one computation of the device plane: compiled chunks, fused training
        loops and :class:`~datarax.dag.transform.PipelineTransform` all call it.

        Args:
            operators: The operators, in the plan's order (copies holding traced values).
            flow: The input rows: a ``(data, states)`` pair, or the values stored at
                the cache the segment starts after.
            record_ids: The source record id of every row (``int32``).
            epoch: The epoch (``uint32`` scalar).
            valid: ``True`` for real rows, ``False`` for padding.
            segment: 0 for the source, ``j`` to start after cache ``j``.

        Returns:
            The output and the values at each cache after ``segment``.
        """
        ctx = TraceContext(record_ids, epoch, self.seed, None, valid, {})
        return self.lower(operators, flow, ctx, segment)

    def lower(
        self, operators: Any, flow: Any, ctx: TraceContext, segment: int = 0
    ) -> tuple[Any, tuple[Any, ...]]:
        """Run segments ``segment..`` on ``flow``; returns (output, values at caches)."""
        ctx = TraceContext(
            record_ids=ctx.record_ids,
            epoch=ctx.epoch,
            seed=ctx.seed,
            batch_size=self.batch_sizes[segment],
            valid=ctx.valid,
            operators={id(o): m for o, m in zip(self.operators, operators, strict=True)},
        )
        cached = []
        for j in range(segment, len(self.segments)):
            flow, ctx = _lower_segment(self.segments[j], flow, ctx)
            if j < len(self.segments) - 1:
                cached.append(flow)
        return flow, tuple(cached)


def _lower_segment(
    nodes: tuple[Node, ...], flow: Any, ctx: TraceContext
) -> tuple[Any, TraceContext]:
    run: list[Node] = []
    for node in (*nodes, None):
        if node is None or isinstance(node, RebatchNode):
            flow = lower_chain(run, flow, ctx)
            run = []
            if node is not None:
                ctx = ctx.with_batch_size(node.target_batch_size)
        else:
            run.append(node)
    return flow, ctx


def module_parts(node: Any, out: list[Any] | None = None) -> list[Any]:
    """Every object reachable through the attributes of NNX modules in ``node``.

    Variables are leaves (their values are read through them); anything else that
    is not a module is recorded as an object. Two calls return the same objects
    (compared with ``is``) unless an attribute was reassigned somewhere in the
    graph: a cheap way to know that a previous ``nnx.split`` still describes it.
    """
    out = [] if out is None else out
    kind = _KINDS.get(type(node))
    if kind is None:
        if isinstance(node, nnx.Variable):
            kind = "leaf"
        elif isinstance(node, nnx.Pytree):
            kind = "module"
        else:
            kind = "sequence" if isinstance(node, (list, tuple)) else "leaf"
        _KINDS[type(node)] = kind
    out.append(node)
    if kind == "module":
        for key, value in vars(node).items():
            out.append(key)
            module_parts(value, out)
    elif kind == "sequence":
        out.append(len(node))
        for value in node:
            module_parts(value, out)
    return out


#: How :func:`module_parts` treats each type (isinstance on NNX types is slow).
_KINDS: dict[type, str] = {}


def same_parts(a: list[Any], b: list[Any]) -> bool:
    """Whether two :func:`module_parts` lists hold the same objects."""
    return len(a) == len(b) and all(x is y or x == y for x, y in zip(a, b, strict=True))


#: XLA options of a program compiled for the first batches of a run. The CPU
#: backend's LLVM passes at level 1 instead of 3 compile a pipeline's programs in
#: about half the time; they ran as fast and gave the same bits in every program we
#: measured, but the full chunk program keeps XLA's defaults.
QUICK_COMPILE: dict[str, Any] = {"xla_backend_optimization_level": 1}


def build_run_fn(
    plan: DevicePlan,
    graphdef: Any,
    state_treedef: Any,
    segment: int,
    gather: bool,
    layout: DeviceMajor | None = None,
    parts: int = 1,
    quick: bool = False,
) -> Wrapped:
    """The jitted chunk function of one plan starting at ``segment``.

    The operator state arrives as a flat tuple of leaves: flattening an ``nnx.State``
    on every call would cost more than a small batch's whole computation. With a
    ``layout`` the rows arrive device-major and the outputs stay split over the mesh;
    then the chunk is also cut into its ``parts`` batches inside the function (each
    batch written once, in place), instead of by a second function copying them.
    With ``quick``, XLA compiles it with :data:`QUICK_COMPILE` (a first batch's
    program: compiled fast, run for a few batches only).
    """

    def run(
        state_leaves: tuple[Any, ...],
        inputs: Any,
        index: jax.Array,
        record_ids: jax.Array,
        epoch: jax.Array,
        valid_rows: jax.Array,
    ) -> tuple[Any, tuple[Any, ...]]:
        state = jax.tree_util.tree_unflatten(state_treedef, state_leaves)
        operators = nnx.merge(graphdef, state)
        if gather:
            inputs = jax.tree_util.tree_map(
                lambda v: jnp.take(v, index, axis=0, mode="clip"), inputs
            )
        positions = jnp.arange(record_ids.shape[0])
        if layout is not None:
            positions = layout.batch_major(positions)
        valid = positions < valid_rows
        out, cached = plan.apply(operators, inputs, record_ids, epoch, valid, segment)
        if layout is not None:
            out = layout.sharder.constrain(
                cut_device_major(out, parts, layout) if parts > 1 else out
            )
        return out, cached

    return jax.jit(run, compiler_options=QUICK_COMPILE if quick else None)


@dataclass(frozen=True, eq=False)
class DeviceMajor:
    """Rows of a chunk ordered device by device (see ``Program.arrange``)."""

    sharder: Any
    batch_size: int

    def __hash__(self) -> int:
        return hash((self.sharder.key(), self.batch_size))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, DeviceMajor)
            and self.sharder.key() == other.sharder.key()
            and self.batch_size == other.batch_size
        )

    def batch_major(self, flat: jax.Array) -> jax.Array:
        """The batch-major position of each device-major row (rows fixed at trace time)."""
        shards = self.sharder.data_size
        b = self.batch_size // shards
        k = flat.shape[0] // self.batch_size
        device, batch, row = flat // (k * b), (flat // b) % k, flat % b
        out: jax.Array = batch * self.batch_size + device * b + row
        return out


def cut_device_major(chunk: Any, parts: int, layout: DeviceMajor) -> list[Any]:
    """The ``parts`` batches of a device-major chunk, each still split over the mesh."""
    shards = layout.sharder.data_size

    def cut(x: jax.Array) -> list[jax.Array]:
        grouped = x.reshape((shards, parts, x.shape[0] // (shards * parts), *x.shape[1:]))
        return [grouped[:, j].reshape((-1, *x.shape[1:])) for j in range(parts)]

    pieces = jax.tree_util.tree_map(cut, chunk)
    return [
        jax.tree_util.tree_map(lambda p, i=i: p[i], pieces, is_leaf=lambda x: isinstance(x, list))
        for i in range(parts)
    ]


def split_fn(parts: int) -> Callable[[Any], list[Any]]:
    """A jitted function cutting every leaf of a chunk into ``parts`` equal batches."""

    def split(chunk: Any) -> list[Any]:
        pieces = jax.tree_util.tree_map(lambda x: jnp.split(x, parts, axis=0), chunk)
        return [
            jax.tree_util.tree_map(
                lambda p, i=i: p[i], pieces, is_leaf=lambda x: isinstance(x, list)
            )
            for i in range(parts)
        ]

    return jax.jit(split)


def choose_batches_per_call(
    record_bytes: int, batch_size: int, batches_per_epoch: int, requested: int | None
) -> int:
    """How many batches one compiled call computes."""
    if requested is not None:
        return max(1, min(requested, batches_per_epoch))
    by_size = TARGET_CHUNK_BYTES // max(1, record_bytes * batch_size)
    return max(1, min(by_size, MAX_BATCHES_PER_CALL, batches_per_epoch))
