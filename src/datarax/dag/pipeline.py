"""`Pipeline`: a source, host-plane nodes and a device plane, as one immutable value.

A pipeline is its nodes and options. Building it validates the chain (one source,
one batching, host nodes before device nodes, every device node traced on an
abstract batch) and fixes its identity (:meth:`Pipeline.fingerprint`). Nothing
about running it lives here: :func:`datarax.dag.program.compile` turns it into a
:class:`~datarax.dag.program.Program`, and ``iter(pipeline)`` returns a
:class:`~datarax.dag.executor.PipelineIterator` that runs the program. What the
iterators of one pipeline share while a process runs them (the worker pool, the
epoch a new loop starts at, cache stores) is kept in :mod:`datarax.dag.runtime`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import jax
import numpy as np

from datarax.control.bad_records import BadRecordPolicy
from datarax.control.host_plane import HostPlane
from datarax.control.workers import WorkerMode
from datarax.core.config import check_int
from datarax.core.digest import digest
from datarax.core.errors import PipelineBuildError
from datarax.dag import render
from datarax.dag.base import Fanout, Node, Sequential
from datarax.dag.cache import CacheNode
from datarax.dag.executor import PipelineIterator
from datarax.dag.host import (
    BatchNode,
    DataSourceNode,
    HostOperator,
    PrefetchNode,
    ShuffleNode,
    check_prefetch,
)
from datarax.dag.inference import RecordSpec, Step, infer_spec
from datarax.dag.rebatch import RebatchNode
from datarax.dag.runtime import PipelineRuntime, attach_runtime, runtime_of
from datarax.dag.sharder import SharderNode, as_sharder
from datarax.dag.slicing import ProcessView, process_view
from datarax.dag.transform import PipelineTransform
from datarax.operators.base import Operator
from datarax.samplers.base import Sampler
from datarax.samplers.range import RangeSampler
from datarax.samplers.sequential import SequentialSampler
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
            reading thread). Results never depend on the number of workers.
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
        return left.extended(right)
    nodes = Sequential([left, right]).nodes
    if isinstance(nodes[0], DataSourceNode) and (
        any(isinstance(n, BatchNode) for n in nodes) or any(n.device for n in nodes)
    ):
        return Pipeline(nodes)
    return Sequential(nodes)


class Pipeline(Sequential):
    """An iterable chain: a source, host-plane nodes, then device nodes.

    Iterating yields :class:`~datarax.core.batch.Batch` objects (a tuple of them,
    one per branch, when the chain ends in an unmerged ``Parallel``).
    ``iter(pipeline)`` returns a :class:`~datarax.dag.executor.PipelineIterator`
    with ``get_state()`` / ``set_state()``. A pipeline never changes: ``>>`` and
    :meth:`with_options` return new pipelines, and running one leaves its
    :meth:`fingerprint` and :meth:`describe` as they were.

    Args:
        nodes: The chain, starting at a :class:`~datarax.dag.nodes.DataSourceNode`.
        prefetch: Chunks the host plane computes ahead (a ``PrefetchNode`` overrides it).
        batches_per_call: Batches per compiled call (``None``: chosen from the batch size).
        sharding: Where batches live (a ``SharderNode`` in the chain overrides it).
        known_steps: The validated device steps of a pipeline this one extends
            (``>>`` passes them, so a long chain is traced once per node, not once
            per ``>>``).
    """

    __slots__ = (
        "prefetch",
        "batches_per_call",
        "sharder",
        "view",
        "element_spec",
        "steps",
        "output_spec",
        "_records_digest",
        "__weakref__",
    )
    prefetch: int
    batches_per_call: int | None
    sharder: Any
    view: ProcessView
    element_spec: dict[str, jax.ShapeDtypeStruct]
    steps: tuple[Step, ...]
    output_spec: RecordSpec
    _records_digest: str | None

    def __init__(
        self,
        nodes: Iterable[Node],
        *,
        prefetch: int = 2,
        batches_per_call: int | None = None,
        sharding: Any = None,
        known_steps: tuple[Step, ...] = (),
    ) -> None:
        super().__init__(nodes)
        prefetch = check_prefetch(prefetch, "Pipeline")
        batches_per_call = check_int(
            batches_per_call,
            where="Pipeline",
            minimum=1,
            allow_none=True,
            error=PipelineBuildError,
            message="invalid batches_per_call",
        )
        host, device = _split_planes(self.nodes)
        prefetches = [n for n in self.nodes if isinstance(n, PrefetchNode)]
        if prefetches:
            prefetch = prefetches[-1].buffer_size
        sharders = [n.sharder for n in self.nodes if isinstance(n, SharderNode)]
        sharder = sharders[-1] if sharders else None
        if sharder is None and sharding is not None:
            sharder = as_sharder(sharding, "from_source(sharding=...)")
        source_node = cast(DataSourceNode, self.nodes[0])
        sampler = source_node.sampler
        for node in host:
            if isinstance(node, ShuffleNode):
                sampler = node.apply(sampler)
        batch = next(n for n in host if isinstance(n, BatchNode))
        stages = [batch.batcher.stage] + [
            (n.target_batch_size, n.drop_remainder) for n in device if isinstance(n, RebatchNode)
        ]
        view = process_view(sampler, tuple(stages), sharder)
        host_plane = _host_plane(source_node, host)
        element_spec = dict(host_plane.element_spec())
        steps = list(known_steps)
        # Text fields (for host operators) never reach the device: refused at the start.
        numeric = {k: v for k, v in element_spec.items() if v.dtype != object}
        spec: Any = steps[-1].spec if steps else (numeric, {})
        size = steps[-1].batch_size if steps else batch.batch_size
        for node in device[len(steps) :]:
            spec, size = _infer(node, spec, size, steps, source_node.seed)
            steps.append(Step(node, spec, size))
        self._init(
            prefetch=prefetch,
            batches_per_call=batches_per_call,
            sharder=sharder,
            view=view,
            element_spec=element_spec,
            steps=tuple(steps),
            output_spec=spec,
            _records_digest=None,
        )
        if view.slice is not None:
            _check_split_over_processes(self)
        attach_runtime(self, host_plane)

    # -- structure -----------------------------------------------------------------
    @property
    def source_node(self) -> DataSourceNode:
        """The first node: where records come from and in which order."""
        return cast(DataSourceNode, self.nodes[0])

    @property
    def source(self) -> DataSource:
        """The data source."""
        return self.source_node.source

    @property
    def sampler(self) -> Sampler:
        """The record order this process reads (after shuffle windows and process slicing)."""
        return self.view.sampler

    @property
    def batch_node(self) -> BatchNode:
        """The node grouping records into the first batches."""
        return next(n for n in self.nodes if isinstance(n, BatchNode))

    @property
    def batch_size(self) -> int:
        """Records per output batch (after any ``RebatchNode``)."""
        return self.view.geometry.batch_size

    @property
    def device_nodes(self) -> tuple[Node, ...]:
        """The top-level nodes of the device plane, in order."""
        return tuple(step.node for step in self.steps)

    @property
    def cache_nodes(self) -> tuple[CacheNode, ...]:
        """The cache nodes, in order."""
        return tuple(n for n in self.device_nodes if isinstance(n, CacheNode))

    @property
    def operators(self) -> list[Operator]:
        """Every operator of the device plane, depth first."""
        return [op for node in self.device_nodes for op in node.collect_operators()]

    @property
    def split_over_processes(self) -> bool:
        """Whether each process computes only its rows of every batch."""
        return self.view.slice is not None

    def record_bytes(self) -> int:
        """Bytes of one output record (all data and state fields, all branches)."""
        return sum(
            int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize
            for s in jax.tree_util.tree_leaves(self.output_spec)
        )

    # -- building ------------------------------------------------------------------
    def __rshift__(self, other: Node) -> Pipeline:
        if not isinstance(other, Node):
            return cast(Pipeline, super().__rshift__(other))  # raises the build error
        return self.extended(other)

    def extended(self, node: Node) -> Pipeline:
        """This pipeline followed by ``node`` (``self >> node``)."""
        return Pipeline(
            (*self.nodes, node),
            prefetch=self.prefetch,
            batches_per_call=self.batches_per_call,
            sharding=self.sharder,
            known_steps=self.steps,
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
            known_steps=self.steps,
        )

    # -- identity ------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        stream_nodes = [n for n in self.nodes if not isinstance(n, (PrefetchNode, SharderNode))]
        return {"type": "Pipeline", "nodes": [n.fingerprint() for n in stream_nodes]}

    def fingerprint_digest(self) -> str:
        """A short hash of everything that determines the stream."""
        return digest(self.fingerprint())

    def records_digest(self) -> str:
        """A short hash of what determines the records: their order and their values.

        Batching (``BatchNode``, ``RebatchNode``), prefetching and the number of
        epochs are left out: they may change between saving an iterator's state and
        restoring it (see :meth:`PipelineIterator.set_state`).
        """
        if self._records_digest is None:  # a pipeline never changes: computed once
            nodes = []
            for node in self.nodes:
                if isinstance(node, (PrefetchNode, SharderNode, BatchNode, RebatchNode)):
                    continue
                fingerprint = node.fingerprint()
                if isinstance(node, DataSourceNode):
                    fingerprint.pop("num_epochs")
                nodes.append(fingerprint)
            self._init(_records_digest=digest({"type": "records", "nodes": nodes}))
        return cast(str, self._records_digest)

    # -- running -------------------------------------------------------------------
    def __iter__(self) -> PipelineIterator:
        return PipelineIterator(self)

    @property
    def runtime(self) -> PipelineRuntime:
        """What this pipeline's iterators share in this process (see :mod:`datarax.dag.runtime`)."""
        return runtime_of(self)

    @property
    def host_plane(self) -> HostPlane:
        """Reads chunks: vectorised gathers, or records on the worker pool."""
        return runtime_of(self).host_plane

    def transform(self) -> PipelineTransform:
        """The device plane as a differentiable module (see :mod:`datarax.dag.transform`).

        It holds this pipeline's operators (the same objects), so what an optimizer
        learns through it is what the next iterator runs and what checkpoints save.
        """
        return PipelineTransform(self)

    @property
    def epoch_cursor(self) -> int:
        """The epoch a new ``for`` loop over this pipeline starts at."""
        return runtime_of(self).epoch_cursor

    # -- seeing the graph ----------------------------------------------------------
    def describe(self, *, file: Any = None) -> str:
        """Print (and return) each node with its output shapes and dtypes."""
        text = render.describe(self)
        print(text, file=file)
        return text

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        return render.to_mermaid(self)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        return render.to_dot(self)

    def plot(self, path: str) -> None:
        """Write a PNG drawing of the graph to ``path`` (needs matplotlib: extra ``viz``)."""
        render.plot(self, path)


def _split_planes(nodes: tuple[Node, ...]) -> tuple[list[Node], list[Node]]:
    """Host-plane nodes before the first device node, and the device nodes."""
    if not isinstance(nodes[0], DataSourceNode):
        raise PipelineBuildError(
            "a pipeline starts at a source",
            where="Pipeline",
            expected="DataSourceNode(...) first",
            found=nodes[0].name,
        )
    host: list[Node] = []
    device: list[Node] = []
    for node in nodes[1:]:
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


def _infer(
    node: Node, spec: Any, size: int, steps: list[Step], seed: int
) -> tuple[RecordSpec, int]:
    """The record spec and batch size after ``node`` (validating it)."""
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
    return infer_spec(node, spec, size, seed), size


def _host_plane(node: DataSourceNode, host: list[Node]) -> HostPlane:
    """The host plane reading ``node``'s source through the host operators."""
    if not node.source.random_access and not isinstance(
        node.sampler, (SequentialSampler, RangeSampler)
    ):
        raise PipelineBuildError(
            "a streaming source is read in order",
            where=node.source.name,
            expected="shuffle=False, then ShuffleNode(buffer_size) to shuffle in windows",
            found=f"a {type(node.sampler).__name__}",
        )
    return HostPlane(
        node.source,
        [n.function for n in host if isinstance(n, HostOperator)],
        seed=node.seed,
        workers=node.workers,
        mode=node.worker_mode,
        policy=node.bad_records,
    )


def _check_split_over_processes(pipeline: Pipeline) -> None:
    """Refuse what would make the processes' global batches differ."""
    if pipeline.source_node.bad_records.skips:
        raise PipelineBuildError(
            "skipped records would leave global batches inconsistent across processes",
            where=pipeline.source.name,
            expected="bad_records='raise' in a pipeline split over processes",
            found=repr(pipeline.source_node.bad_records),
        )
    for node in (n for step in pipeline.steps for n in step.node.walk()):
        if node.per_batch:
            raise PipelineBuildError(
                "a per-batch decision needs the whole batch in one process",
                where=node.name,
                expected="per-record decisions in a pipeline split over processes",
                found="per_batch=True",
            )
