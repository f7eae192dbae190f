"""Public types a pipeline's functions receive and return."""

from datarax.core.batch import Batch
from datarax.core.element import Element

__all__ = ["Batch", "Element"]
