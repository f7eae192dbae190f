"""`compile(pipeline) -> Program`: a pipeline's device plane, ready to compute chunks.

A :class:`Program` is everything an iterator needs besides the host plane: the
device plan, the operators' state, the jitted chunk functions (one per segment a
chunk can start at), the batch grid, the rows of a chunk, the cache stores and
where the rows live (one device, or device-major over a mesh).

Compiled functions are kept by the one :class:`ProgramCache` of the process, with
one staleness rule: a pipeline's operators are split (``nnx.split``) again only
when an attribute of a module in their graph was reassigned; parameter *values*
are read afresh by every :func:`compile`, so a change made in place or with
``nnx.update`` applies to the next program without recompiling. Functions are
keyed by what they compute (plan structure, graph definition, layout, chunk
size), so pipelines built alike share them, and XLA compiles each once.

Example:
    >>> import numpy as np
    >>> from datarax import from_source
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> src = MemorySource(MemorySourceConfig(), data={"x": np.arange(10.0)})
    >>> program = compile(from_source(src, batch_size=4))
    >>> program.rows, program.batch_size, program.batches_per_call
    (12, 4, 3)
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.stages import Wrapped

from datarax.batching.geometry import Geometry
from datarax.core.digest import digest
from datarax.dag.cache import CacheNode, CacheStore, scatter_rows
from datarax.dag.compiler import (
    MAX_BATCHES_PER_CALL,
    DeviceMajor,
    DevicePlan,
    build_run_fn,
    choose_batches_per_call,
    module_parts,
    same_parts,
    split_fn,
)
from datarax.dag.rebatch import RebatchNode
from datarax.dag.runtime import runtime_of
from datarax.operators.base import Operator

if TYPE_CHECKING:
    from datarax.dag.pipeline import Pipeline

#: Records each host-plane worker reads per chunk, at least (record sources).
RECORDS_PER_WORKER = 1024

#: A jitted chunk function: ``(state leaves, inputs, index, record ids, epoch, valid rows)``.
RunFn = Wrapped


class ChunkOutput(NamedTuple):
    """What one compiled call returns."""

    #: One output per batch of the chunk (a ``(data, states)`` pair, or a Fanout of them).
    batches: list[Any]
    #: The values at each later cache, to be stored (the chunk's rows).
    cached: tuple[Any, ...]


@dataclass(frozen=True)
class CacheSlot:
    """A cache node's store and the record spec it holds."""

    store: CacheStore
    spec: Any


@dataclass(eq=False)
class CompiledChunk:
    """The jitted functions of one plan for one chunk layout, and what ran already.

    Attributes:
        runs: One function per segment a chunk can start at (source, then each cache).
        warmed: The chunk sizes (and cache signatures) compiled and run once, so
            the first iterator compiles them in the background and later ones do not.
    """

    runs: tuple[RunFn, ...]
    warmed: set[Any] = field(default_factory=set)


@dataclass(frozen=True)
class OperatorSplit:
    """The operators as ``nnx.split`` gave them, with what the staleness rule compares."""

    objects: list[Any]
    graphdef: Any
    state: Any
    treedef: Any


@dataclass(frozen=True)
class Program:
    """A compiled pipeline for chunks of ``rows`` rows (see the module doc).

    With a ``layout`` the chunk's rows are laid out device by device (each device
    holds its slice of every batch of the chunk), so the computation runs on all
    devices at once and every batch comes out already split over the mesh; with a
    ``sharder`` and no layout the batches are computed on one device and placed.
    """

    plan: DevicePlan
    geometry: Geometry
    rows: int
    compiled: CompiledChunk
    split: Callable[[Any], list[Any]] | None
    state_leaves: tuple[Any, ...]
    gather_from: Any
    sharder: Any
    layout: DeviceMajor | None
    assemble: Callable[[Any], Any] | None
    caches: tuple[CacheSlot, ...]

    @property
    def batch_size(self) -> int:
        """Records per output batch."""
        return self.geometry.batch_size

    @property
    def batches_per_call(self) -> int:
        """Output batches per call."""
        return self.rows // self.batch_size

    @property
    def gather(self) -> bool:
        """Whether the source lives on the device (the chunk gathers its rows itself)."""
        return self.gather_from is not None

    @property
    def stores(self) -> tuple[CacheStore, ...]:
        """The cache stores, in order."""
        return tuple(slot.store for slot in self.caches)

    @property
    def runs(self) -> tuple[RunFn, ...]:
        """The chunk functions, one per segment a chunk can start at."""
        return self.compiled.runs

    def arrange(self, ids: np.ndarray) -> np.ndarray:
        """Record ids of a chunk in the order its rows are computed."""
        if self.layout is None:
            return ids
        shards = self.layout.sharder.data_size
        k, b = self.rows // self.batch_size, self.batch_size // shards
        return ids.reshape(k, shards, b).transpose(1, 0, 2).reshape(-1)

    def run(
        self,
        segment: int,
        inputs: Any,
        index: np.ndarray,
        record_ids: np.ndarray,
        epoch: int,
        valid_rows: int,
    ) -> ChunkOutput:
        """Dispatch one chunk starting at ``segment`` (0: the source, j: after cache j)."""
        # On a mesh, compute on the sharder's mesh whatever mesh the caller made current.
        with contextlib.nullcontext() if self.sharder is None else self.sharder.computing():
            return self._dispatch(segment, inputs, index, record_ids, epoch, valid_rows)

    def _dispatch(
        self, segment: int, inputs: Any, index: Any, record_ids: Any, epoch: int, valid_rows: int
    ) -> ChunkOutput:
        if self.layout is not None:
            rows = NamedSharding(self.layout.sharder.mesh, P(self.layout.sharder.data_axis))
            if index is record_ids:  # reading the source: one transfer for both
                index = record_ids = jax.device_put(record_ids, rows)
            else:
                index, record_ids = jax.device_put((index, record_ids), rows)
            if not self.gather:
                inputs = jax.device_put(inputs, rows)
        out, cached = self.runs[segment](
            self.state_leaves, inputs, index, record_ids, np.uint32(epoch), np.int32(valid_rows)
        )
        if self.split is not None:
            parts = self.split(out)
        else:  # cut inside the run function, or a single batch
            parts = out if isinstance(out, list) else [out]
        if self.sharder is not None and self.layout is None:
            parts = [self.sharder.shard(part) for part in parts]
        if self.assemble is not None:  # this process's rows of each global batch
            parts = [self.assemble(part) for part in parts]
        return ChunkOutput(parts, cached)

    def compile_caches(self) -> None:
        """Compile (without running) the functions starting at each cache, and the inserts."""
        vector = jax.ShapeDtypeStruct((self.rows,), np.int32)
        epoch = jax.ShapeDtypeStruct((), np.uint32)
        valid = jax.ShapeDtypeStruct((), np.int32)
        for j, slot in enumerate(self.caches, start=1):
            arrays = _abstract(slot.store.arrays)
            self.runs[j].lower(self.state_leaves, arrays, vector, vector, epoch, valid).compile()
            values = jax.tree_util.tree_map(
                lambda s: jax.ShapeDtypeStruct((self.rows, *s.shape), s.dtype), slot.spec
            )
            scatter_rows.lower(arrays, vector, values).compile()


def _abstract(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


class ProgramCache:
    """The process's compiled chunk functions, and each pipeline's operator split.

    Args:
        max_functions: Function sets kept (least recently used ones are dropped).
    """

    def __init__(self, max_functions: int = 64) -> None:
        self._functions: OrderedDict[Any, Any] = OrderedDict()
        self._max = max_functions
        self._lock = threading.Lock()

    def operator_split(self, pipeline: Pipeline) -> OperatorSplit:
        """The operators' split, made again only when their module graph changed.

        The state from ``nnx.split`` holds the operators' own ``Variable`` objects, so
        flattening it reads their current values. Reassigning any attribute of an
        operator (or of a module inside one) is seen by :func:`module_parts`, and
        only then is the graph split again.
        """
        runtime = runtime_of(pipeline)
        ops = tuple(pipeline.operators)
        objects = module_parts(ops)
        current: OperatorSplit | None = runtime.compiled
        if current is None or not same_parts(current.objects, objects):
            graphdef, state = nnx.split(ops)
            treedef = jax.tree_util.tree_structure(state)
            current = OperatorSplit(objects, graphdef, state, treedef)
            runtime.compiled = current
        return current

    def chunk_functions(
        self,
        plan: DevicePlan,
        split: OperatorSplit,
        gather: bool,
        layout: DeviceMajor | None,
        parts: int,
        quick: bool = False,
    ) -> CompiledChunk:
        """The chunk functions of ``plan`` for this layout (built once per structure);
        ``quick``: compiled fast, for a run's first batches."""
        key = ("run", plan, split.graphdef, split.treedef, gather, layout, parts, quick)

        def build() -> CompiledChunk:
            runs = tuple(
                build_run_fn(
                    plan, split.graphdef, split.treedef, j, gather or j > 0, layout, parts, quick
                )
                for j in range(plan.num_caches + 1)
            )
            return CompiledChunk(runs)

        compiled: CompiledChunk = self._get(key, build)
        return compiled

    def splitter(self, parts: int) -> Callable[[Any], list[Any]]:
        """The jitted function cutting a chunk into ``parts`` batches."""
        split: Callable[[Any], list[Any]] = self._get(("split", parts), lambda: split_fn(parts))
        return split

    def _get(self, key: Any, build: Callable[[], Any]) -> Any:
        with self._lock:
            value = self._functions.get(key)
            if value is not None:
                self._functions.move_to_end(key)
                return value
        value = build()
        with self._lock:
            value = self._functions.setdefault(key, value)
            while len(self._functions) > self._max:
                self._functions.popitem(last=False)
        return value


#: The process's one program cache.
PROGRAMS = ProgramCache()


def compile(
    pipeline: Pipeline, *, batches_per_call: int | None = None, quick: bool = False
) -> Program:
    """The program computing ``pipeline``'s chunks with the operators' current values.

    Operator parameters are read here: an iterator compiles when it starts (and
    after ``set_state`` / ``reset``), so a change made with ``nnx.update`` applies
    from then on. Cache stores are prepared for the current values (emptied when
    anything before their cache changed).

    Args:
        pipeline: The pipeline.
        batches_per_call: Batches per compiled call (default: the pipeline's choice).
        quick: Compile fast (:data:`~datarax.dag.compiler.QUICK_COMPILE`): the
            program of a run's first batches, while the full one compiles.
    """
    runtime = runtime_of(pipeline)
    plane = runtime.host_plane
    plane.check_batchable()
    view = pipeline.view
    compute_sharder = compute_sharder_of(pipeline)
    layout = device_major_layout(pipeline)
    geometry = view.geometry
    rows = geometry.rows_for(batches_per_call or default_batches_per_call(pipeline))
    parts = rows // geometry.batch_size
    gather_from = plane.device_arrays
    split = PROGRAMS.operator_split(pipeline)
    plan = device_plan(pipeline)
    compiled = PROGRAMS.chunk_functions(
        plan, split, gather_from is not None, layout, parts if layout is not None else 1, quick
    )
    leaves = jax.tree_util.tree_leaves(split.state)
    if compute_sharder is not None:
        leaves = jax.device_put(leaves, compute_sharder.replicated())
    if layout is not None and gather_from is not None:
        # Every device gathers its rows from its own copy of the records.
        if runtime.replicated is None:
            runtime.replicated = jax.device_put(gather_from, compute_sharder.replicated())
        gather_from = runtime.replicated
    cut = None if layout is not None or parts == 1 else PROGRAMS.splitter(parts)
    assemble = None
    if view.slice is not None:
        sharder, global_batch = pipeline.sharder, view.global_geometry.batch_size

        def assemble(part: Any) -> Any:
            return sharder.assemble(part, global_batch)

    return Program(
        plan=plan,
        geometry=geometry,
        rows=rows,
        compiled=compiled,
        split=cut,
        state_leaves=tuple(leaves),
        gather_from=gather_from,
        sharder=compute_sharder,
        layout=layout,
        assemble=assemble,
        caches=prepare_caches(pipeline),
    )


def device_plan(pipeline: Pipeline) -> DevicePlan:
    """The static device plan of ``pipeline``: its segments between cache nodes."""
    segments: list[list[Any]] = [[]]
    sizes = [pipeline.batch_node.batch_size]
    for step in pipeline.steps:
        if isinstance(step.node, CacheNode):
            segments.append([])
            sizes.append(step.batch_size)
        else:
            segments[-1].append(step.node)
    return DevicePlan(
        tuple(tuple(s) for s in segments),
        tuple(sizes),
        tuple(pipeline.operators),
        pipeline.source_node.seed,
    )


def compute_sharder_of(pipeline: Pipeline) -> Any:
    """The placement this process computes with (its own devices when split)."""
    sharder = pipeline.sharder
    return sharder.local if pipeline.split_over_processes else sharder


def device_major_layout(pipeline: Pipeline) -> DeviceMajor | None:
    """The device-major layout, when every node computes each record alone.

    Caches, rebatching and per-batch decisions need batches in order on one
    device: such pipelines compute batches on one device and then place them.
    """
    sharder = compute_sharder_of(pipeline)
    if sharder is None:
        return None
    for node in (n for step in pipeline.steps for n in step.node.walk()):
        if isinstance(node, (CacheNode, RebatchNode)) or node.per_batch:
            return None
    return DeviceMajor(sharder, pipeline.batch_size)


def default_batches_per_call(pipeline: Pipeline) -> int:
    """Output batches per compiled call when iterating (see ``from_source``)."""
    g = pipeline.view.geometry
    record_bytes = pipeline.record_bytes()
    if device_major_layout(pipeline) is not None:  # each device computes its share only
        record_bytes = max(1, record_bytes // compute_sharder_of(pipeline).data_size)
    chosen = choose_batches_per_call(
        record_bytes, g.batch_size, g.batches_per_epoch, pipeline.batches_per_call
    )
    if pipeline.batches_per_call is None and runtime_of(pipeline).host_plane.per_record:
        # Records read one by one: enough of them per chunk to keep every worker
        # busy between two hand-offs.
        workers = max(1, pipeline.source_node.workers)
        wanted = -(-RECORDS_PER_WORKER * workers // g.batch_size)
        chosen = max(chosen, min(wanted, MAX_BATCHES_PER_CALL, g.batches_per_epoch))
    return chosen


def prepare_caches(pipeline: Pipeline) -> tuple[CacheSlot, ...]:
    """Make every cache store match the current parameters; one slot per cache.

    A store is emptied when anything before its cache changed: the source, order,
    seed, nodes or parameter values.
    """
    runtime = runtime_of(pipeline)
    slots = []
    stores = iter(runtime.stores)
    element: tuple[dict[str, Any], dict[str, Any]] = (dict(pipeline.element_spec), {})
    for i, step in enumerate(pipeline.steps):
        if not isinstance(step.node, CacheNode):
            continue
        before = pipeline.steps[:i]
        spec = before[-1].spec if before else element
        ops = [op for s in before for op in s.node.collect_operators()]
        tag = (
            digest(
                {
                    "source": pipeline.source_node.fingerprint(),
                    "nodes": [s.node.fingerprint() for s in before],
                }
            ),
            values_digest(ops),
            # Static attributes (functions, closures, plain Python values) live in
            # the graph definition; it compares by value within the process.
            nnx.graphdef(tuple(ops)),
        )
        store = next(stores)
        size = len(pipeline.source)
        store.prepare(tag, spec, size, step.node.capacity(size))
        slots.append(CacheSlot(store, spec))
    return tuple(slots)


def values_digest(operators: list[Operator]) -> str:
    """A hash of the operators' parameter values."""
    h = hashlib.blake2b(digest_size=16)
    for leaf in jax.tree_util.tree_leaves(nnx.state(tuple(operators))):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        array = np.asarray(leaf)
        h.update(str((array.dtype, array.shape)).encode())
        h.update(array.tobytes())
    return h.hexdigest()
