"""The pipeline graph: nodes, their lowering, ``compile(pipeline) -> Program``, and the iterator.

- :mod:`~datarax.dag.nodes`: the node values (``>>`` and ``|`` build graphs);
- :mod:`~datarax.dag.pipeline`: a whole chain, validated (the spec);
- :mod:`~datarax.dag.program`: :func:`compile` and the program cache;
- :mod:`~datarax.dag.executor`: :class:`PipelineIterator`, which runs a program;
- :mod:`~datarax.dag.runtime`: the run-time state a pipeline's iterators share;
- :mod:`~datarax.dag.windows`: stages that regroup a pipeline's batches on the host
  (:class:`PackedPipeline`, :class:`BucketedPipeline`).
"""

from datarax.dag.bucketing import BucketedPipeline
from datarax.dag.executor import PipelineIterator
from datarax.dag.nodes import (
    BatchNode,
    Branch,
    CacheNode,
    DataSourceNode,
    HostOperator,
    Merge,
    Node,
    OperatorNode,
    Parallel,
    PrefetchNode,
    RebatchNode,
    Sequential,
    SharderNode,
    ShuffleNode,
    Switch,
)
from datarax.dag.packing import PackedPipeline
from datarax.dag.pipeline import Pipeline, from_source
from datarax.dag.program import Program, compile

__all__ = [
    "BatchNode",
    "Branch",
    "BucketedPipeline",
    "CacheNode",
    "DataSourceNode",
    "HostOperator",
    "Merge",
    "Node",
    "OperatorNode",
    "PackedPipeline",
    "Parallel",
    "Pipeline",
    "PipelineIterator",
    "Program",
    "PrefetchNode",
    "RebatchNode",
    "Sequential",
    "SharderNode",
    "ShuffleNode",
    "Switch",
    "compile",
    "from_source",
]
