"""datarax: deterministic, resumable data pipelines for JAX, compiled by XLA.

Example:
    >>> import numpy as np
    >>> from datarax import from_source
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> source = MemorySource(MemorySourceConfig(), data={"x": np.arange(8.0)})
    >>> [b["x"].shape for b in from_source(source, batch_size=3)]
    [(3,), (3,), (2,)]
"""

from datarax.core.batch import Batch
from datarax.core.compilation_cache import enable_compilation_cache
from datarax.core.element import Element
from datarax.core.errors import DataraxError
from datarax.dag.pipeline import Pipeline, from_source

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "DataraxError",
    "Element",
    "Pipeline",
    "__version__",
    "enable_compilation_cache",
    "from_source",
]
