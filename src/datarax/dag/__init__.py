"""The pipeline graph: nodes, compilation to one XLA function, and execution."""

from datarax.dag.executor import PipelineIterator
from datarax.dag.nodes import BatchNode, DataSourceNode, Node, OperatorNode, Sequential
from datarax.dag.pipeline import Pipeline, from_source

__all__ = [
    "BatchNode",
    "DataSourceNode",
    "Node",
    "OperatorNode",
    "Pipeline",
    "PipelineIterator",
    "Sequential",
    "from_source",
]
