"""The pipeline graph: nodes, compilation to XLA functions, and execution."""

from datarax.dag.executor import PipelineIterator
from datarax.dag.nodes import (
    BatchNode,
    Branch,
    CacheNode,
    DataSourceNode,
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
from datarax.dag.pipeline import Pipeline, from_source

__all__ = [
    "BatchNode",
    "Branch",
    "CacheNode",
    "DataSourceNode",
    "Merge",
    "Node",
    "OperatorNode",
    "Parallel",
    "Pipeline",
    "PipelineIterator",
    "PrefetchNode",
    "RebatchNode",
    "Sequential",
    "SharderNode",
    "ShuffleNode",
    "Switch",
    "from_source",
]
