"""Operators: transformations the compiled pipeline runs on the device.

``image``, ``audio`` and ``text`` hold the operator library; the classes here are
the building blocks for operators of one's own.
"""

from datarax.operators import audio, image, mixing, policies, relaxed, text
from datarax.operators.adapters import FunctionOperator, FunctionOperatorConfig, from_function
from datarax.operators.base import Operator, OperatorKey
from datarax.operators.composite import CompositeOperator, CompositeOperatorConfig
from datarax.operators.element import ElementOperator, ElementOperatorConfig
from datarax.operators.map import MapOperator, MapOperatorConfig

__all__ = [
    "CompositeOperator",
    "CompositeOperatorConfig",
    "ElementOperator",
    "ElementOperatorConfig",
    "FunctionOperator",
    "FunctionOperatorConfig",
    "MapOperator",
    "MapOperatorConfig",
    "Operator",
    "OperatorKey",
    "audio",
    "from_function",
    "image",
    "mixing",
    "policies",
    "relaxed",
    "text",
]
