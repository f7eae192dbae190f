"""MemorySource with variable-length fields: pad/truncate to a fixed length, keep the length."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax import from_source
from datarax.core.errors import ConfigError, SourceError
from datarax.sources import MemorySource, MemorySourceConfig


def reference(rows, width, pad):
    out = np.full((len(rows), width), pad, np.int32)
    lengths = np.zeros(len(rows), np.int32)
    for i, row in enumerate(rows):
        k = min(len(row), width)
        out[i, :k] = row[:k]
        lengths[i] = k
    return out, lengths


@given(
    lengths=st.lists(st.integers(0, 40), min_size=1, max_size=30),
    width=st.integers(1, 32),
    pad=st.sampled_from([0, -1, 7]),
    data=st.data(),
)
@settings(max_examples=50, deadline=None)
def test_reads_equal_a_python_loop(lengths, width, pad, data):
    rng = np.random.default_rng(len(lengths))
    rows = [rng.integers(1, 100, n).astype(np.int32) for n in lengths]
    src = MemorySource(
        MemorySourceConfig(pad_to={"tokens": width}, pad_value=pad),
        data={"tokens": rows, "label": np.arange(len(rows), dtype=np.int32)},
    )
    ids = np.asarray(
        data.draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=20)), np.int64
    )
    out = src.read(ids)
    expected, expected_lengths = reference([rows[i] for i in ids], width, pad)
    np.testing.assert_array_equal(out["tokens"], expected)
    np.testing.assert_array_equal(out["tokens_length"], expected_lengths)
    np.testing.assert_array_equal(out["label"], ids)


def test_spec_and_pipeline_batches():
    rows = [np.arange(n, dtype=np.int32) + 1 for n in (3, 130, 128, 0, 5)]
    src = MemorySource(MemorySourceConfig(pad_to={"tokens": 128}), data={"tokens": rows})
    spec = src.element_spec()
    assert spec["tokens"].shape == (128,) and spec["tokens"].dtype == np.int32
    assert spec["tokens_length"].shape == () and spec["tokens_length"].dtype == np.int32
    assert src.device_arrays is None  # variable-length sources stay on the host
    batches = list(from_source(src, 2))
    assert [b["tokens_length"].tolist() for b in batches] == [[3, 128], [128, 0], [5]]
    np.testing.assert_array_equal(batches[0]["tokens"][1], np.arange(128) + 1)
    assert batches[0]["tokens"][0].tolist()[:4] == [1, 2, 3, 0]


def test_errors():
    with pytest.raises(ConfigError, match="invalid padded length of field 'tokens'"):
        MemorySourceConfig(pad_to={"tokens": 0})
    with pytest.raises(SourceError, match="pad_to names fields that are not in the data"):
        MemorySource(MemorySourceConfig(pad_to={"text": 4}), data={"tokens": [[1]]})
    with pytest.raises(SourceError, match=r"record 1.*not one-dimensional"):
        MemorySource(MemorySourceConfig(pad_to={"t": 4}), data={"t": [[1], [[1, 2]]]})
    with pytest.raises(SourceError, match="fields have different lengths"):
        MemorySource(MemorySourceConfig(pad_to={"t": 4}), data={"t": [[1], [2]], "y": np.zeros(3)})
    with pytest.raises(ConfigError, match="variable-length fields are read on the host"):
        MemorySource(MemorySourceConfig(pad_to={"t": 4}, placement="device"), data={"t": [[1]]})
