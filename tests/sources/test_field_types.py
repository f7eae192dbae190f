"""Field types beyond int and float: bfloat16 everywhere, text for host operators."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from datarax import from_source
from datarax.core.errors import SchemaError
from datarax.dag.nodes import HostOperator
from datarax.sources import (
    ArrayRecordSource,
    ArrayRecordSourceConfig,
    MemorySource,
    MemorySourceConfig,
    SequenceSource,
    write_array_record,
)

BF16 = np.dtype(ml_dtypes.bfloat16)


def values(n: int = 6) -> np.ndarray:
    return (np.arange(n * 3, dtype=np.float32).reshape(n, 3) / 4).astype(BF16)


def test_bfloat16_fields_pass_through_every_source(tmp_path):
    x = values()
    path = tmp_path / "bf16.ar"
    write_array_record(str(path), [{"x": row} for row in x])
    sources = [
        MemorySource(MemorySourceConfig(), data={"x": x}),
        MemorySource(MemorySourceConfig(placement="host"), data={"x": x}),
        SequenceSource([{"x": row} for row in x]),
        ArrayRecordSource(ArrayRecordSourceConfig(paths=str(path))),
    ]
    for source in sources:
        (batch,) = list(from_source(source, 6))
        assert batch["x"].dtype == BF16, source.name
        np.testing.assert_array_equal(np.asarray(batch["x"]).view(np.uint16), x.view(np.uint16))


def length_of(record):
    """A host operator turning text into numbers."""
    text = record["text"]
    return {"length": np.int32(len(text)), "first": np.int32(ord(text[0]))}


def test_text_written_to_a_record_file_reaches_host_operators_as_str(tmp_path):
    texts = ["hello", "hi", "déjà vu", "x"]
    path = tmp_path / "text.ar"
    write_array_record(str(path), [{"text": t, "id": np.int32(i)} for i, t in enumerate(texts)])
    source = ArrayRecordSource(ArrayRecordSourceConfig(paths=str(path)))
    (batch,) = list(from_source(source, 4) >> HostOperator(length_of))
    assert batch["length"].tolist() == [len(t) for t in texts]
    assert batch["first"].tolist() == [ord(t[0]) for t in texts]
    for workers, mode in ((2, "thread"), (2, "process")):
        pipeline = from_source(source, 4, workers=workers, worker_mode=mode) >> HostOperator(
            length_of
        )
        assert next(iter(pipeline))["length"].tolist() == [len(t) for t in texts]


def test_bytes_and_str_records_of_a_sequence_source_reach_host_operators():
    def decode(record):
        return {"n": np.int32(len(record["raw"]) + len(record["name"]))}

    source = SequenceSource([{"raw": b"\x00\x01", "name": "ab"}, {"raw": b"", "name": "c"}])
    (batch,) = list(from_source(source, 2) >> HostOperator(decode))
    assert batch["n"].tolist() == [4, 1]


def test_text_that_reaches_the_batch_is_refused_naming_the_field(tmp_path):
    path = tmp_path / "text.ar"
    write_array_record(str(path), [{"text": "a", "id": np.int32(0)}])
    source = ArrayRecordSource(ArrayRecordSourceConfig(paths=str(path)))
    pipeline = from_source(source, 1)  # composing is fine: a host operator may follow
    with pytest.raises(
        SchemaError,
        match=r"^ArrayRecordSource\[text\.ar\], field 'text': text cannot be batched; expected "
        r"numeric fields: a host operator that turns the text into numbers",
    ):
        next(iter(pipeline))
