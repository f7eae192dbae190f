"""Bad inputs to pipelines: each a DataraxError naming where, expected and found."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from datarax import from_source
from datarax.core.errors import ConfigError, OperatorError, PipelineBuildError, StateError
from datarax.dag import compile
from datarax.dag.nodes import Branch, OperatorNode
from datarax.operators import ElementOperator, ElementOperatorConfig, MapOperator, MapOperatorConfig
from datarax.samplers import ShuffleSamplerConfig
from datarax.sources import MemorySource, MemorySourceConfig
from harness import snapshot


def source(n: int = 10) -> MemorySource:
    return MemorySource(MemorySourceConfig(), data={"x": np.arange(n, dtype=np.float32)})


def message(where: str, what: str, expected: str, found: str) -> str:
    return "^" + re.escape(f"{where}: {what}; expected {expected}, found {found}")


@pytest.mark.parametrize(
    ("seed", "what", "expected"),
    [
        (2**64, "seed out of range", "an int in [0, 2**64)"),
        (-1, "seed out of range", "an int in [0, 2**64)"),
        (1.5, "seed must be an int", "an int"),
        ("3", "seed must be an int", "an int"),
        (None, "seed must be an int", "an int"),
        (True, "seed must be an int", "an int"),
    ],
)
@pytest.mark.parametrize("shuffle", [False, True])
def test_a_seed_is_an_int_in_64_bits(seed, what, expected, shuffle):
    with pytest.raises(
        PipelineBuildError, match=message("DataSourceNode(seed=...)", what, expected, repr(seed))
    ):
        from_source(source(), 4, shuffle=shuffle, seed=seed)


def test_the_largest_seed_is_its_own_stream_and_numpy_ints_are_ints():
    def stream(seed, batch_size=4):
        return [snapshot(b) for b in from_source(source(40), batch_size, shuffle=True, seed=seed)]

    assert stream(2**64 - 1) != stream(0)
    assert stream(np.int64(7), np.int32(4)) == stream(7, 4)
    with pytest.raises(
        ConfigError,
        match=message(
            "ShuffleSamplerConfig.seed", "seed out of range", "an int in [0, 2**64)", str(2**64)
        ),
    ):
        ShuffleSamplerConfig(num_records=4, seed=2**64)


@pytest.mark.parametrize("shuffle", ["False", 1, None, "yes"])
def test_shuffle_is_a_bool(shuffle):
    with pytest.raises(
        PipelineBuildError,
        match=message(
            "DataSourceNode(shuffle=...)", "must be a bool", "True or False", repr(shuffle)
        ),
    ):
        from_source(source(), 4, shuffle=shuffle)


def op(fn, **config):
    return OperatorNode(ElementOperator(ElementOperatorConfig(**config), fn=fn))


def raised(node: str, found: str) -> str:
    return "^" + re.escape(
        f"{node}: the node raised while it was traced; expected a function of the batch's "
        f"fields (and a key when stochastic), found {found}"
    )


def test_a_function_reading_a_missing_field_names_its_node_and_the_field():
    def missing(element):
        return element.update_data({"x": element.data["image"]})

    with pytest.raises(
        PipelineBuildError,
        match=raised("OperatorNode(ElementOperator(missing))", "KeyError: 'image'"),
    ):
        from_source(source(), 4) >> op(missing)


def test_a_function_using_a_key_without_stochastic_names_its_node():
    def flips(element, key):
        flip = jax.random.bernoulli(key, 0.5)
        return element.update_data({"x": jnp.where(flip, -element.data["x"], element.data["x"])})

    with pytest.raises(PipelineBuildError, match=re.escape("OperatorNode(ElementOperator(flips))")):
        from_source(source(), 4) >> op(flips)


def test_a_branch_condition_returning_none_names_the_branch():
    def undecided(element):
        return None

    keep = ElementOperator(ElementOperatorConfig(), fn=lambda e: e)
    with pytest.raises(PipelineBuildError, match=r"^Branch") as info:
        from_source(source(), 4) >> Branch(undecided, keep)
    assert "found" in str(info.value)


@pytest.mark.parametrize("fn", [3, "double", None])
def test_an_operator_function_must_be_callable(fn):
    if fn is None:
        with pytest.raises(OperatorError, match=r"no function given"):
            ElementOperator(ElementOperatorConfig(), fn=fn)
        return
    found = f"{type(fn).__name__}: {fn!r}"
    with pytest.raises(
        OperatorError,
        match=message(
            "ElementOperator",
            "not a function",
            "fn=callable(element) or callable(element, key)",
            found,
        ),
    ):
        ElementOperator(ElementOperatorConfig(), fn=fn)
    with pytest.raises(OperatorError, match=r"not a function"):
        MapOperator(MapOperatorConfig(), fn=fn)


@pytest.mark.parametrize("batch_size", [11, 10**9, 2**31, np.int64(2**40)])
def test_a_batch_larger_than_the_epoch_is_computed_at_the_epochs_size(batch_size):
    pipeline = from_source(source(10), batch_size, num_epochs=2)
    assert compile(pipeline).rows == 10  # not batch_size rows
    batches = list(pipeline)
    assert [b["x"].tolist() for b in batches] == [list(map(float, range(10)))] * 2
    state = iter(pipeline).get_state()
    assert state["batching"] == [[10, False]]


def saved_state(num_epochs: int = 1) -> tuple[dict, list]:
    pipeline = from_source(source(12), 4, shuffle=True, seed=3, num_epochs=num_epochs)
    it = iter(pipeline)
    next(it)
    return it.get_state(), [snapshot(b) for b in it]


@pytest.mark.parametrize(
    "batching", [[[0, False]], [], [[4, "False"]], [[-4, False]], [[4.0, False]], "4"]
)
def test_a_state_with_a_bad_batch_grid_is_refused_and_changes_nothing(batching):
    state, rest = saved_state()
    it = iter(from_source(source(12), 4, shuffle=True, seed=3))
    it.set_state(state)
    refused = r"^PipelineIterator\.set_state(: malformed state|\['batching'\]: no batch stage)"
    with pytest.raises(StateError, match=refused):
        it.set_state({**state, "batching": batching})
    assert [snapshot(b) for b in it] == rest  # the refused state changed nothing


def test_a_state_past_the_last_epoch_is_refused():
    state, _ = saved_state(num_epochs=3)
    it = iter(from_source(source(12), 4, shuffle=True, seed=3, num_epochs=3))
    with pytest.raises(
        StateError,
        match=message(
            "PipelineIterator.set_state",
            "the state is past this pipeline's last epoch",
            "epoch <= first_epoch + num_epochs = 3",
            "epoch=4, first_epoch=0",
        ),
    ):
        it.set_state({**state, "epoch": 4})
    it.set_state({**state, "epoch": 3, "position": 0})  # exhausted: nothing left, no error
    assert list(it) == []


def test_files_that_cannot_be_written_are_file_errors_naming_the_path(tmp_path):
    from datarax.checkpoint import save_iterator_state
    from datarax.core.errors import FileError
    from datarax.sources import write_array_record

    it = iter(from_source(source(), 4))
    missing = tmp_path / "no" / "such" / "state.json"
    expected = "expected a writable file in an existing folder, found No such file or directory"
    with pytest.raises(
        FileError, match=re.escape(f"{missing}: cannot write the iterator state; {expected}")
    ):
        save_iterator_state(missing, it)
    drawing = tmp_path / "missing" / "graph.png"
    with pytest.raises(
        FileError, match=re.escape(f"{drawing}: cannot write the drawing; {expected}")
    ):
        from_source(source(), 4).plot(str(drawing))
    assert isinstance(FileError("x"), OSError)  # existing `except OSError` still catches it
    records = [{"x": np.arange(3)}]
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        target = read_only / "data.arrayrecord"
        try:
            write_array_record(target, records)
        except FileError as error:
            assert str(error).startswith(f"{target}: cannot write the record file")
        else:  # root ignores the folder's mode: nothing to refuse
            assert target.exists()
    finally:
        read_only.chmod(0o700)
