"""`Pipeline`: a source, a batcher and device operators, ready to iterate."""

from __future__ import annotations

import hashlib
import json
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax.core.errors import PipelineBuildError
from datarax.dag.compiler import (
    ChunkProgram,
    build_run_fn,
    choose_batches_per_call,
    split_fn,
)
from datarax.dag.executor import PipelineIterator
from datarax.dag.nodes import BatchNode, DataSourceNode, Node, OperatorNode, Sequential
from datarax.operators.base import Operator
from datarax.sources.base import DataSource


def from_source(
    source: DataSource,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
    num_epochs: int | None = 1,
    sampler=None,
    prefetch: int = 2,
    batches_per_call: int | None = None,
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
        prefetch: Chunks the host plane computes ahead on a background thread
            (0 = compute in the caller's thread).
        batches_per_call: Batches computed per compiled call (default: chosen from
            the batch's size so that small batches share one dispatch).

    Example:
        >>> import numpy as np
        >>> from datarax.sources import MemorySource, MemorySourceConfig
        >>> src = MemorySource(MemorySourceConfig(), data={"x": np.arange(10.0)})
        >>> [b["x"].tolist() for b in from_source(src, batch_size=4)]
        [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0]]
    """
    nodes = [
        DataSourceNode(source, sampler=sampler, shuffle=shuffle, seed=seed, num_epochs=num_epochs),
        BatchNode(batch_size, drop_remainder=drop_remainder),
    ]
    return Pipeline(nodes, prefetch=prefetch, batches_per_call=batches_per_call)


def chain(left: Node, right: Node) -> Node:
    """``left >> right`` as a new node: a :class:`Pipeline` when it starts at a source."""
    if isinstance(left, Pipeline):
        return left._extended(right)
    nodes = Sequential([left, right]).nodes
    if isinstance(nodes[0], DataSourceNode):
        return Pipeline(nodes)
    return Sequential(nodes)


class Pipeline(Sequential):
    """An iterable chain ``DataSourceNode >> BatchNode >> device nodes``.

    Iterating yields :class:`~datarax.core.batch.Batch` objects. ``iter(pipeline)``
    returns a :class:`~datarax.dag.executor.PipelineIterator` with
    ``get_state()`` / ``set_state()``.
    """

    __slots__ = ("prefetch", "batches_per_call", "output_spec", "_runtime")
    prefetch: int
    batches_per_call: int | None
    output_spec: tuple
    _runtime: _Runtime

    def __init__(
        self,
        nodes,
        *,
        prefetch: int = 2,
        batches_per_call: int | None = None,
        _input_spec: tuple[dict, dict] | None = None,
        _known: int = 0,
    ) -> None:
        super().__init__(nodes)
        if not isinstance(prefetch, int) or prefetch < 0:
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
        self._check_structure()
        spec = _input_spec or (self._source_spec(), {})
        for node in self.nodes[max(2, _known) :]:
            spec = _infer_spec(
                cast(OperatorNode, node), spec, self.batch_size, self.source_node.seed
            )
        self._init(
            prefetch=prefetch,
            batches_per_call=batches_per_call,
            output_spec=spec,
            _runtime=_Runtime(),
        )

    # -- structure -----------------------------------------------------------------
    @property
    def source_node(self) -> DataSourceNode:
        """The first node: where records come from and in which order."""
        return cast(DataSourceNode, self.nodes[0])

    @property
    def batch_node(self) -> BatchNode:
        """The second node: how records are grouped."""
        return cast(BatchNode, self.nodes[1])

    @property
    def batch_size(self) -> int:
        """Records per batch."""
        return self.batch_node.batch_size

    @property
    def operators(self) -> list[Operator]:
        """The operators of the device plane, in order."""
        return [cast(OperatorNode, n).operator for n in self.nodes[2:]]

    def __rshift__(self, other: Node) -> Pipeline:
        if not isinstance(other, Node):
            return cast(Pipeline, super().__rshift__(other))  # raises the build error
        return self._extended(other)

    def _check_structure(self) -> None:
        if len(self.nodes) < 2 or not isinstance(self.nodes[1], BatchNode):
            found = self.nodes[1].name if len(self.nodes) > 1 else "nothing"
            raise PipelineBuildError(
                "a source must be followed by a BatchNode",
                where="Pipeline",
                expected="DataSourceNode >> BatchNode(...)",
                found=f"DataSourceNode >> {found}",
            )
        for i, node in enumerate(self.nodes[2:], start=2):
            if not isinstance(node, OperatorNode):
                raise PipelineBuildError(
                    "node cannot be compiled into the device plane",
                    where=f"node {i} ({node.name})",
                    expected="an OperatorNode",
                    found=type(node).__name__,
                )
        batcher = self.batch_node.batcher
        if batcher.epoch_end(len(self.source_node.sampler)) == 0:
            raise PipelineBuildError(
                "drop_remainder leaves no batch in an epoch",
                where="BatchNode",
                expected=f"batch_size <= {len(self.source_node.sampler)} records per epoch",
                found=f"batch_size={batcher.batch_size}",
            )

    def _source_spec(self) -> dict:
        return dict(self.source_node.source.element_spec())

    def _extended(self, node: Node) -> Pipeline:
        return Pipeline(
            (*self.nodes, node),
            prefetch=self.prefetch,
            batches_per_call=self.batches_per_call,
            _input_spec=self.output_spec,
            _known=len(self.nodes),
        )

    def with_options(
        self, *, prefetch: int | None = None, batches_per_call: int | None = None
    ) -> Pipeline:
        """A copy of this pipeline with other executor options."""
        return Pipeline(
            self.nodes,
            prefetch=self.prefetch if prefetch is None else prefetch,
            batches_per_call=batches_per_call or self.batches_per_call,
            _input_spec=self.output_spec,
            _known=len(self.nodes),
        )

    # -- identity ------------------------------------------------------------------
    def fingerprint_digest(self) -> str:
        """A short hash of everything that determines the stream."""
        text = json.dumps(self.fingerprint(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- execution -----------------------------------------------------------------
    def __iter__(self) -> PipelineIterator:
        return PipelineIterator(self)

    def record_bytes(self) -> int:
        """Bytes of one output record (all data and state fields)."""
        return sum(
            int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize
            for s in jax.tree_util.tree_leaves(self.output_spec)
        )

    def program(self, batches_per_call: int | None = None) -> ChunkProgram:
        """The compiled chunk program for the operators' current state.

        Operator parameters are read here, when an iterator starts: a change made
        with ``nnx.update`` applies to iterators created afterwards.

        Args:
            batches_per_call: Batches per compiled call (default: the pipeline's choice).
        """
        graphdef, state = nnx.split(tuple(self.operators))
        leaves, treedef = jax.tree_util.tree_flatten(state)
        gather = self.source_node.source.device_arrays is not None
        run = build_run_fn(graphdef, treedef, self.source_node.seed, gather)
        k = batches_per_call or self.batches_per_call_default()
        return ChunkProgram(
            run=run,
            split=split_fn(k) if k > 1 else None,
            state_leaves=tuple(leaves),
            batches_per_call=k,
            gather=gather,
        )

    def batches_per_call_default(self) -> int:
        """Batches per compiled call when iterating (see ``from_source``)."""
        sampler = self.source_node.sampler
        per_epoch = -(-self.batch_node.batcher.epoch_end(len(sampler)) // self.batch_size)
        return choose_batches_per_call(
            self.record_bytes(), self.batch_size, per_epoch, self.batches_per_call
        )

    @property
    def epoch_cursor(self) -> int:
        """The epoch a new ``for`` loop over this pipeline starts at."""
        return self._runtime.epoch_cursor

    def _advance_cursor(self, epoch: int) -> None:
        self._runtime.epoch_cursor = max(self._runtime.epoch_cursor, epoch + 1)


class _Runtime:
    """Mutable run-time bookkeeping of an otherwise immutable pipeline."""

    def __init__(self) -> None:
        self.epoch_cursor = 0


def _infer_spec(node: OperatorNode, spec: tuple, batch_size: int, seed: int) -> tuple:
    """Trace one operator abstractly to learn its output fields (and validate it)."""
    op = node.operator
    batched = jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct((batch_size, *s.shape), s.dtype), spec
    )

    def run(data, states, ids, epoch):
        return op.apply_batch(data, states, ids, epoch, seed)

    out = jax.eval_shape(
        run,
        *batched,
        jax.ShapeDtypeStruct((batch_size,), jnp.int32),
        jax.ShapeDtypeStruct((), jnp.uint32),
    )
    return jax.tree_util.tree_map(lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), out)
