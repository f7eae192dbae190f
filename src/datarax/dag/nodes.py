"""DAG nodes: immutable values composed with ``>>`` (in sequence) and ``|`` (in parallel).

``a >> b`` and ``a | b`` return new nodes and never change ``a`` or ``b``, so two
pipelines built from one base are independent. A chain that starts with a
:class:`DataSourceNode` and has a :class:`BatchNode` is a
:class:`~datarax.dag.pipeline.Pipeline` and can be iterated.

Host plane (before the compiled function): :class:`DataSourceNode`,
:class:`BatchNode`, :class:`ShuffleNode`, :class:`HostOperator`, :class:`PrefetchNode`.
Device plane (inside it): :class:`OperatorNode`, :class:`Sequential`,
:class:`Parallel`, :class:`Merge`, :class:`Branch`, :class:`Switch`,
:class:`CacheNode`, :class:`RebatchNode`.

Example:
    >>> from datarax.operators import ElementOperator, ElementOperatorConfig
    >>> op = ElementOperator(ElementOperatorConfig(), fn=lambda e: e)
    >>> chain = OperatorNode(op) >> OperatorNode(op)
    >>> type(chain).__name__, len(chain.nodes)
    ('Sequential', 2)
    >>> type(OperatorNode(op) | OperatorNode(op)).__name__
    'Parallel'
"""

from datarax.dag.base import Node, OperatorNode, Sequential
from datarax.dag.branch import Branch, Switch
from datarax.dag.cache import CacheNode
from datarax.dag.combine import Merge, Parallel
from datarax.dag.host import BatchNode, DataSourceNode, HostOperator, PrefetchNode, ShuffleNode
from datarax.dag.rebatch import RebatchNode
from datarax.dag.sharder import SharderNode

__all__ = [
    "BatchNode",
    "Branch",
    "CacheNode",
    "DataSourceNode",
    "HostOperator",
    "Merge",
    "Node",
    "OperatorNode",
    "Parallel",
    "PrefetchNode",
    "RebatchNode",
    "Sequential",
    "SharderNode",
    "ShuffleNode",
    "Switch",
]
