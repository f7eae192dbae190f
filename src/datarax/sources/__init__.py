"""Data sources: where records come from."""

from datarax.sources.array_record import (
    ArrayRecordSource,
    ArrayRecordSourceConfig,
    write_array_record,
)
from datarax.sources.base import DataSource
from datarax.sources.hf import (
    HFSource,
    HFSourceConfig,
    HFStreamingSource,
    HFStreamingSourceConfig,
)
from datarax.sources.memory import MemorySource, MemorySourceConfig
from datarax.sources.mixed import MixedRecordSource, MixedSource, MixedSourceConfig
from datarax.sources.record import RecordSource, SequenceSource, StreamingSource
from datarax.sources.synthetic import synthetic_images
from datarax.sources.tfds import (
    TFDSSource,
    TFDSSourceConfig,
    TFDSStreamingSource,
    TFDSStreamingSourceConfig,
)

__all__ = [
    "ArrayRecordSource",
    "ArrayRecordSourceConfig",
    "write_array_record",
    "DataSource",
    "HFSource",
    "HFSourceConfig",
    "HFStreamingSource",
    "HFStreamingSourceConfig",
    "MemorySource",
    "MemorySourceConfig",
    "MixedRecordSource",
    "MixedSource",
    "MixedSourceConfig",
    "RecordSource",
    "SequenceSource",
    "StreamingSource",
    "synthetic_images",
    "TFDSSource",
    "TFDSSourceConfig",
    "TFDSStreamingSource",
    "TFDSStreamingSourceConfig",
]
