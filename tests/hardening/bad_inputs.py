# ruff: noqa: E501  (a table: one bad input per line)
"""The table of hand-picked bad inputs, grouped by API.

Each :class:`BadInput` is one thing a user can get wrong, as a call that must raise
a :class:`~datarax.DataraxError` of a given class whose ``where`` starts with the
given text and which says what it expected and what it found. ``STATES`` are bad
iterator states: each is a change to a valid state that ``set_state`` must refuse.

``docs/errors.md`` is generated from this table (``python tests/hardening/errors_doc.py``),
so every entry appears there with the message it gets.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax import from_source
from datarax.batching import DefaultBatcher, DefaultBatcherConfig
from datarax.benchmarking.compare import compare
from datarax.benchmarking.results import SCHEMA, load_results
from datarax.control import BadRecordPolicy, Prefetcher
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
from datarax.dag.nodes import (
    BatchNode,
    Branch,
    CacheNode,
    DataSourceNode,
    HostOperator,
    Merge,
    OperatorNode,
    Parallel,
    PrefetchNode,
    RebatchNode,
    ShuffleNode,
)
from datarax.operators import (
    CompositeOperator,
    CompositeOperatorConfig,
    ElementOperator,
    ElementOperatorConfig,
    MapOperator,
    MapOperatorConfig,
)
from datarax.operators.image import (
    Normalize,
    NormalizeConfig,
    RandomCrop,
    RandomCropConfig,
    RandomFlip,
    RandomFlipConfig,
)
from datarax.samplers import (
    RangeSamplerConfig,
    SequentialSamplerConfig,
    ShuffleSamplerConfig,
)
from datarax.sources import (
    ArrayRecordSource,
    ArrayRecordSourceConfig,
    MemorySource,
    MemorySourceConfig,
    MixedSource,
    MixedSourceConfig,
    SequenceSource,
    write_array_record,
)


@dataclass(frozen=True)
class BadInput:
    """One bad input: ``call()`` must raise ``error`` with ``where`` starting with ``where``."""

    api: str
    label: str
    call: Callable[[], Any]
    error: type[DataraxError]
    where: str


# -- small things the calls are built from -------------------------------------------------

TMP = Path(tempfile.mkdtemp(prefix="datarax-bad-inputs-"))


def memory(n: int = 10, **config: Any) -> MemorySource:
    return MemorySource(MemorySourceConfig(**config), data={"x": np.arange(n, dtype=np.float32)})


def images(n: int = 8, shape: tuple[int, ...] = (8, 8, 3), dtype: Any = np.uint8) -> MemorySource:
    return MemorySource(MemorySourceConfig(), data={"image": np.zeros((n, *shape), dtype)})


def first(pipeline: Any) -> Any:
    return next(iter(pipeline))


def element(fn: Callable[..., Any], **config: Any) -> OperatorNode:
    return OperatorNode(ElementOperator(ElementOperatorConfig(**config), fn=fn))


def identity(e: Any, *_: Any) -> Any:
    return e


def records_file(name: str, records: list[dict[str, Any]]) -> str:
    path = TMP / name
    if not path.exists():
        write_array_record(str(path), records)
    return str(path)


def text_file(name: str, content: bytes) -> str:
    path = TMP / name
    path.write_bytes(content)
    return str(path)


def iterator(n: int = 10, batch: int = 4) -> Any:
    return iter(from_source(memory(n), batch))


def results_file(name: str, median: float, status: str = "ok") -> str:
    """A datarax-bench results file with one row of the given median."""
    rate = {"median": median, "min": median, "max": median}
    row = {"scenario": "W1", "framework": "datarax", "status": status, "elements_per_s": rate}
    return text_file(name, json.dumps({"schema": SCHEMA, "results": [row]}).encode())


# -- the table -------------------------------------------------------------------------------

B = PipelineBuildError
C = ConfigError

CASES: list[BadInput] = [
    # from_source and DataSourceNode
    BadInput(
        "from_source",
        "batch_size 0",
        lambda: from_source(memory(), 0),
        C,
        "DefaultBatcherConfig.batch_size",
    ),
    BadInput(
        "from_source",
        "batch_size -3",
        lambda: from_source(memory(), -3),
        C,
        "DefaultBatcherConfig.batch_size",
    ),
    BadInput(
        "from_source",
        "batch_size 2.5",
        lambda: from_source(memory(), 2.5),
        C,
        "DefaultBatcherConfig.batch_size",
    ),
    BadInput(
        "from_source",
        "batch_size '4'",
        lambda: from_source(memory(), "4"),
        C,
        "DefaultBatcherConfig.batch_size",
    ),
    BadInput("from_source", "batch_size None", lambda: from_source(memory(), None), B, "BatchNode"),
    BadInput(
        "from_source",
        "batch_size True",
        lambda: from_source(memory(), True),
        C,
        "DefaultBatcherConfig.batch_size",
    ),
    BadInput(
        "from_source",
        "seed 2**64",
        lambda: from_source(memory(), 4, seed=2**64),
        B,
        "DataSourceNode(seed=...)",
    ),
    BadInput(
        "from_source",
        "seed -1",
        lambda: from_source(memory(), 4, seed=-1),
        B,
        "DataSourceNode(seed=...)",
    ),
    BadInput(
        "from_source",
        "seed 1.5",
        lambda: from_source(memory(), 4, seed=1.5),
        B,
        "DataSourceNode(seed=...)",
    ),
    BadInput(
        "from_source",
        "seed '3' without shuffle",
        lambda: from_source(memory(), 4, seed="3"),
        B,
        "DataSourceNode(seed=...)",
    ),
    BadInput(
        "from_source",
        "seed None",
        lambda: from_source(memory(), 4, shuffle=True, seed=None),
        B,
        "DataSourceNode(seed=...)",
    ),
    BadInput(
        "from_source",
        "seed True",
        lambda: from_source(memory(), 4, seed=True),
        B,
        "DataSourceNode(seed=...)",
    ),
    BadInput(
        "from_source",
        "shuffle 'False'",
        lambda: from_source(memory(), 4, shuffle="False"),
        B,
        "DataSourceNode(shuffle=...)",
    ),
    BadInput(
        "from_source",
        "shuffle 1",
        lambda: from_source(memory(), 4, shuffle=1),
        B,
        "DataSourceNode(shuffle=...)",
    ),
    BadInput(
        "from_source",
        "shuffle None",
        lambda: from_source(memory(), 4, shuffle=None),
        B,
        "DataSourceNode(shuffle=...)",
    ),
    BadInput(
        "from_source",
        "drop_remainder 'yes'",
        lambda: from_source(memory(), 4, drop_remainder="yes"),
        C,
        "DefaultBatcherConfig.drop_remainder",
    ),
    BadInput(
        "from_source",
        "num_epochs 0",
        lambda: from_source(memory(), 4, num_epochs=0),
        B,
        "DataSourceNode",
    ),
    BadInput(
        "from_source",
        "num_epochs -1",
        lambda: from_source(memory(), 4, num_epochs=-1),
        B,
        "DataSourceNode",
    ),
    BadInput(
        "from_source",
        "num_epochs 1.0",
        lambda: from_source(memory(), 4, num_epochs=1.0),
        B,
        "DataSourceNode",
    ),
    BadInput(
        "from_source", "prefetch -1", lambda: from_source(memory(), 4, prefetch=-1), B, "Pipeline"
    ),
    BadInput(
        "from_source",
        "prefetch 'auto'",
        lambda: from_source(memory(), 4, prefetch="auto"),
        B,
        "Pipeline",
    ),
    BadInput(
        "from_source",
        "batches_per_call 0",
        lambda: from_source(memory(), 4, batches_per_call=0),
        B,
        "Pipeline",
    ),
    BadInput(
        "from_source",
        "batches_per_call 1.5",
        lambda: from_source(memory(), 4, batches_per_call=1.5),
        B,
        "Pipeline",
    ),
    BadInput(
        "from_source",
        "workers -1",
        lambda: from_source(memory(), 4, workers=-1),
        B,
        "DataSourceNode",
    ),
    BadInput(
        "from_source",
        "workers '2'",
        lambda: from_source(memory(), 4, workers="2"),
        B,
        "DataSourceNode",
    ),
    BadInput(
        "from_source",
        "worker_mode 'fork'",
        lambda: from_source(memory(), 4, workers=1, worker_mode="fork"),
        B,
        "DataSourceNode",
    ),
    BadInput(
        "from_source",
        "bad_records 'ignore'",
        lambda: from_source(memory(), 4, bad_records="ignore"),
        C,
        "from_source(bad_records=...)",
    ),
    BadInput(
        "from_source",
        "bad_records 3",
        lambda: from_source(memory(), 4, bad_records=3),
        C,
        "from_source(bad_records=...)",
    ),
    BadInput(
        "from_source", "source a dict", lambda: from_source({"x": [1, 2]}, 4), B, "DataSourceNode"
    ),
    BadInput("from_source", "source an int", lambda: from_source(5, 4), B, "DataSourceNode"),
    BadInput(
        "from_source",
        "source empty list",
        lambda: from_source([], 4),
        SourceError,
        "SequenceSource[list]",
    ),
    BadInput(
        "from_source",
        "source of length 0",
        lambda: from_source(SequenceSource(()), 4),
        SourceError,
        "SequenceSource[tuple]",
    ),
    BadInput(
        "from_source",
        "sharding a string",
        lambda: from_source(memory(), 4, sharding="data"),
        B,
        "from_source(sharding=...)",
    ),
    BadInput(
        "from_source",
        "sampler not a sampler",
        lambda: from_source(memory(), 4, sampler=[0, 1]),
        B,
        "DataSourceNode(sampler=...)",
    ),
    BadInput(
        "from_source",
        "sampler over more records",
        lambda: first(
            from_source(
                memory(4),
                2,
                sampler=__import__("datarax.samplers", fromlist=["x"]).SequentialSampler(
                    SequentialSamplerConfig(num_records=9)
                ),
            )
        ),
        B,
        "DataSourceNode(sampler=...)",
    ),
    BadInput(
        "DataSourceNode",
        "workers 2.0",
        lambda: DataSourceNode(memory(), workers=2.0),
        B,
        "DataSourceNode",
    ),
    BadInput(
        "DataSourceNode",
        "num_epochs '3'",
        lambda: DataSourceNode(memory(), num_epochs="3"),
        B,
        "DataSourceNode",
    ),
    # MemorySource
    BadInput(
        "MemorySource",
        "empty column",
        lambda: MemorySource(MemorySourceConfig(), data={"x": np.zeros((0, 3))}),
        SourceError,
        "MemorySource",
    ),
    BadInput(
        "MemorySource",
        "no fields",
        lambda: MemorySource(MemorySourceConfig(), data={}),
        SourceError,
        "MemorySource",
    ),
    BadInput(
        "MemorySource",
        "fields of different lengths",
        lambda: MemorySource(MemorySourceConfig(), data={"x": np.zeros(3), "y": np.zeros(4)}),
        SourceError,
        "MemorySource",
    ),
    BadInput(
        "MemorySource",
        "a string column",
        lambda: MemorySource(MemorySourceConfig(), data={"x": np.array(["a", "b"])}),
        SourceError,
        "MemorySource, field 'x'",
    ),
    BadInput(
        "MemorySource",
        "an object column",
        lambda: MemorySource(MemorySourceConfig(), data={"x": np.array([{}, {}])}),
        SourceError,
        "MemorySource, field 'x'",
    ),
    BadInput(
        "MemorySource",
        "a scalar column",
        lambda: MemorySource(MemorySourceConfig(), data={"x": np.float32(3)}),
        SourceError,
        "MemorySource, field 'x'",
    ),
    BadInput(
        "MemorySource",
        "ragged lists",
        lambda: MemorySource(MemorySourceConfig(), data={"x": [[1, 2], [3]]}),
        SourceError,
        "MemorySource, field 'x'",
    ),
    BadInput(
        "MemorySource",
        "int64 beyond 32 bits",
        lambda: MemorySource(MemorySourceConfig(), data={"x": np.array([2**40, 1])}),
        SourceError,
        "MemorySource, field 'x'",
    ),
    BadInput(
        "MemorySource",
        "records of different fields",
        lambda: MemorySource(MemorySourceConfig(), data=[{"x": 1}, {"y": 2}]),
        SourceError,
        "MemorySource, record 1",
    ),
    BadInput(
        "MemorySource",
        "records of different shapes",
        lambda: MemorySource(MemorySourceConfig(), data=[{"x": np.zeros(2)}, {"x": np.zeros(3)}]),
        SourceError,
        "MemorySource, record 1, field 'x'",
    ),
    BadInput(
        "MemorySource",
        "data a string",
        lambda: MemorySource(MemorySourceConfig(), data="records"),
        SourceError,
        "MemorySource",
    ),
    BadInput(
        "MemorySource",
        "data an int",
        lambda: MemorySource(MemorySourceConfig(), data=3),
        SourceError,
        "MemorySource",
    ),
    BadInput(
        "MemorySource",
        "wrong config type",
        lambda: MemorySource(SequentialSamplerConfig(), data={"x": np.zeros(3)}),
        C,
        "MemorySource",
    ),
    BadInput(
        "MemorySourceConfig",
        "placement 'gpu'",
        lambda: MemorySourceConfig(placement="gpu"),
        C,
        "MemorySourceConfig.placement",
    ),
    BadInput(
        "MemorySourceConfig",
        "device_max_bytes -1",
        lambda: MemorySourceConfig(device_max_bytes=-1),
        C,
        "MemorySourceConfig.device_max_bytes",
    ),
    BadInput(
        "MemorySourceConfig",
        "device_max_bytes 1.5",
        lambda: MemorySourceConfig(device_max_bytes=1.5),
        C,
        "MemorySourceConfig.device_max_bytes",
    ),
    BadInput(
        "MemorySourceConfig",
        "pad_to length 0",
        lambda: MemorySourceConfig(pad_to={"t": 0}),
        C,
        "MemorySourceConfig.pad_to",
    ),
    BadInput(
        "MemorySourceConfig",
        "pad_to length '8'",
        lambda: MemorySourceConfig(pad_to={"t": "8"}),
        C,
        "MemorySourceConfig.pad_to",
    ),
    BadInput(
        "MemorySourceConfig",
        "pad_value a string",
        lambda: MemorySourceConfig(pad_to={"t": 4}, pad_value="a"),
        C,
        "MemorySourceConfig.pad_value",
    ),
    BadInput(
        "MemorySourceConfig",
        "pad_value a dict",
        lambda: MemorySourceConfig(pad_to={"t": 4}, pad_value={"t": 1}),
        C,
        "MemorySourceConfig.pad_value",
    ),
    BadInput(
        "MemorySourceConfig",
        "pad_value True",
        lambda: MemorySourceConfig(pad_to={"t": 4}, pad_value=True),
        C,
        "MemorySourceConfig.pad_value",
    ),
    BadInput(
        "MemorySource",
        "pad_value beyond int8",
        lambda: MemorySource(
            MemorySourceConfig(pad_to={"t": 4}, pad_value=300),
            data={"t": [np.arange(2, dtype=np.int8)] * 3},
        ),
        SourceError,
        "MemorySource, field 't'",
    ),
    BadInput(
        "MemorySource",
        "pad_value 0.5 in ints",
        lambda: MemorySource(
            MemorySourceConfig(pad_to={"t": 4}, pad_value=0.5),
            data={"t": [np.arange(2, dtype=np.int32)] * 3},
        ),
        SourceError,
        "MemorySource, field 't'",
    ),
    BadInput(
        "MemorySource",
        "pad_to a missing field",
        lambda: MemorySource(MemorySourceConfig(pad_to={"t": 4}), data={"x": np.zeros(3)}),
        SourceError,
        "MemorySource",
    ),
    BadInput(
        "MemorySource",
        "pad_to a 2-D record",
        lambda: MemorySource(MemorySourceConfig(pad_to={"t": 4}), data={"t": [np.zeros((2, 2))]}),
        SourceError,
        "MemorySource, field 't', record 0",
    ),
    BadInput(
        "MemorySource",
        "pad_to over a list of records",
        lambda: MemorySource(MemorySourceConfig(pad_to={"t": 4}), data=[{"t": np.zeros(2)}]),
        SourceError,
        "MemorySource",
    ),
    # record sources
    BadInput(
        "SequenceSource",
        "not random access",
        lambda: SequenceSource(iter([1, 2])),
        SourceError,
        "SequenceSource",
    ),
    BadInput(
        "SequenceSource",
        "records not dicts",
        lambda: first(from_source(SequenceSource([1, 2, 3]), 2)),
        SourceError,
        "SequenceSource[list], record 0",
    ),
    BadInput(
        "SequenceSource",
        "text reaching the batch",
        lambda: first(from_source(SequenceSource([{"t": "ab"}, {"t": "c"}]), 2)),
        SchemaError,
        "SequenceSource[list], field 't'",
    ),
    BadInput(
        "SequenceSource",
        "a record with another field",
        lambda: [b for b in from_source(SequenceSource([{"x": 1}, {"x": 2}, {"y": 3}]), 1)],
        SchemaError,
        "SequenceSource[list], record 2",
    ),
    BadInput(
        "SequenceSource",
        "a record of another shape",
        lambda: [
            b for b in from_source(SequenceSource([{"x": np.zeros(2)}, {"x": np.zeros(3)}]), 1)
        ],
        SchemaError,
        "SequenceSource[list], record 1, field 'x'",
    ),
    BadInput(
        "SequenceSource",
        "a decoder returning a list",
        lambda: first(from_source(SequenceSource([b"ab"], decoder=lambda b: [1]), 1)),
        SourceError,
        "SequenceSource[list], record 0",
    ),
    BadInput(
        "SequenceSource",
        "a decoder that raises",
        lambda: first(from_source(SequenceSource([b"ab"], decoder=lambda b: 1 / 0), 1)),
        DataraxError,
        "SequenceSource[list], record 0",
    ),
    BadInput(
        "SequenceSource",
        "a ragged field",
        lambda: first(from_source(SequenceSource([{"x": [[1, 2], [3]]}]), 1)),
        SourceError,
        "SequenceSource[list], field 'x', record 0",
    ),
    BadInput(
        "ArrayRecordSourceConfig",
        "paths empty",
        lambda: ArrayRecordSourceConfig(paths=[]),
        C,
        "ArrayRecordSourceConfig.paths",
    ),
    BadInput(
        "ArrayRecordSourceConfig",
        "paths an int",
        lambda: ArrayRecordSourceConfig(paths=3),
        C,
        "ArrayRecordSourceConfig.paths",
    ),
    BadInput(
        "ArrayRecordSource",
        "a missing file",
        lambda: ArrayRecordSource(ArrayRecordSourceConfig(paths=str(TMP / "missing.ar"))),
        SourceError,
        "ArrayRecordSource",
    ),
    BadInput(
        "ArrayRecordSource",
        "a glob matching nothing",
        lambda: ArrayRecordSource(ArrayRecordSourceConfig(paths=str(TMP / "none-*.ar"))),
        SourceError,
        "ArrayRecordSource",
    ),
    BadInput(
        "ArrayRecordSource",
        "an empty file",
        lambda: from_source(
            ArrayRecordSource(ArrayRecordSourceConfig(paths=records_file("empty.ar", []))), 2
        ),
        SourceError,
        "ArrayRecordSource[empty.ar]",
    ),
    BadInput(
        "ArrayRecordSource",
        "a file of other bytes",
        lambda: first(
            from_source(
                ArrayRecordSource(
                    ArrayRecordSourceConfig(paths=text_file("junk.ar", b"not a record file" * 10))
                ),
                2,
            )
        ),
        SourceError,
        "ArrayRecordSource",
    ),
    BadInput(
        "ArrayRecordSource",
        "text fields reaching the batch",
        lambda: first(
            from_source(
                ArrayRecordSource(
                    ArrayRecordSourceConfig(
                        paths=records_file("text.ar", [{"s": "abc"}, {"s": "de"}])
                    )
                ),
                2,
            )
        ),
        SchemaError,
        "ArrayRecordSource[text.ar], field 's'",
    ),
    BadInput(
        "write_array_record",
        "an object field",
        lambda: write_array_record(str(TMP / "obj.ar"), [{"s": np.array([{}])}]),
        SourceError,
        "write_array_record(",
    ),
    BadInput(
        "write_array_record",
        "compress an absent field",
        lambda: write_array_record(str(TMP / "c.ar"), [{"x": np.zeros(2)}], compress=("y",)),
        SourceError,
        "write_array_record(",
    ),
    BadInput(
        "write_array_record",
        "a directory that does not exist",
        lambda: write_array_record(str(TMP / "no" / "dir" / "a.ar"), [{"x": np.zeros(2)}]),
        SourceError,
        "write_array_record(",
    ),
    BadInput(
        "write_array_record",
        "records not dicts",
        lambda: write_array_record(str(TMP / "l.ar"), [[1, 2]]),
        SourceError,
        "write_array_record(",
    ),
    BadInput(
        "MixedSourceConfig",
        "no weights",
        lambda: MixedSourceConfig(weights=()),
        C,
        "MixedSourceConfig.weights",
    ),
    BadInput(
        "MixedSourceConfig",
        "a negative weight",
        lambda: MixedSourceConfig(weights=(1.0, -1.0)),
        C,
        "MixedSourceConfig.weights",
    ),
    BadInput(
        "MixedSourceConfig",
        "all weights 0",
        lambda: MixedSourceConfig(weights=(0.0, 0.0)),
        C,
        "MixedSourceConfig.weights",
    ),
    BadInput(
        "MixedSourceConfig",
        "a NaN weight",
        lambda: MixedSourceConfig(weights=(1.0, float("nan"))),
        C,
        "MixedSourceConfig.weights",
    ),
    BadInput(
        "MixedSourceConfig",
        "window 0",
        lambda: MixedSourceConfig(weights=(1.0,), window=0),
        C,
        "MixedSourceConfig.window",
    ),
    BadInput(
        "MixedSourceConfig",
        "seed 2**64",
        lambda: MixedSourceConfig(weights=(1.0,), seed=2**64),
        C,
        "MixedSourceConfig.seed",
    ),
    BadInput(
        "MixedSourceConfig",
        "shuffle 'yes'",
        lambda: MixedSourceConfig(weights=(1.0,), shuffle="yes"),
        C,
        "MixedSourceConfig.shuffle",
    ),
    BadInput(
        "MixedSourceConfig",
        "num_records 0",
        lambda: MixedSourceConfig(weights=(1.0,), num_records=0),
        C,
        "MixedSourceConfig.num_records",
    ),
    BadInput(
        "MixedSource",
        "weights and sources differ in number",
        lambda: MixedSource(MixedSourceConfig(weights=(1.0, 1.0)), sources=[memory()]),
        C,
        "MixedSource",
    ),
    BadInput(
        "MixedSource",
        "source_field overwriting a field",
        lambda: MixedSource(
            MixedSourceConfig(weights=(1.0, 1.0), source_field="x"), sources=[memory(), memory()]
        ),
        C,
        "MixedSourceConfig.source_field",
    ),
    BadInput(
        "MixedSource",
        "components of different fields",
        lambda: MixedSource(MixedSourceConfig(weights=(1.0, 1.0)), sources=[memory(), images()]),
        SourceError,
        "MixedSource, component 1",
    ),
    # samplers
    BadInput(
        "SequentialSamplerConfig",
        "num_records 0",
        lambda: SequentialSamplerConfig(num_records=0),
        C,
        "SequentialSamplerConfig.num_records",
    ),
    BadInput(
        "SequentialSamplerConfig",
        "num_records 1.5",
        lambda: SequentialSamplerConfig(num_records=1.5),
        C,
        "SequentialSamplerConfig.num_records",
    ),
    BadInput(
        "ShuffleSamplerConfig",
        "num_records -4",
        lambda: ShuffleSamplerConfig(num_records=-4),
        C,
        "ShuffleSamplerConfig.num_records",
    ),
    BadInput(
        "ShuffleSamplerConfig",
        "seed 2**64",
        lambda: ShuffleSamplerConfig(num_records=4, seed=2**64),
        C,
        "ShuffleSamplerConfig.seed",
    ),
    BadInput(
        "ShuffleSamplerConfig",
        "seed 'a'",
        lambda: ShuffleSamplerConfig(num_records=4, seed="a"),
        C,
        "ShuffleSamplerConfig.seed",
    ),
    BadInput(
        "RangeSamplerConfig",
        "step 0",
        lambda: RangeSamplerConfig(start=0, stop=4, step=0),
        C,
        "RangeSamplerConfig",
    ),
    BadInput(
        "RangeSamplerConfig",
        "stop before start",
        lambda: RangeSamplerConfig(start=5, stop=2),
        C,
        "RangeSamplerConfig",
    ),
    BadInput(
        "RangeSamplerConfig",
        "start -1",
        lambda: RangeSamplerConfig(start=-1, stop=2),
        C,
        "RangeSamplerConfig",
    ),
    BadInput(
        "ShuffleNode", "buffer_size 0", lambda: ShuffleNode(0), C, "WindowShuffleConfig.buffer_size"
    ),
    BadInput(
        "ShuffleNode", "seed -2", lambda: ShuffleNode(8, seed=-2), C, "WindowShuffleConfig.seed"
    ),
    # batching
    BadInput(
        "DefaultBatcherConfig",
        "batch_size 0",
        lambda: DefaultBatcherConfig(batch_size=0),
        C,
        "DefaultBatcherConfig.batch_size",
    ),
    BadInput(
        "DefaultBatcherConfig",
        "drop_remainder 1",
        lambda: DefaultBatcherConfig(drop_remainder=1),
        C,
        "DefaultBatcherConfig.drop_remainder",
    ),
    BadInput("BatchNode", "neither size nor batcher", lambda: BatchNode(), B, "BatchNode"),
    BadInput(
        "BatchNode",
        "batcher not a batcher",
        lambda: BatchNode(batcher="default"),
        B,
        "BatchNode(batcher=...)",
    ),
    BadInput(
        "BatchNode",
        "size and batcher disagree",
        lambda: BatchNode(8, batcher=DefaultBatcher(DefaultBatcherConfig(batch_size=4))),
        B,
        "BatchNode",
    ),
    BadInput(
        "from_source",
        "drop_remainder with a batch larger than the epoch",
        lambda: first(from_source(memory(3), 8, drop_remainder=True)),
        B,
        "BatchNode",
    ),
    # DAG nodes
    BadInput(
        "OperatorNode", "not an operator", lambda: OperatorNode(lambda e: e), B, "OperatorNode"
    ),
    BadInput(
        "OperatorNode",
        "an operator class, not an instance",
        lambda: OperatorNode(ElementOperator),
        B,
        "OperatorNode",
    ),
    BadInput(">>", "a node after a non-node", lambda: from_source(memory(), 4) >> 3, B, "Pipeline"),
    BadInput(
        ">>",
        "a function instead of a node",
        lambda: from_source(memory(), 4) >> (lambda e: e),
        B,
        "Pipeline",
    ),
    BadInput(
        ">>",
        "a source node in the middle",
        lambda: from_source(memory(), 4) >> DataSourceNode(memory()),
        B,
        "DataSourceNode",
    ),
    BadInput(
        ">>", "a second BatchNode", lambda: from_source(memory(), 4) >> BatchNode(2), B, "BatchNode"
    ),
    BadInput(
        ">>",
        "a host operator after a device operator",
        lambda: from_source(memory(), 4) >> element(identity) >> HostOperator(lambda r: r),
        B,
        "HostOperator(<lambda>)",
    ),
    BadInput(
        "Pipeline",
        "no BatchNode",
        lambda: iter(DataSourceNode(memory()) >> element(identity)),
        B,
        "Pipeline",
    ),
    BadInput("Parallel", "one branch", lambda: Parallel([element(identity)]), B, "Parallel"),
    BadInput(
        "Parallel",
        "a branch starting at a source",
        lambda: Parallel([from_source(memory(), 2), element(identity)]),
        B,
        "Parallel",
    ),
    BadInput(
        "Parallel", "a branch not a node", lambda: Parallel([element(identity), 3]), B, "Parallel"
    ),
    BadInput("Merge", "unknown strategy", lambda: Merge("average"), B, "Merge"),
    BadInput("Merge", "weighted without weights", lambda: Merge("weighted"), B, "Merge"),
    BadInput(
        "Merge",
        "concat along a missing axis",
        lambda: first(
            from_source(memory(), 4)
            >> Parallel([element(identity), element(identity)])
            >> Merge("concat", axis=3)
        ),
        B,
        "Merge",
    ),
    BadInput(
        "Merge",
        "without a Parallel before it",
        lambda: first(from_source(memory(), 4) >> Merge("mean")),
        B,
        "Merge",
    ),
    BadInput("Branch", "condition not callable", lambda: Branch(3, element(identity)), B, "Branch"),
    BadInput("Branch", "a path not a node", lambda: Branch(lambda e: True, "path"), B, "Branch"),
    BadInput(
        "Branch",
        "condition returning None",
        lambda: first(from_source(memory(), 4) >> Branch(lambda e: None, element(identity))),
        B,
        "Branch",
    ),
    BadInput(
        "Branch",
        "condition returning a string",
        lambda: first(from_source(memory(), 4) >> Branch(lambda e: "yes", element(identity))),
        B,
        "Branch",
    ),
    BadInput(
        "Branch",
        "paths of different outputs",
        lambda: first(
            from_source(memory(), 4)
            >> Branch(
                lambda e: e.data["x"] > 2,
                element(lambda e: e.replace(data={"y": e.data["x"]})),
                element(identity),
            )
        ),
        B,
        "Branch",
    ),
    BadInput("CacheNode", "max_records 0", lambda: CacheNode(max_records=0), B, "CacheNode"),
    BadInput(
        "CacheNode", "max_records 'all'", lambda: CacheNode(max_records="all"), B, "CacheNode"
    ),
    BadInput("RebatchNode", "batch size 0", lambda: RebatchNode(0), B, "RebatchNode"),
    BadInput("RebatchNode", "batch size 2.5", lambda: RebatchNode(2.5), B, "RebatchNode"),
    BadInput("PrefetchNode", "buffer -1", lambda: PrefetchNode(-1), B, "PrefetchNode"),
    BadInput("PrefetchNode", "buffer 'two'", lambda: PrefetchNode("two"), B, "PrefetchNode"),
    BadInput("HostOperator", "not callable", lambda: HostOperator(3), B, "HostOperator"),
    BadInput(
        "HostOperator",
        "stochastic 'yes'",
        lambda: HostOperator(lambda r: r, stochastic="yes"),
        B,
        "HostOperator(stochastic=...)",
    ),
    BadInput(
        "HostOperator",
        "returning a list",
        lambda: first(from_source(SequenceSource([{"x": 1}]), 1) >> HostOperator(lambda r: [1])),
        DataraxError,
        "SequenceSource[list], record 0",
    ),
    BadInput(
        "HostOperator",
        "raising",
        lambda: first(from_source(SequenceSource([{"x": 1}]), 1) >> HostOperator(lambda r: 1 / 0)),
        DataraxError,
        "SequenceSource[list], record 0",
    ),
    BadInput(
        "HostOperator",
        "returning text",
        lambda: first(
            from_source(SequenceSource([{"x": 1}]), 1) >> HostOperator(lambda r: {"t": "a"})
        ),
        DataraxError,
        "SequenceSource[list]",
    ),
    BadInput(
        "HostOperator",
        "one wrong record",
        lambda: [
            b
            for b in from_source(SequenceSource([{"x": 1}, {"x": 2}]), 1)
            >> HostOperator(lambda r: r if r["x"] == 1 else {"x": np.zeros(2)})
        ],
        DataraxError,
        "SequenceSource[list], record 1",
    ),
    # operators
    BadInput(
        "ElementOperator",
        "fn not callable",
        lambda: ElementOperator(ElementOperatorConfig(), fn=3),
        OperatorError,
        "ElementOperator",
    ),
    BadInput(
        "ElementOperator",
        "fn None",
        lambda: ElementOperator(ElementOperatorConfig(), fn=None),
        OperatorError,
        "ElementOperator",
    ),
    BadInput(
        "ElementOperator",
        "stochastic without rngs",
        lambda: ElementOperator(ElementOperatorConfig(stochastic=True), fn=identity),
        OperatorError,
        "ElementOperator",
    ),
    BadInput(
        "ElementOperator",
        "stochastic 'yes'",
        lambda: ElementOperatorConfig(stochastic="yes"),
        C,
        "ElementOperatorConfig.stochastic",
    ),
    BadInput(
        "ElementOperator",
        "fn raising",
        lambda: from_source(memory(), 4) >> element(lambda e: 1 / 0),
        B,
        "OperatorNode(ElementOperator)",
    ),
    BadInput(
        "ElementOperator",
        "fn reading a missing field",
        lambda: (
            from_source(memory(), 4) >> element(lambda e: e.replace(data={"x": e.data["image"]}))
        ),
        B,
        "OperatorNode(ElementOperator)",
    ),
    BadInput(
        "ElementOperator",
        "fn using key without stochastic",
        lambda: (
            from_source(memory(), 4)
            >> element(lambda e, key: e.replace(data={"x": e.data["x"] + jax.random.uniform(key)}))
        ),
        B,
        "OperatorNode(ElementOperator)",
    ),
    BadInput(
        "ElementOperator",
        "fn returning None",
        lambda: from_source(memory(), 4) >> element(lambda e: None),
        SchemaError,
        "ElementOperator",
    ),
    BadInput(
        "ElementOperator",
        "fn returning a dict",
        lambda: from_source(memory(), 4) >> element(lambda e: {"x": e.data["x"]}),
        SchemaError,
        "ElementOperator",
    ),
    BadInput(
        "ElementOperator",
        "fn returning a string field",
        lambda: from_source(memory(), 4) >> element(lambda e: e.replace(data={"x": "a"})),
        SchemaError,
        "ElementOperator, field",
    ),
    BadInput(
        "ElementOperator",
        "fn with a Python branch on data",
        lambda: from_source(memory(), 4) >> element(lambda e: e if e.data["x"] > 0 else e),
        B,
        "OperatorNode(ElementOperator)",
    ),
    BadInput(
        "MapOperator",
        "fields not strings",
        lambda: MapOperatorConfig(fields=(1, 2)),
        C,
        "MapOperatorConfig.fields",
    ),
    BadInput(
        "MapOperator",
        "a field not in the data",
        lambda: (
            from_source(memory(), 4)
            >> OperatorNode(MapOperator(MapOperatorConfig(fields=("y",)), fn=lambda v: v))
        ),
        SchemaError,
        "MapOperator",
    ),
    BadInput(
        "MapOperator",
        "fn returning a string",
        lambda: (
            from_source(memory(), 4)
            >> OperatorNode(
                MapOperator(
                    MapOperatorConfig(), fn=lambda v: v.astype(jnp.int32) if v.ndim == 7 else "x"
                )
            )
        ),
        SchemaError,
        "MapOperator, field",
    ),
    BadInput(
        "CompositeOperatorConfig",
        "unknown strategy",
        lambda: CompositeOperatorConfig(
            strategy="zigzag", operators=(ElementOperator(ElementOperatorConfig(), fn=identity),)
        ),
        C,
        "CompositeOperatorConfig.strategy",
    ),
    BadInput(
        "CompositeOperatorConfig",
        "no operators",
        lambda: CompositeOperatorConfig(operators=()),
        C,
        "CompositeOperatorConfig.operators",
    ),
    BadInput(
        "CompositeOperatorConfig",
        "operators not operators",
        lambda: CompositeOperatorConfig(operators=(identity,)),
        C,
        "CompositeOperatorConfig.operators",
    ),
    BadInput(
        "CompositeOperator",
        "weights of another length",
        lambda: CompositeOperator(
            CompositeOperatorConfig(
                strategy="weighted",
                operators=(ElementOperator(ElementOperatorConfig(), fn=identity),) * 2,
                weights=(1.0,),
            )
        ),
        C,
        "CompositeOperatorConfig",
    ),
    BadInput(
        "NormalizeConfig", "std 0", lambda: NormalizeConfig(std=0.0), C, "NormalizeConfig.std"
    ),
    BadInput(
        "NormalizeConfig",
        "std negative per channel",
        lambda: NormalizeConfig(std=(1.0, -1.0, 1.0)),
        C,
        "NormalizeConfig.std",
    ),
    BadInput(
        "NormalizeConfig",
        "mean NaN",
        lambda: NormalizeConfig(mean=float("nan")),
        C,
        "NormalizeConfig.mean",
    ),
    BadInput(
        "NormalizeConfig",
        "mean and std lengths",
        lambda: NormalizeConfig(mean=(0.0, 0.0), std=(1.0, 1.0, 1.0)),
        C,
        "NormalizeConfig",
    ),
    BadInput(
        "NormalizeConfig",
        "dtype int32",
        lambda: NormalizeConfig(dtype="int32"),
        C,
        "NormalizeConfig.dtype",
    ),
    BadInput(
        "NormalizeConfig",
        "dtype 'floaty'",
        lambda: NormalizeConfig(dtype="floaty"),
        C,
        "NormalizeConfig.dtype",
    ),
    BadInput(
        "NormalizeConfig",
        "field empty",
        lambda: NormalizeConfig(field=""),
        C,
        "NormalizeConfig.field",
    ),
    BadInput(
        "Normalize",
        "two means for three channels",
        lambda: (
            from_source(images(), 4)
            >> OperatorNode(Normalize(NormalizeConfig(mean=(0.0, 0.0), std=1.0)))
        ),
        SchemaError,
        "Normalize, field 'image'",
    ),
    BadInput(
        "Normalize",
        "a missing image field",
        lambda: from_source(memory(), 4) >> OperatorNode(Normalize(NormalizeConfig())),
        SchemaError,
        "Normalize",
    ),
    BadInput(
        "Normalize",
        "1-D records",
        lambda: (
            from_source(MemorySource(MemorySourceConfig(), data={"image": np.zeros((4, 5))}), 2)
            >> OperatorNode(Normalize(NormalizeConfig()))
        ),
        SchemaError,
        "Normalize, field 'image'",
    ),
    BadInput(
        "Normalize", "wrong config type", lambda: Normalize(RandomFlipConfig()), C, "Normalize"
    ),
    BadInput(
        "RandomCropConfig", "size 0", lambda: RandomCropConfig(size=0), C, "RandomCropConfig.size"
    ),
    BadInput(
        "RandomCropConfig",
        "size (4, -1)",
        lambda: RandomCropConfig(size=(4, -1)),
        C,
        "RandomCropConfig.size",
    ),
    BadInput(
        "RandomCropConfig",
        "size of three values",
        lambda: RandomCropConfig(size=(4, 4, 4)),
        C,
        "RandomCropConfig.size",
    ),
    BadInput(
        "RandomCropConfig",
        "padding -1",
        lambda: RandomCropConfig(padding=-1),
        C,
        "RandomCropConfig.padding",
    ),
    BadInput(
        "RandomCropConfig",
        "fill a string",
        lambda: RandomCropConfig(fill="black"),
        C,
        "RandomCropConfig.fill",
    ),
    BadInput(
        "RandomCrop",
        "without rngs",
        lambda: RandomCrop(RandomCropConfig(size=4)),
        OperatorError,
        "RandomCrop",
    ),
    BadInput(
        "RandomCrop",
        "crop larger than the image",
        lambda: (
            from_source(images(), 4)
            >> OperatorNode(RandomCrop(RandomCropConfig(size=16), rngs=nnx.Rngs(0)))
        ),
        SchemaError,
        "RandomCrop, field 'image'",
    ),
    BadInput(
        "RandomCrop",
        "fill 300 in uint8 images",
        lambda: (
            from_source(images(), 4)
            >> OperatorNode(
                RandomCrop(RandomCropConfig(size=8, padding=2, fill=300), rngs=nnx.Rngs(0))
            )
        ),
        SchemaError,
        "RandomCrop, field 'image'",
    ),
    BadInput(
        "RandomFlipConfig",
        "direction 'diagonal'",
        lambda: RandomFlipConfig(direction="diagonal"),
        C,
        "RandomFlipConfig.direction",
    ),
    BadInput(
        "RandomFlipConfig",
        "probability 1.5",
        lambda: RandomFlipConfig(probability=1.5),
        C,
        "RandomFlipConfig.probability",
    ),
    BadInput(
        "RandomFlipConfig",
        "probability -0.1",
        lambda: RandomFlipConfig(probability=-0.1),
        C,
        "RandomFlipConfig.probability",
    ),
    BadInput(
        "RandomFlip",
        "without rngs",
        lambda: RandomFlip(RandomFlipConfig()),
        OperatorError,
        "RandomFlip",
    ),
    BadInput(
        "RandomFlip",
        "1-D records",
        lambda: (
            from_source(memory(), 4)
            >> OperatorNode(RandomFlip(RandomFlipConfig(field="x"), rngs=nnx.Rngs(0)))
        ),
        SchemaError,
        "RandomFlip, field 'x'",
    ),
    # the bad-record policy
    BadInput(
        "BadRecordPolicy",
        "on_error 'warn'",
        lambda: BadRecordPolicy("warn"),
        C,
        "BadRecordPolicy.on_error",
    ),
    BadInput(
        "BadRecordPolicy",
        "max_skipped -1",
        lambda: BadRecordPolicy("skip", max_skipped=-1),
        C,
        "BadRecordPolicy.max_skipped",
    ),
    BadInput(
        "BadRecordPolicy",
        "max_fraction 1.5",
        lambda: BadRecordPolicy("skip", max_fraction=1.5),
        C,
        "BadRecordPolicy.max_fraction",
    ),
    BadInput(
        "BadRecordPolicy",
        "max_fraction NaN",
        lambda: BadRecordPolicy("skip", max_fraction=float("nan")),
        C,
        "BadRecordPolicy.max_fraction",
    ),
    # iterators
    BadInput(
        "iterator",
        "set_state of a list",
        lambda: iterator().set_state([1, 2]),
        StateError,
        "PipelineIterator.set_state",
    ),
    BadInput(
        "iterator",
        "set_state of None",
        lambda: iterator().set_state(None),
        StateError,
        "PipelineIterator.set_state",
    ),
    BadInput(
        "iterator",
        "set_state of another pipeline's state",
        lambda: iterator().set_state(iter(from_source(memory(12), 3)).get_state()),
        StateError,
        "PipelineIterator.set_state",
    ),
    BadInput(
        "Prefetcher",
        "buffer_size 0",
        lambda: Prefetcher(iterator(), buffer_size=0),
        C,
        "Prefetcher",
    ),
    BadInput(
        "Prefetcher", "max_bytes -1", lambda: Prefetcher(iterator(), max_bytes=-1), C, "Prefetcher"
    ),
    BadInput(
        "Prefetcher",
        "transform not callable",
        lambda: Prefetcher(iterator(), transform=3),
        C,
        "Prefetcher(transform=...)",
    ),
    BadInput("Prefetcher", "not an iterator", lambda: Prefetcher([1, 2]), C, "Prefetcher"),
    # state files
    BadInput(
        "save_iterator_state",
        "into a missing directory",
        lambda: __import__("datarax.checkpoint", fromlist=["x"]).save_iterator_state(
            TMP / "no" / "s.json", iterator()
        ),
        FileError,
        str(TMP / "no" / "s.json"),
    ),
    BadInput(
        "load_iterator_state",
        "a missing file",
        lambda: __import__("datarax.checkpoint", fromlist=["x"]).load_iterator_state(
            TMP / "missing.json", iterator()
        ),
        StateError,
        str(TMP / "missing.json"),
    ),
    BadInput(
        "load_iterator_state",
        "a file that is not JSON",
        lambda: __import__("datarax.checkpoint", fromlist=["x"]).load_iterator_state(
            text_file("bad.json", b"\xff\x00 not json"), iterator()
        ),
        StateError,
        str(TMP / "bad.json"),
    ),
    BadInput(
        "load_iterator_state",
        "a JSON list",
        lambda: __import__("datarax.checkpoint", fromlist=["x"]).load_iterator_state(
            text_file("list.json", b"[1, 2]"), iterator()
        ),
        StateError,
        str(TMP / "list.json"),
    ),
    BadInput(
        "plot",
        "into a missing directory",
        lambda: from_source(memory(), 4).plot(str(TMP / "no" / "p.png")),
        FileError,
        str(TMP / "no" / "p.png"),
    ),
    # datarax-bench results and compare
    BadInput(
        "load_results",
        "a missing file",
        lambda: load_results(TMP / "none.json"),
        DataraxError,
        str(TMP / "none.json"),
    ),
    BadInput(
        "load_results",
        "a file that is not UTF-8",
        lambda: load_results(text_file("latin.json", b"\xff\xfe{")),
        DataraxError,
        str(TMP / "latin.json"),
    ),
    BadInput(
        "load_results",
        "a file that is not JSON",
        lambda: load_results(text_file("notjson.json", b"{")),
        DataraxError,
        str(TMP / "notjson.json"),
    ),
    BadInput(
        "load_results",
        "a JSON list",
        lambda: load_results(text_file("rlist.json", b"[]")),
        DataraxError,
        str(TMP / "rlist.json"),
    ),
    BadInput(
        "load_results",
        "a NaN median",
        lambda: load_results(results_file("nan.json", float("nan"))),
        DataraxError,
        str(TMP / "nan.json"),
    ),
    BadInput(
        "load_results",
        "an unknown status",
        lambda: load_results(results_file("status.json", 1.0, status="fine")),
        DataraxError,
        str(TMP / "status.json"),
    ),
    BadInput(
        "compare",
        "threshold NaN",
        lambda: compare(
            load_results(results_file("ok.json", 10.0)),
            load_results(results_file("ok.json", 10.0)),
            float("nan"),
        ),
        C,
        "compare(threshold=...)",
    ),
    BadInput(
        "compare",
        "threshold 1",
        lambda: compare(
            load_results(results_file("ok.json", 10.0)),
            load_results(results_file("ok.json", 10.0)),
            1.0,
        ),
        C,
        "compare(threshold=...)",
    ),
    BadInput(
        "compare",
        "threshold -0.1",
        lambda: compare(
            load_results(results_file("ok.json", 10.0)),
            load_results(results_file("ok.json", 10.0)),
            -0.1,
        ),
        C,
        "compare(threshold=...)",
    ),
]

# -- bad iterator states -----------------------------------------------------------------------


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda state: {**state, key: value}


def _drop(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda state: {k: v for k, v in state.items() if k != key}


#: ``(label, change)``: ``change(valid_state)`` is a state ``set_state`` must refuse.
STATES: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("format of another kind", _set("format", "grain.iterator")),
    ("format missing", _drop("format")),
    ("version 99", _set("version", 99)),
    ("version '2'", _set("version", "2")),
    ("pipeline of another fingerprint", _set("pipeline", "0123456789abcdef")),
    ("pipeline missing", _drop("pipeline")),
    ("epoch -1", _set("epoch", -1)),
    ("epoch 1.5", _set("epoch", 1.5)),
    ("epoch '0'", _set("epoch", "0")),
    ("epoch True", _set("epoch", True)),
    ("epoch past the last", _set("epoch", 7)),
    ("epoch missing", _drop("epoch")),
    ("position -1", _set("position", -1)),
    ("position past the epoch", _set("position", 999)),
    ("position not on a batch boundary", _set("position", 3)),
    ("position None", _set("position", None)),
    ("position missing", _drop("position")),
    ("first_epoch after epoch", _set("first_epoch", 5)),
    ("first_epoch -1", _set("first_epoch", -1)),
    ("origin -5", _set("origin", -5)),
    ("origin 'x'", _set("origin", "x")),
    ("batching []", _set("batching", [])),
    ("batching [[0, False]]", _set("batching", [[0, False]])),
    ("batching [[4]]", _set("batching", [[4]])),
    ("batching [[4, 'no']]", _set("batching", [[4, "no"]])),
    ("batching a string", _set("batching", "4")),
    ("batching missing", _drop("batching")),
    ("an unknown key", _set("cursor", 3)),
    ("skipped not a list", _set("skipped", 3)),
]
