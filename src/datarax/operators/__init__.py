"""Operators: transformations the compiled pipeline runs on the device."""

from datarax.operators import image
from datarax.operators.base import Operator, OperatorKey
from datarax.operators.composite import CompositeOperator, CompositeOperatorConfig
from datarax.operators.element import ElementOperator, ElementOperatorConfig
from datarax.operators.map import MapOperator, MapOperatorConfig

__all__ = [
    "CompositeOperator",
    "CompositeOperatorConfig",
    "ElementOperator",
    "ElementOperatorConfig",
    "MapOperator",
    "MapOperatorConfig",
    "Operator",
    "OperatorKey",
    "image",
]
