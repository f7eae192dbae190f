"""`Pipeline`: a source, host-plane nodes and a device plane, ready to iterate."""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax.control.bad_records import BadRecordPolicy
from datarax.control.host_operator import HostOperator
from datarax.control.host_plane import HostPlane
from datarax.control.workers import WorkerMode
from datarax.core.errors import PipelineBuildError
from datarax.dag.base import Fanout, Node, Sequential, TraceContext, lower_node
from datarax.dag.cache import CacheNode
from datarax.dag.compiler import (
    MAX_BATCHES_PER_CALL,
    ChunkProgram,
    DeviceMajor,
    DevicePlan,
    build_run_fn,
    choose_batches_per_call,
    module_parts,
    same_parts,
    split_fn,
)
from datarax.dag.executor import PipelineIterator
from datarax.dag.geometry import Geometry
from datarax.dag.host import BatchNode, DataSourceNode, PrefetchNode, ShuffleNode
from datarax.dag.rebatch import RebatchNode
from datarax.dag.sharder import SharderNode, as_sharder
from datarax.operators.base import Operator
from datarax.samplers.base import Sampler
from datarax.samplers.range import RangeSampler
from datarax.samplers.sequential import SequentialSampler
from datarax.sharding.process import JaxProcessSharder, ProcessSliceConfig, ProcessSliceSampler
from datarax.sources.base import DataSource


def from_source(
    source: DataSource | Any,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
    num_epochs: int | None = 1,
    sampler: Sampler | None = None,
    prefetch: int = 2,
    batches_per_call: int | None = None,
    sharding: Any = None,
    workers: int = 0,
    worker_mode: WorkerMode = "thread",
    bad_records: BadRecordPolicy | str = "raise",
) -> Pipeline:
    """A pipeline that reads ``source`` in batches of ``batch_size``.

    Args:
        source: Where records come from.
        batch_size: Records per batch.
        shuffle: A new pseudo-random order every epoch (Feistel permutation).
        seed: Seeds the shuffle and every stochastic operator's keys.
        drop_remainder: Drop each epoch's short last batch.
        num_epochs: Epochs per ``for`` loop (``None`` = forever). Looping over the same
            pipeline again continues with the next epochs.
        sampler: A custom record order (overrides ``shuffle``).
        prefetch: Chunks the host plane computes ahead (0 = compute when asked);
            a ``PrefetchNode`` in the chain overrides it.
        batches_per_call: Batches computed per compiled call (default: chosen from
            the batch's size so that small batches share one dispatch).
        sharding: Where batches live: a ``NamedSharding`` whose spec splits the batch
            axis over a mesh axis, or an :class:`~datarax.sharding.ArraySharder`
            (a ``SharderNode`` in the chain does the same).
        workers: Host-plane workers that read, decode and run host operators on
            records (record sources and ``HostOperator`` nodes only; 0 = on the
            prefetch thread). Results never depend on the number of workers.
        worker_mode: ``"thread"`` (default) or ``"process"`` (records travel back
            through shared memory; functions must be picklable).
        bad_records: ``"raise"`` (default), ``"skip"`` or a
            :class:`~datarax.control.BadRecordPolicy` with a budget.

    Example:
        >>> import numpy as np
        >>> from datarax.sources import MemorySource, MemorySourceConfig
        >>> src = MemorySource(MemorySourceConfig(), data={"x": np.arange(10.0)})
        >>> [b["x"].tolist() for b in from_source(src, batch_size=4)]
        [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0]]
    """
    nodes = [
        DataSourceNode(
            source,
            sampler=sampler,
            shuffle=shuffle,
            seed=seed,
            num_epochs=num_epochs,
            workers=workers,
            worker_mode=worker_mode,
            bad_records=bad_records,
        ),
        BatchNode(batch_size, drop_remainder=drop_remainder),
    ]
    return Pipeline(nodes, prefetch=prefetch, batches_per_call=batches_per_call, sharding=sharding)


def chain(left: Node, right: Node) -> Node:
    """``left >> right`` as a new node: a :class:`Pipeline` once it has a source and batches."""
    if isinstance(left, Pipeline):
        return left._extended(right)
    nodes = Sequential([left, right]).nodes
    if isinstance(nodes[0], DataSourceNode) and (
        any(isinstance(n, BatchNode) for n in nodes) or any(n.device for n in nodes)
    ):
        return Pipeline(nodes)
    return Sequential(nodes)


#: Records each host-plane worker reads per chunk, at least (record sources).
RECORDS_PER_WORKER = 1024


class _Step:
    """One top-level device node with the output spec and batch size after it."""

    __slots__ = ("node", "spec", "batch_size")

    def __init__(self, node: Node, spec: Any, batch_size: int) -> None:
        self.node, self.spec, self.batch_size = node, spec, batch_size


class Pipeline(Sequential):
    """An iterable chain: a source, host-plane nodes, then device nodes.

    Iterating yields :class:`~datarax.core.batch.Batch` objects (a tuple of them,
    one per branch, when the chain ends in an unmerged ``Parallel``).
    ``iter(pipeline)`` returns a :class:`~datarax.dag.executor.PipelineIterator`
    with ``get_state()`` / ``set_state()``.
    """

    __slots__ = (
        "prefetch",
        "batches_per_call",
        "sampler",
        "geometry",
        "steps",
        "output_spec",
        "sharder",
        "global_geometry",
        "_process_slice",
        "_runtime",
    )
    prefetch: int
    batches_per_call: int | None
    sampler: Sampler
    geometry: Geometry
    steps: tuple[_Step, ...]
    output_spec: Any
    sharder: Any
    global_geometry: Geometry
    _process_slice: tuple[int, int] | None
    _runtime: _Runtime

    def __init__(
        self,
        nodes,
        *,
        prefetch: int = 2,
        batches_per_call: int | None = None,
        sharding: Any = None,
        _parent: Pipeline | None = None,
    ) -> None:
        super().__init__(nodes)
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise PipelineBuildError(
                "invalid prefetch depth",
                where="Pipeline",
                expected="an int >= 0",
                found=repr(prefetch),
            )
        if batches_per_call is not None and (
            not isinstance(batches_per_call, int) or batches_per_call <= 0
        ):
            raise PipelineBuildError(
                "invalid batches_per_call",
                where="Pipeline",
                expected="a positive int or None",
                found=repr(batches_per_call),
            )
        host, device = self._split_planes()
        prefetches = [n for n in self.nodes if isinstance(n, PrefetchNode)]
        if prefetches:
            prefetch = prefetches[-1].buffer_size
        sharders = [n.sharder for n in self.nodes if isinstance(n, SharderNode)]
        sharder = sharders[-1] if sharders else None
        if sharder is None and sharding is not None:
            sharder = as_sharder(sharding, "from_source(sharding=...)")
        sampler = self.source_node.sampler
        for node in host:
            if isinstance(node, ShuffleNode):
                sampler = node.apply(sampler)
        batch = self.batch_node
        stages = [(batch.batch_size, batch.drop_remainder)] + [
            (n.target_batch_size, n.drop_remainder) for n in device if isinstance(n, RebatchNode)
        ]
        global_geometry = Geometry(len(sampler), tuple(stages))
        global_geometry.check()
        geometry, process_slice = global_geometry, None
        if isinstance(sharder, JaxProcessSharder):
            sharder.check_pipeline(batch.batch_size, batch.drop_remainder, len(stages) - 1)
            if sharder.multi_process:
                config = ProcessSliceConfig(batch.batch_size, sharder.num_processes)
                config = ProcessSliceConfig(
                    config.batch_size, config.num_processes, sharder.process_index
                )
                sampler = ProcessSliceSampler(config, base=sampler)
                local = sampler.local_batch_size
                geometry = Geometry(len(sampler), ((local, True),))
                process_slice = (batch.batch_size, local)
        elif sharder is not None:
            sharder.check_batch_size(global_geometry.batch_size, "Pipeline")
        self._init(
            prefetch=prefetch,
            batches_per_call=batches_per_call,
            sampler=sampler,
            geometry=geometry,
            global_geometry=global_geometry,
            sharder=sharder,
            _process_slice=process_slice,
            _runtime=_Runtime(self._host_plane(host)),
        )
        known = _parent.steps if _parent is not None else ()
        steps = list(known)
        spec: Any = known[-1].spec if known else (dict(self.host_plane.element_spec()), {})
        size = known[-1].batch_size if known else batch.batch_size
        for node in device[len(known) :]:
            spec, size = self._infer(node, spec, size, steps)
            steps.append(_Step(node, spec, size))
        self._init(steps=tuple(steps), output_spec=spec)
        if process_slice is not None and self.source_node.bad_records.skips:
            raise PipelineBuildError(
                "skipped records would leave global batches inconsistent across processes",
                where=self.source_node.source.name,
                expected="bad_records='raise' in a pipeline split over processes",
                found=repr(self.source_node.bad_records),
            )
        if process_slice is not None:
            for node in (n for step in self.steps for n in step.node.walk()):
                if getattr(node, "per_batch", False):
                    raise PipelineBuildError(
                        "a per-batch decision needs the whole batch in one process",
                        where=node.name,
                        expected="per-record decisions in a pipeline split over processes",
                        found="per_batch=True",
                    )

    # -- structure -----------------------------------------------------------------
    def _split_planes(self) -> tuple[list[Node], list[Node]]:
        """Host-plane nodes before the first device node, and the device nodes."""
        if not isinstance(self.nodes[0], DataSourceNode):
            raise PipelineBuildError(
                "a pipeline starts at a source",
                where="Pipeline",
                expected="DataSourceNode(...) first",
                found=self.nodes[0].name,
            )
        host: list[Node] = []
        device: list[Node] = []
        for node in self.nodes[1:]:
            if isinstance(node, (PrefetchNode, SharderNode)):
                continue
            if device and isinstance(node, HostOperator):
                raise PipelineBuildError(
                    "a host operator runs before the device plane",
                    where=node.name,
                    expected="HostOperator nodes before the first device node",
                    found=f"after {device[0].name}",
                )
            if device or node.device:
                device.append(node)
                continue
            if isinstance(node, BatchNode) and any(isinstance(n, BatchNode) for n in host):
                raise PipelineBuildError(
                    "a pipeline batches once",
                    where=node.name,
                    expected="RebatchNode(size) to change the batch size",
                    found="a second BatchNode",
                )
            if isinstance(node, DataSourceNode):
                raise PipelineBuildError(
                    "a pipeline has one source",
                    where=node.name,
                    expected="MixedSource to read several sources",
                    found="a second DataSourceNode",
                )
            host.append(node)
        if not any(isinstance(n, BatchNode) for n in host):
            found = device[0].name if device else "no BatchNode"
            raise PipelineBuildError(
                "a source must be followed by a BatchNode",
                where="Pipeline",
                expected="DataSourceNode >> BatchNode(...)",
                found=f"DataSourceNode >> {found}",
            )
        return host, device

    def _infer(self, node: Node, spec: Any, size: int, steps: list[_Step]) -> tuple[Any, int]:
        if isinstance(node, (RebatchNode, CacheNode)):
            if isinstance(spec, Fanout):
                raise PipelineBuildError(
                    "the outputs of parallel branches must be merged first",
                    where=repr(node),
                    expected="Merge(...) before it",
                    found=f"{len(spec)} unmerged branch outputs",
                )
            if isinstance(node, RebatchNode):
                return spec, node.target_batch_size
            for step in steps:
                reason = step.node.memoisable()
                if reason is not None:
                    raise PipelineBuildError(
                        "a cache needs deterministic nodes before it",
                        where=repr(node),
                        expected="nodes whose output depends on each record alone",
                        found=f"{step.node.name}: {reason}",
                        hint="Place the CacheNode before random or per-batch nodes",
                    )
            return spec, size
        return infer_spec(node, spec, size, self.source_node.seed), size

    @property
    def source_node(self) -> DataSourceNode:
        """The first node: where records come from and in which order."""
        return cast(DataSourceNode, self.nodes[0])

    @property
    def source(self) -> DataSource:
        """The data source."""
        return self.source_node.source

    @property
    def host_plane(self) -> HostPlane:
        """Reads chunks: vectorised gathers, or records on the worker pool."""
        return self._runtime.host_plane

    def _host_plane(self, host: list[Node]) -> HostPlane:
        node = self.source_node
        if not getattr(node.source, "random_access", True) and not isinstance(
            node.sampler, (SequentialSampler, RangeSampler)
        ):
            raise PipelineBuildError(
                "a streaming source is read in order",
                where=node.source.name,
                expected="shuffle=False, then ShuffleNode(buffer_size) to shuffle in windows",
                found=f"a {type(node.sampler).__name__}",
            )
        ops = [n for n in host if isinstance(n, HostOperator)]
        return HostPlane(
            node.source,
            ops,
            seed=node.seed,
            workers=node.workers,
            mode=node.worker_mode,
            policy=node.bad_records,
        )

    @property
    def batch_node(self) -> BatchNode:
        """The node grouping records into the first batches."""
        return next(n for n in self.nodes if isinstance(n, BatchNode))

    @property
    def batch_size(self) -> int:
        """Records per output batch (after any ``RebatchNode``)."""
        return self.geometry.batch_size

    @property
    def device_nodes(self) -> tuple[Node, ...]:
        """The top-level nodes of the device plane, in order."""
        return tuple(step.node for step in self.steps)

    @property
    def operators(self) -> list[Operator]:
        """Every operator of the device plane, depth first."""
        return [op for node in self.device_nodes for op in node.collect_operators()]

    def __rshift__(self, other: Node) -> Pipeline:
        if not isinstance(other, Node):
            return cast(Pipeline, super().__rshift__(other))  # raises the build error
        return self._extended(other)

    def _extended(self, node: Node) -> Pipeline:
        return Pipeline(
            (*self.nodes, node),
            prefetch=self.prefetch,
            batches_per_call=self.batches_per_call,
            sharding=self.sharder,
            _parent=self,
        )

    def with_options(
        self, *, prefetch: int | None = None, batches_per_call: int | None = None
    ) -> Pipeline:
        """A copy of this pipeline with other executor options."""
        nodes = self.nodes
        if prefetch is not None:
            nodes = tuple(n for n in nodes if not isinstance(n, PrefetchNode))
        return Pipeline(
            nodes,
            prefetch=self.prefetch if prefetch is None else prefetch,
            batches_per_call=batches_per_call or self.batches_per_call,
            sharding=self.sharder,
            _parent=self,
        )

    # -- identity ------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        stream_nodes = [n for n in self.nodes if not isinstance(n, (PrefetchNode, SharderNode))]
        return {"type": "Pipeline", "nodes": [n.fingerprint() for n in stream_nodes]}

    def fingerprint_digest(self) -> str:
        """A short hash of everything that determines the stream."""
        return _digest(self.fingerprint())

    def records_digest(self) -> str:
        """A short hash of what determines the records: their order and their values.

        Batching (``BatchNode``, ``RebatchNode``), prefetching and the number of
        epochs are left out: they may change between saving an iterator's state and
        restoring it (see :meth:`PipelineIterator.set_state`).
        """
        nodes = []
        for node in self.nodes:
            if isinstance(node, (PrefetchNode, SharderNode, BatchNode, RebatchNode)):
                continue
            fingerprint = node.fingerprint()
            if isinstance(node, DataSourceNode):
                fingerprint.pop("num_epochs")
            nodes.append(fingerprint)
        return _digest({"type": "records", "nodes": nodes})

    # -- execution -----------------------------------------------------------------
    def __iter__(self) -> PipelineIterator:
        return PipelineIterator(self)

    def record_bytes(self) -> int:
        """Bytes of one output record (all data and state fields, all branches)."""
        return sum(
            int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize
            for s in jax.tree_util.tree_leaves(self.output_spec)
        )

    def plan(self) -> DevicePlan:
        """The static device plan: the segments between cache nodes."""
        plan = self._runtime.plan
        if plan is None:
            segments: list[list[Node]] = [[]]
            sizes = [self.batch_node.batch_size]
            for step in self.steps:
                if isinstance(step.node, CacheNode):
                    segments.append([])
                    sizes.append(step.batch_size)
                else:
                    segments[-1].append(step.node)
            plan = DevicePlan(
                tuple(tuple(s) for s in segments),
                tuple(sizes),
                tuple(self.operators),
                self.source_node.seed,
            )
            self._runtime.plan = plan
        return plan

    @property
    def cache_nodes(self) -> tuple[CacheNode, ...]:
        """The cache nodes, in order."""
        return tuple(n for n in self.device_nodes if isinstance(n, CacheNode))

    def program(self, batches_per_call: int | None = None) -> ChunkProgram:
        """The compiled chunk program for the operators' current state.

        Operator parameters are read here, when an iterator starts: a change made
        with ``nnx.update`` applies to iterators created afterwards.

        Args:
            batches_per_call: Batches per compiled call (default: the pipeline's choice).
        """
        layout = self._layout()
        gather = self.host_plane.device_arrays is not None
        rows = self.geometry.rows_for(batches_per_call or self.batches_per_call_default())
        parts = rows // self.batch_size
        state, runs = self._compiled(parts)
        leaves = jax.tree_util.tree_leaves(state)
        split = split_fn(parts) if parts > 1 else None
        gather_from = self.host_plane.device_arrays
        if self.sharder is not None:
            leaves = jax.device_put(leaves, self.compute_sharder.replicated())
        if layout is not None:
            split = None  # the run function cuts device-major chunks itself
            if gather:  # every device gathers its rows from its own copy of the records
                gather_from = self._replicated_source()
        return ChunkProgram(
            runs=runs,
            split=split,
            state_leaves=tuple(leaves),
            rows=rows,
            batch_size=self.batch_size,
            gather=gather,
            gather_from=gather_from,
            sharder=self.compute_sharder,
            device_major=layout is not None,
            assemble=self._assemble if self._process_slice is not None else None,
        )

    def _assemble(self, part: Any) -> Any:
        return self.sharder.assemble(part, self.global_geometry.batch_size)

    def _layout(self) -> DeviceMajor | None:
        """The device-major layout, when every node computes each record alone.

        Caches, rebatching and per-batch decisions need batches in order on one
        device: such pipelines compute batches on one device and then place them.
        """
        sharder = self.compute_sharder
        if sharder is None:
            return None
        for node in (n for step in self.steps for n in step.node.walk()):
            if isinstance(node, (CacheNode, RebatchNode)) or getattr(node, "per_batch", False):
                return None
        return DeviceMajor(sharder, self.batch_size)

    def _replicated_source(self) -> Any:
        """The device-placed source copied to every device this process computes on."""
        if self._runtime.replicated is None:
            self._runtime.replicated = jax.device_put(
                self.host_plane.device_arrays, self.compute_sharder.replicated()
            )
        return self._runtime.replicated

    @property
    def compute_sharder(self) -> Any:
        """The placement this process computes with (its own devices when split)."""
        if isinstance(self.sharder, JaxProcessSharder):
            return self.sharder.local
        return self.sharder

    @property
    def split_over_processes(self) -> bool:
        """Whether each process computes only its rows of every batch."""
        return self._process_slice is not None

    def global_record_ids(self, epoch: int, position: int) -> np.ndarray:
        """Record ids of the global batch holding this process's ``position``."""
        start = self.global_position(position)
        base = cast(ProcessSliceSampler, self.sampler).base
        return base.indices(epoch, start, start + self.global_geometry.batch_size)

    def global_position(self, position: int) -> int:
        """The position in the global stream of this process's ``position``."""
        if self._process_slice is None:
            return position
        big, local = self._process_slice
        return position // local * big

    def local_position(self, position: int) -> int | None:
        """This process's position for a global ``position`` (``None``: between batches)."""
        if self._process_slice is None:
            return position
        big, local = self._process_slice
        return None if position % big else position // big * local

    def _compiled(self, parts: int = 1) -> tuple[Any, tuple]:
        """The operators' state and the chunk functions, reused while nothing was reassigned.

        The state from ``nnx.split`` holds the operators' own ``Variable`` objects,
        so flattening it reads their current values: a parameter changed in place or
        with ``nnx.update`` is seen without splitting again. Reassigning any
        attribute of an operator (or of a module inside one) splits again.
        """
        ops = tuple(self.operators)
        objects = module_parts(ops)
        cached = self._runtime.compiled
        if cached is None or not same_parts(cached[0], objects):
            graphdef, state = nnx.split(ops)
            cached = (objects, state, graphdef, jax.tree_util.tree_structure(state), {})
            self._runtime.compiled = cached
        _, state, graphdef, treedef, runs_by_parts = cached
        layout = self._layout()
        parts = parts if layout is not None else 1  # only device-major chunks cut inside
        runs = runs_by_parts.get(parts)
        if runs is None:
            plan = self.plan()
            gather = self.host_plane.device_arrays is not None
            runs = tuple(
                build_run_fn(plan, graphdef, treedef, j, gather or j > 0, layout, parts)
                for j in range(plan.num_caches + 1)
            )
            runs_by_parts[parts] = runs
        return state, runs

    def batches_per_call_default(self) -> int:
        """Output batches per compiled call when iterating (see ``from_source``)."""
        g = self.geometry
        record_bytes = self.record_bytes()
        if self._layout() is not None:  # each device computes only its share of a chunk
            record_bytes = max(1, record_bytes // self.compute_sharder.data_size)
        chosen = choose_batches_per_call(
            record_bytes, g.batch_size, g.batches_per_epoch, self.batches_per_call
        )
        if self.batches_per_call is None and self.host_plane.per_record:
            # Records read one by one: enough of them per chunk to keep every worker
            # busy between two hand-offs.
            workers = max(1, self.source_node.workers)
            wanted = -(-RECORDS_PER_WORKER * workers // g.batch_size)
            chosen = max(chosen, min(wanted, MAX_BATCHES_PER_CALL, g.batches_per_epoch))
        return chosen

    def prepare_caches(self) -> list[tuple[Any, Any]]:
        """Make every cache node's store match the current parameters.

        Returns ``(store, spec)`` per cache. A store is emptied when anything before
        its cache changed: the source, order, seed, nodes or parameter values.
        """
        out = []
        for i, step in enumerate(self.steps):
            if not isinstance(step.node, CacheNode):
                continue
            before = self.steps[:i]
            spec = before[-1].spec if before else (dict(self.host_plane.element_spec()), {})
            ops = [op for s in before for op in s.node.collect_operators()]
            tag = (
                _digest(
                    {
                        "source": self.source_node.fingerprint(),
                        "nodes": [s.node.fingerprint() for s in before],
                    }
                ),
                _values_digest(ops),
                # Static attributes (functions, closures, plain Python values) live in
                # the graph definition; it compares by value within the process.
                nnx.graphdef(tuple(ops)),
            )
            node = step.node
            size = len(self.source)
            node.store.prepare(tag, spec, size, node.capacity(size))
            out.append((node.store, spec))
        return out

    # -- seeing the graph ----------------------------------------------------------
    def describe(self, *, file=None) -> str:
        """Print (and return) each node with its output shapes and dtypes."""
        from datarax.dag.render import describe

        text = describe(self)
        print(text, file=file)
        return text

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        from datarax.dag.render import to_mermaid

        return to_mermaid(self)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        from datarax.dag.render import to_dot

        return to_dot(self)

    def plot(self, path: str) -> None:
        """Write a PNG drawing of the graph to ``path`` (needs matplotlib: extra ``viz``)."""
        from datarax.dag.render import plot

        plot(self, path)

    @property
    def epoch_cursor(self) -> int:
        """The epoch a new ``for`` loop over this pipeline starts at."""
        return self._runtime.epoch_cursor

    def _advance_cursor(self, epoch: int) -> None:
        self._runtime.epoch_cursor = max(self._runtime.epoch_cursor, epoch + 1)


class _Runtime:
    """Mutable run-time bookkeeping of an otherwise immutable pipeline."""

    def __init__(self, host_plane: HostPlane) -> None:
        self.host_plane = host_plane
        self.epoch_cursor = 0
        self.plan: DevicePlan | None = None
        self.compiled: tuple[list, Any, Any, Any, dict] | None = None
        self.replicated: Any = None


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _values_digest(operators: list[Operator]) -> str:
    """A hash of the operators' parameter values."""
    h = hashlib.blake2b(digest_size=16)
    for leaf in jax.tree_util.tree_leaves(nnx.state(tuple(operators))):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        array = np.asarray(leaf)
        h.update(str((array.dtype, array.shape)).encode())
        h.update(array.tobytes())
    return h.hexdigest()


def infer_spec(node: Node, spec: Any, batch_size: int, seed: int) -> Any:
    """Trace ``node`` abstractly on one batch to learn its output (and validate it)."""
    batched = jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct((batch_size, *s.shape), s.dtype), spec
    )

    def run(flow, ids, epoch):
        ctx = TraceContext.for_rows(ids, epoch, seed, batch_size)
        return lower_node(node, flow, ctx)

    out = jax.eval_shape(
        run,
        batched,
        jax.ShapeDtypeStruct((batch_size,), jnp.int32),
        jax.ShapeDtypeStruct((), jnp.uint32),
    )
    return jax.tree_util.tree_map(lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), out)
