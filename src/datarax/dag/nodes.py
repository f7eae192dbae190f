"""DAG nodes: immutable values composed with ``>>``.

``a >> b`` returns a new node and never changes ``a`` or ``b``, so two pipelines
built from one base are independent. A chain that starts with a
:class:`DataSourceNode` is a :class:`~datarax.dag.pipeline.Pipeline` and can be
iterated.

Example:
    >>> from datarax.operators import ElementOperator, ElementOperatorConfig
    >>> op = ElementOperator(ElementOperatorConfig(), fn=lambda e: e)
    >>> chain = OperatorNode(op) >> OperatorNode(op)
    >>> type(chain).__name__, len(chain.nodes)
    ('Sequential', 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from datarax.batching.default import DefaultBatcher, DefaultBatcherConfig
from datarax.core.errors import PipelineBuildError
from datarax.operators.base import Operator
from datarax.samplers.base import Sampler
from datarax.samplers.sequential import SequentialSampler, SequentialSamplerConfig
from datarax.samplers.shuffle import ShuffleSampler, ShuffleSamplerConfig
from datarax.sources.base import DataSource


class Node:
    """Base of all DAG nodes."""

    __slots__ = ()

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

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; build a new node instead")

    def _init(self, **fields: Any) -> None:
        for k, v in fields.items():
            object.__setattr__(self, k, v)

    def fingerprint(self) -> dict[str, Any]:
        """What determines this node's output (compared when restoring state)."""
        return {"type": self.name}

    def __repr__(self) -> str:
        return self.name


class DataSourceNode(Node):
    """Reads records from a source in the order a sampler gives, epoch after epoch.

    Args:
        source: The data source.
        sampler: Record order (default: sequential, or shuffled when ``shuffle``).
        shuffle: Use a fresh permutation each epoch (ignored when ``sampler`` is given).
        seed: Pipeline seed: shuffle order and operator keys derive from it.
        num_epochs: Epochs per iteration (``None`` = forever).
    """

    __slots__ = ("source", "sampler", "seed", "num_epochs")
    source: DataSource
    sampler: Sampler
    seed: int
    num_epochs: int | None

    def __init__(
        self,
        source: DataSource,
        *,
        sampler: Sampler | None = None,
        shuffle: bool = False,
        seed: int = 0,
        num_epochs: int | None = 1,
    ) -> None:
        if not isinstance(source, DataSource):
            raise PipelineBuildError(
                "not a data source",
                where="DataSourceNode",
                expected="a datarax DataSource (e.g. MemorySource)",
                found=type(source).__name__,
            )
        if num_epochs is not None and (not isinstance(num_epochs, int) or num_epochs <= 0):
            raise PipelineBuildError(
                "invalid number of epochs",
                where="DataSourceNode",
                expected="a positive int or None",
                found=repr(num_epochs),
            )
        if sampler is None:
            sampler = (
                ShuffleSampler(ShuffleSamplerConfig(num_records=len(source), seed=seed))
                if shuffle
                else SequentialSampler(SequentialSamplerConfig(num_records=len(source)))
            )
        self._init(source=source, sampler=sampler, seed=int(seed), num_epochs=num_epochs)

    def __repr__(self) -> str:
        order = type(self.sampler).__name__.removesuffix("Sampler")
        return f"{self.source.name}[{len(self.source)}, {order.lower()}, seed={self.seed}]"

    def fingerprint(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "source": self.source.fingerprint(),
            "sampler": self.sampler.fingerprint(),
            "seed": self.seed,
            "num_epochs": self.num_epochs,
        }


class BatchNode(Node):
    """Groups records into batches.

    Args:
        batch_size: Records per batch (or give ``batcher``).
        drop_remainder: Drop each epoch's short last batch.
        batcher: A configured batcher instead of the two arguments above.
    """

    __slots__ = ("batcher",)
    batcher: DefaultBatcher

    def __init__(
        self,
        batch_size: int | None = None,
        *,
        drop_remainder: bool = False,
        batcher: DefaultBatcher | None = None,
    ) -> None:
        if batcher is None:
            if batch_size is None:
                raise PipelineBuildError(
                    "no batch size",
                    where="BatchNode",
                    expected="batch_size=int or batcher=DefaultBatcher",
                    found="neither",
                )
            batcher = DefaultBatcher(
                DefaultBatcherConfig(batch_size=batch_size, drop_remainder=drop_remainder)
            )
        self._init(batcher=batcher)

    @property
    def batch_size(self) -> int:
        """Records per batch."""
        return self.batcher.batch_size

    def __repr__(self) -> str:
        drop = ", drop_remainder" if self.batcher.config.drop_remainder else ""
        return f"Batch({self.batch_size}{drop})"

    def fingerprint(self) -> dict[str, Any]:
        return {"type": self.name, **self.batcher.config.to_dict()}


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

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "OperatorNode", "operator": self.operator.fingerprint()}


class Sequential(Node):
    """Nodes run one after another (nested ``Sequential`` nodes are flattened)."""

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

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "Sequential", "nodes": [n.fingerprint() for n in self.nodes]}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({' >> '.join(repr(n) for n in self.nodes)})"
