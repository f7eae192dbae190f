"""The helpers every source shares: empty sources, indices, columns, callable names,
and the ``random_access`` attribute."""

from __future__ import annotations

import re

import numpy as np
import pytest

from datarax.core.errors import SourceError
from datarax.sources import (
    ArrayRecordSource,
    DataSource,
    MemorySource,
    MixedSource,
    RecordSource,
    SequenceSource,
    StreamingSource,
)
from datarax.sources.base import (
    callable_name,
    check_indices,
    empty_source_error,
    select_columns,
)


def exact(message: str):
    return pytest.raises(SourceError, match=f"^{re.escape(message)}$")


def test_empty_source_error_says_the_same_everywhere():
    error = empty_source_error("ArrayRecordSource[x]")
    assert isinstance(error, SourceError)
    assert str(error) == (
        "ArrayRecordSource[x]: the source is empty; expected at least one record, found 0 records"
    )
    assert str(empty_source_error("M", found="an empty list")).endswith("found an empty list")
    with exact(
        "SequenceSource[list]: the source is empty; expected at least one record, found 0 records"
    ):
        SequenceSource([]).element_spec()


def test_check_indices_names_the_first_index_out_of_range():
    check_indices(np.array([0, 4, 2]), 5, where="src")
    check_indices(np.array([], np.int64), 0, where="src")
    with exact("src: record index out of range; expected indices in [0, 5), found index -1"):
        check_indices(np.array([3, -1, 7]), 5, where="src")
    with exact("src: record index out of range; expected indices in [0, 5), found index 7"):
        check_indices(np.array([3, 7, -1]), 5, where="src")


def test_select_columns_keeps_the_order_asked_for_and_names_a_missing_one():
    assert select_columns(None, ["a", "b", "c"], where="src") == ("a", "b", "c")
    assert select_columns(["c", "a"], ("a", "b", "c"), where="src") == ("c", "a")
    with exact("src: no column 'd'; expected one of the dataset's columns ['a', 'b'], found 'd'"):
        select_columns(["a", "d"], ["a", "b"], where="src")
    with exact(
        "src, record 3: no column 'd'; expected one of the record's fields ['a'], found 'd'"
    ):
        select_columns(["d"], ["a"], where="src, record 3", among="the record's fields")


class Decoder:
    def __call__(self, raw):
        return raw


def test_callable_name_is_module_and_qualified_name():
    assert callable_name(None) is None
    assert callable_name(np.stack) == "numpy.stack"
    assert callable_name(Decoder.__call__) == f"{__name__}.Decoder.__call__"
    assert callable_name(Decoder()) == f"{__name__}.Decoder"
    source = SequenceSource([{"x": np.int32(1)}], decoder=Decoder())
    assert source.fingerprint()["decoder"] == f"{__name__}.Decoder"


def test_random_access_is_declared_on_every_source():
    assert DataSource.random_access is True
    assert "random_access" in vars(DataSource)
    for cls in (MemorySource, MixedSource, RecordSource, SequenceSource, ArrayRecordSource):
        assert cls.random_access is True, cls
    assert StreamingSource.random_access is False
