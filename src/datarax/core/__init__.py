"""Core types: elements, batches, configs, modules, errors and key derivation."""

from datarax.core.batch import Batch
from datarax.core.config import Config
from datarax.core.element import Element
from datarax.core.errors import (
    ConfigError,
    DataraxError,
    FileError,
    OperatorError,
    PipelineBuildError,
    SchemaError,
    SourceError,
    StateError,
)
from datarax.core.identity import function_identity
from datarax.core.module import DataraxModule
from datarax.core.rng import mix64, record_keys, stream_id, stream_key

__all__ = [
    "Batch",
    "Config",
    "ConfigError",
    "DataraxError",
    "FileError",
    "DataraxModule",
    "Element",
    "OperatorError",
    "PipelineBuildError",
    "SchemaError",
    "SourceError",
    "StateError",
    "function_identity",
    "mix64",
    "record_keys",
    "stream_id",
    "stream_key",
]
