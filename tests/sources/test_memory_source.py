"""MemorySource: records held in memory, validated on construction."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax.core.errors import ConfigError, SourceError
from datarax.sources import MemorySource, MemorySourceConfig

needs_x32 = pytest.mark.skipif(jax.config.jax_enable_x64, reason="narrowing only without x64")


def source(data, placement="auto", name=None, **kw):
    return MemorySource(MemorySourceConfig(placement=placement, **kw), data=data, name=name)


def _columns(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.normal(size=(n, 2, 3)).astype(np.float32),
        "label": rng.integers(0, 10, size=n).astype(np.int32),
        "mask": rng.integers(0, 2, size=(n, 4)).astype(bool),
    }


def _records(columns):
    n = len(next(iter(columns.values())))
    return [{k: v[i] for k, v in columns.items()} for i in range(n)]


def _src_error(prefix: str, rest: str):
    return pytest.raises(SourceError, match="^" + re.escape(prefix + rest) + "$")


# --------------------------------------------------------------------------- reading


def test_dict_and_list_of_dicts_give_the_same_arrays():
    columns = _columns()
    a = source(columns, placement="host")
    b = source(_records(columns), placement="host")
    assert len(a) == len(b) == 6
    idx = np.arange(6)
    ra, rb = a.read(idx), b.read(idx)
    assert list(ra) == list(rb) == ["image", "label", "mask"]
    for k in columns:
        assert ra[k].dtype == rb[k].dtype == columns[k].dtype
        np.testing.assert_array_equal(ra[k], columns[k])
        np.testing.assert_array_equal(rb[k], columns[k])


def test_list_of_python_scalars_matches_dict_of_arrays():
    records = [{"x": float(i) / 2, "y": i, "b": i % 2 == 0} for i in range(5)]
    a = source(records).read(np.arange(5))
    b = source(
        {"x": [r["x"] for r in records], "y": list(range(5)), "b": [r["b"] for r in records]}
    ).read(np.arange(5))
    for k in ("x", "y", "b"):
        assert a[k].dtype == b[k].dtype
        np.testing.assert_array_equal(a[k], b[k])


@settings(max_examples=30, deadline=None)
@given(indices=st.lists(st.integers(0, 49), max_size=60))
def test_read_equals_numpy_fancy_indexing(indices):
    columns = _columns(50, seed=1)
    src = source(columns, placement="host")
    idx = np.asarray(indices, dtype=np.int64)
    out = src.read(idx)
    for k, v in columns.items():
        assert out[k].shape == (len(indices), *v.shape[1:])
        np.testing.assert_array_equal(out[k], v[idx])


def test_read_returns_host_numpy_arrays():
    out = source(_columns(), placement="device").read(np.array([3, 1]))
    assert all(type(v) is np.ndarray for v in out.values())


def test_getitem_returns_one_record():
    columns = _columns()
    record = source(columns)[4]
    for k in columns:
        np.testing.assert_array_equal(record[k], columns[k][4])


def test_element_spec():
    spec = source(_columns()).element_spec()
    assert spec == {
        "image": jax.ShapeDtypeStruct((2, 3), np.float32),
        "label": jax.ShapeDtypeStruct((), np.int32),
        "mask": jax.ShapeDtypeStruct((4,), np.bool_),
    }


def test_fingerprint():
    assert source(_columns()).fingerprint() == {
        "type": "MemorySource",
        "length": 6,
        "spec": {"image": [[2, 3], "float32"], "label": [[], "int32"], "mask": [[4], "bool"]},
    }


@needs_x32
def test_dtypes_are_narrowed_to_32_bits_when_x64_is_off():
    src = source(
        {
            "f64": np.arange(3, dtype=np.float64) / 3,
            "i64": np.array([-5, 0, 2**31 - 1], np.int64),
            "u64": np.array([0, 1, 2**32 - 1], np.uint64),
            "u8": np.arange(3, dtype=np.uint8),
            "f16": np.ones(3, np.float16),
        }
    )
    dtypes = {k: s.dtype for k, s in src.element_spec().items()}
    assert dtypes == {
        "f64": np.float32,
        "i64": np.int32,
        "u64": np.uint32,
        "u8": np.uint8,
        "f16": np.float16,
    }
    np.testing.assert_array_equal(src.read(np.arange(3))["i64"], [-5, 0, 2**31 - 1])
    np.testing.assert_array_equal(src.read(np.arange(3))["u64"], [0, 1, 2**32 - 1])


# --------------------------------------------------------------------------- placement


def test_host_placement_has_no_device_arrays():
    assert source(_columns(), placement="host").device_arrays is None


@pytest.mark.parametrize("placement", ["device", "auto"])
def test_device_placement_holds_jax_arrays(placement):
    columns = _columns()
    dev = source(columns, placement=placement).device_arrays
    assert dev is not None and set(dev) == set(columns)
    for k, v in columns.items():
        assert isinstance(dev[k], jax.Array)
        assert dev[k].dtype == v.dtype
        np.testing.assert_array_equal(np.asarray(dev[k]), v)


def test_auto_placement_keeps_large_data_on_host():
    assert source(_columns(), placement="auto", device_max_bytes=10).device_arrays is None
    assert source(_columns(), placement="device", device_max_bytes=10).device_arrays is not None


@pytest.mark.parametrize("placement", ["gpu", "", None, "HOST"])
def test_invalid_placement_raises_config_error(placement):
    with pytest.raises(
        ConfigError,
        match="^"
        + re.escape(
            "MemorySourceConfig.placement: unknown placement; expected 'auto', 'host' or 'device', "
            f"found {placement!r}"
        )
        + "$",
    ):
        MemorySourceConfig(placement=placement)


# --------------------------------------------------------------------------- errors


def test_fields_with_different_lengths():
    with _src_error(
        "MemorySource",
        ": fields have different lengths (field 'y'); expected 5 "
        "records, the length of field 'x', found 4",
    ):
        source({"x": np.zeros(5), "z": np.zeros(5), "y": np.zeros(4)})


def test_error_names_the_source():
    with _src_error(
        "train_set",
        ": fields have different lengths (field 'y'); expected 2 "
        "records, the length of field 'x', found 3",
    ):
        source({"x": np.zeros(2), "y": np.zeros(3)}, name="train_set")


def test_empty_dict():
    with _src_error("MemorySource", ": no fields; expected at least one field, found {}"):
        source({})


def test_zero_records():
    with _src_error(
        "MemorySource", ": the source is empty; expected at least one record, found 0 records"
    ):
        source({"x": np.zeros((0, 3))})


def test_empty_list():
    with _src_error(
        "MemorySource", ": the source is empty; expected at least one record, found an empty list"
    ):
        source([])


def test_list_of_strings_is_not_numeric():
    with _src_error(
        "MemorySource, field 'name'",
        ": field is not a numeric array; expected a "
        "bool, integer or floating array with a record axis, found list of dtype "
        "<U2 and shape (2,)",
    ):
        source({"x": np.zeros(2), "name": ["ab", "cd"]})


def test_object_dtype_is_not_numeric():
    with _src_error(
        "MemorySource, field 'x'",
        ": field is not a numeric array; expected a "
        "bool, integer or floating array with a record axis, found ndarray of dtype "
        "object and shape (2,)",
    ):
        source({"x": np.array([1, None], dtype=object)})


def test_complex_dtype_is_not_numeric():
    with pytest.raises(SourceError, match=r"field 'x': field is not a numeric array.*complex128"):
        source({"x": np.ones(3, np.complex128)})


def test_scalar_field_has_no_record_axis():
    with _src_error(
        "MemorySource, field 'x'",
        ": field is not a numeric array; expected a "
        "bool, integer or floating array with a record axis, found float of dtype "
        "float64 and shape ()",
    ):
        source({"x": 1.0})


def test_string_in_a_record():
    with _src_error(
        "MemorySource, field 'name', record 1",
        ": field is not a numeric array; "
        "expected a bool, integer or floating array, found str of dtype <U1 and "
        "shape ()",
    ):
        source([{"name": 1}, {"name": "a"}])


def test_ragged_nested_lists():
    with _src_error(
        "MemorySource, field 'x'",
        ": value is not a rectangular array; expected "
        "an array or nested lists of equal lengths, found list",
    ):
        source({"x": [[1, 2], [3]]})


def test_ragged_nested_lists_in_a_record():
    with _src_error(
        "MemorySource, field 'x', record 0",
        ": value is not a rectangular array; "
        "expected an array or nested lists of equal lengths, found list",
    ):
        source([{"x": [[1, 2], [3]]}])


def test_records_with_different_keys():
    with _src_error(
        "MemorySource, record 2",
        ": record has other fields than record 0; expected ['a', 'b'], found ['a', 'c']",
    ):
        source([{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1, "c": 2}])


def test_record_with_missing_key():
    with _src_error(
        "MemorySource, record 1",
        ": record has other fields than record 0; expected ['a', 'b'], found ['a']",
    ):
        source([{"a": 1, "b": 2}, {"a": 1}])


def test_record_that_is_not_a_dict():
    with _src_error(
        "MemorySource, record 0",
        ": record is not a dict; expected a dict of field arrays, found int",
    ):
        source([1, 2])
    with _src_error(
        "MemorySource, record 1",
        ": record is not a dict; expected a dict of field arrays, found int",
    ):
        source([{"a": 1}, 2])


def test_records_with_same_keys_in_different_order_are_accepted():
    src = source([{"a": 1, "b": 2.0}, {"b": 3.0, "a": 4}])
    np.testing.assert_array_equal(src.read(np.arange(2))["a"], [1, 4])


def test_records_with_different_shapes():
    with _src_error(
        "MemorySource, record 2, field 'x'",
        ": record field differs from record 0; expected float32(3,), found float32(4,)",
    ):
        source([{"x": np.zeros(3)}, {"x": np.zeros(3)}, {"x": np.zeros(4)}])


def test_records_with_different_dtypes():
    with _src_error(
        "MemorySource, record 1, field 'x'",
        ": record field differs from record 0; expected int32(), found float32()",
    ):
        source([{"x": 1}, {"x": 1.5}])


@needs_x32
def test_int64_values_that_do_not_fit_in_int32():
    with _src_error(
        "MemorySource, field 'x'",
        ": 64-bit integers do not fit in 32 bits; "
        "expected values in [-2147483648, 2147483647] (or jax_enable_x64), found "
        "values in [-1, 2147483648]",
    ):
        source({"x": np.array([0, 2**31, -1], np.int64)})


@needs_x32
def test_int64_values_that_do_not_fit_in_int32_in_a_record():
    with _src_error(
        "MemorySource, field 'x', record 1",
        ": 64-bit integers do not fit in 32 "
        "bits; expected values in [-2147483648, 2147483647] (or jax_enable_x64), "
        "found values in [-2147483649, -2147483649]",
    ):
        source([{"x": 0}, {"x": -(2**31) - 1}])


@needs_x32
def test_uint64_values_that_do_not_fit_in_uint32():
    with pytest.raises(
        SourceError,
        match=r"64-bit integers do not fit in 32 bits; expected "
        r"values in \[0, 4294967295\]",
    ):
        source({"x": np.array([2**32], np.uint64)})


@pytest.mark.parametrize("data", [np.zeros(3), "abc", 5, None])
def test_unsupported_container(data):
    with _src_error(
        "MemorySource",
        ": unsupported data container; expected a dict of arrays "
        f"or a list of record dicts, found {type(data).__name__}",
    ):
        source(data)


def test_source_errors_are_value_errors():
    with pytest.raises(ValueError):
        source({})


def test_wrong_config_type():
    with pytest.raises(
        ConfigError,
        match=r"^MemorySource: wrong config type; expected "
        r"MemorySourceConfig, found dict$",
    ):
        MemorySource({}, data={"x": np.zeros(2)})  # type: ignore[arg-type]
