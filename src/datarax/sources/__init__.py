"""Data sources: where records come from."""

from datarax.sources.base import DataSource
from datarax.sources.memory import MemorySource, MemorySourceConfig
from datarax.sources.synthetic import synthetic_images

__all__ = ["DataSource", "MemorySource", "MemorySourceConfig", "synthetic_images"]
