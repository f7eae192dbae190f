"""Core types: Element, Batch, errors, configs, modules and key derivation."""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from datarax.core import (
    Batch,
    Config,
    ConfigError,
    DataraxError,
    DataraxModule,
    Element,
    OperatorError,
    PipelineBuildError,
    SchemaError,
    SourceError,
    StateError,
    mix64,
    record_keys,
    stream_id,
    stream_key,
)
from datarax.core.config import require_positive

# --------------------------------------------------------------------------- Element


def _element():
    return Element(
        data={"x": jnp.arange(3.0), "y": jnp.int32(1)},
        state={"s": jnp.float32(0.5)},
        metadata={"record_id": jnp.int32(7)},
    )


def test_update_data_returns_new_element_and_leaves_original():
    e = _element()
    data_before = dict(e.data)
    e2 = e.update_data({"x": e.data["x"] * 2, "z": jnp.ones(2)})
    assert e2 is not e and e2.data is not e.data
    assert set(e2.data) == {"x", "y", "z"}
    np.testing.assert_array_equal(e2.data["x"], [0.0, 2.0, 4.0])
    assert e2.data["y"] is e.data["y"]
    assert e2.state is e.state and e2.metadata is e.metadata
    assert e.data == data_before and set(e.data) == {"x", "y"}
    np.testing.assert_array_equal(e.data["x"], [0.0, 1.0, 2.0])


def test_update_state_returns_new_element_and_leaves_original():
    e = _element()
    e2 = e.update_state({"s": jnp.float32(1.5), "t": jnp.int32(3)})
    assert set(e2.state) == {"s", "t"} and float(e2.state["s"]) == 1.5
    assert set(e.state) == {"s"} and float(e.state["s"]) == 0.5
    assert e2.data is e.data


def test_replace_returns_new_element_with_copied_dicts():
    e = _element()
    new_meta = {"record_id": jnp.int32(9)}
    e2 = e.replace(metadata=new_meta)
    assert int(e2.metadata["record_id"]) == 9 and int(e.metadata["record_id"]) == 7
    assert e2.metadata is not new_meta  # copied: mutating the argument later has no effect
    new_meta["other"] = 1
    assert "other" not in e2.metadata
    assert e2.data == e.data and e2.data is not e.data
    e3 = e.replace(data={}, state={})
    assert e3.data == {} and e3.state == {} and set(e.data) == {"x", "y"}


def test_replace_rejects_unknown_attributes():
    with pytest.raises(
        TypeError, match=re.escape("Element.replace: unknown attributes ['bar', 'foo']")
    ):
        _element().replace(foo=1, bar=2, data={})


def test_element_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _element().data = {}  # type: ignore[misc]


def test_element_pytree_round_trip():
    e = _element()
    leaves, treedef = jax.tree_util.tree_flatten(e)
    assert len(leaves) == 4
    back = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(back, Element)
    np.testing.assert_array_equal(back.data["x"], e.data["x"])
    assert int(back.metadata["record_id"]) == 7
    doubled = jax.tree_util.tree_map(lambda v: v * 2, e)
    assert isinstance(doubled, Element) and float(doubled.state["s"]) == 1.0


def test_jit_takes_and_returns_element():
    @jax.jit
    def f(e: Element) -> Element:
        return e.update_data({"x": e.data["x"] + e.metadata["record_id"]})

    out = f(_element())
    assert isinstance(out, Element)
    np.testing.assert_array_equal(out.data["x"], [7.0, 8.0, 9.0])
    assert set(out.state) == {"s"} and set(out.metadata) == {"record_id"}


def test_vmap_over_elements():
    batch = Element(data={"x": jnp.arange(4.0)}, metadata={"record_id": jnp.arange(4)})
    out = jax.vmap(lambda e: e.update_data({"x": e.data["x"] * e.metadata["record_id"]}))(batch)
    np.testing.assert_array_equal(out.data["x"], [0.0, 1.0, 4.0, 9.0])


# --------------------------------------------------------------------------- Batch


def _batch(record_ids=(0, 1, 2, 3), epoch=2):
    return Batch(
        {"image": jnp.zeros((4, 2)), "label": jnp.arange(4)},
        states={"s": jnp.ones(4)},
        record_ids=None if record_ids is None else np.asarray(record_ids),
        epoch=epoch,
    )


def test_batch_reads_like_a_mapping():
    b = _batch()
    assert isinstance(b, Mapping)
    assert b["image"].shape == (4, 2)
    np.testing.assert_array_equal(b["label"], np.arange(4))
    assert "label" in b and "s" not in b and "missing" not in b
    assert list(b) == ["image", "label"]
    assert list(b.keys()) == ["image", "label"]
    assert len(b) == 2
    assert dict(b.items()).keys() == {"image", "label"}
    assert b.get("missing") is None
    with pytest.raises(KeyError):
        b["missing"]


def test_batch_size():
    assert _batch().batch_size == 4
    # A short last batch reports its true size via record_ids.
    assert _batch(record_ids=[3, 1]).batch_size == 2
    # Without record ids the first leaf's leading axis is used.
    assert _batch(record_ids=None).batch_size == 4
    assert Batch({}).batch_size == 0
    assert Batch({}).states == {} and Batch({}).epoch == 0


def test_batch_repr():
    assert repr(_batch()) == "Batch(size=4, epoch=2, {image: float32(4, 2), label: int32(4,)})"


def test_batch_pytree_round_trip():
    b = _batch(record_ids=[5, 6, 7, 8], epoch=3)
    leaves, treedef = jax.tree_util.tree_flatten(b)
    assert len(leaves) == 4  # image, label, s, record_ids; epoch is static
    back = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(back, Batch) and back.epoch == 3
    np.testing.assert_array_equal(back.record_ids, [5, 6, 7, 8])
    np.testing.assert_array_equal(back["label"], np.arange(4))
    np.testing.assert_array_equal(back.states["s"], np.ones(4))


def test_jit_takes_and_returns_batch():
    @jax.jit
    def f(b: Batch) -> Batch:
        return Batch(
            {"label": b["label"] * 2}, states=b.states, record_ids=b.record_ids, epoch=b.epoch + 1
        )

    out = f(_batch(epoch=4))
    assert isinstance(out, Batch) and out.epoch == 5
    np.testing.assert_array_equal(out["label"], [0, 2, 4, 6])
    np.testing.assert_array_equal(out.record_ids, np.arange(4))
    assert out.batch_size == 4


# --------------------------------------------------------------------------- errors


def test_error_message_format():
    e = SourceError(
        "fields have different lengths",
        where="MemorySource",
        expected="1000 records in 'label'",
        found="999",
    )
    assert str(e) == (
        "MemorySource: fields have different lengths; expected 1000 records in 'label', found 999"
    )
    assert (e.what, e.where, e.expected, e.found, e.hint) == (
        "fields have different lengths",
        "MemorySource",
        "1000 records in 'label'",
        "999",
        None,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "went wrong"),
        ({"where": "node"}, "node: went wrong"),
        ({"expected": 3}, "went wrong; expected 3"),
        ({"found": 4}, "went wrong; found 4"),
        ({"expected": 0, "found": 0}, "went wrong; expected 0, found 0"),
        (
            {"where": "n", "expected": "a", "found": "b", "hint": "Try c"},
            "n: went wrong; expected a, found b. Try c",
        ),
        ({"hint": "Try c"}, "went wrong. Try c"),
    ],
)
def test_error_message_parts(kwargs, message):
    assert str(DataraxError("went wrong", **kwargs)) == message


@pytest.mark.parametrize(
    ("cls", "bases", "not_bases"),
    [
        (ConfigError, (ValueError,), (TypeError,)),
        (SourceError, (ValueError,), (TypeError,)),
        (StateError, (ValueError,), (TypeError,)),
        (SchemaError, (TypeError,), (ValueError,)),
        (OperatorError, (), (ValueError, TypeError)),
        (PipelineBuildError, (), (ValueError, TypeError)),
    ],
)
def test_error_hierarchy(cls, bases, not_bases):
    err = cls("bad", where="w")
    assert isinstance(err, DataraxError) and isinstance(err, Exception)
    for base in bases:
        assert isinstance(err, base)
    for base in not_bases:
        assert not isinstance(err, base)
    with pytest.raises(DataraxError, match="^w: bad$"):
        raise err


@pytest.mark.parametrize(
    "cls",
    [
        DataraxError,
        ConfigError,
        SourceError,
        SchemaError,
        OperatorError,
        PipelineBuildError,
        StateError,
    ],
)
def test_errors_survive_pickling(cls):
    err = cls("went wrong", where="node 'a'", expected=[1, 2], found={"k": 3}, hint="Fix it")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert (
        str(back) == str(err) == ("node 'a': went wrong; expected [1, 2], found {'k': 3}. Fix it")
    )
    assert (back.what, back.where, back.expected, back.found, back.hint) == (
        "went wrong",
        "node 'a'",
        [1, 2],
        {"k": 3},
        "Fix it",
    )


# --------------------------------------------------------------------------- config, module


@dataclass(frozen=True)
class _ResizeConfig(Config):
    size: int = 32
    limit: int | None = None

    def validate(self) -> None:
        require_positive(self, "size")
        require_positive(self, "limit", allow_none=True)


def test_config_validates_on_construction():
    assert _ResizeConfig(size=4).to_dict() == {"size": 4, "limit": None}
    with pytest.raises(
        ConfigError,
        match=r"^_ResizeConfig\.size: must be a positive integer; "
        r"expected an int > 0, found 0$",
    ):
        _ResizeConfig(size=0)
    with pytest.raises(
        ConfigError,
        match=r"^_ResizeConfig\.limit: must be a positive integer; "
        r"expected an int > 0 or None, found False$",
    ):
        _ResizeConfig(limit=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        _ResizeConfig().size = 3  # type: ignore[misc]


def test_module_checks_config_type_and_names_itself():
    class Resize(DataraxModule):
        config_type = _ResizeConfig

    assert Resize(_ResizeConfig()).name == "Resize"
    assert Resize(_ResizeConfig(), name="r1").name == "r1"
    with pytest.raises(
        ConfigError,
        match=r"^Resize: wrong config type; expected _ResizeConfig, "
        r"found Config$",
    ):
        Resize(Config())


# --------------------------------------------------------------------------- rng


def test_mix64_is_order_sensitive_and_64_bit():
    assert mix64(0, 1) != mix64(1, 0)
    assert mix64(1, 2, 3) != mix64(3, 2, 1)
    assert mix64(5) != mix64(5, 0) != mix64(0, 5)
    assert mix64(1, 2) == mix64(1, 2)
    for v in (mix64(), mix64(0), mix64(-1), mix64(2**64 + 3), mix64(1, 2, 3)):
        assert 0 <= v < 2**64
    # Parts are taken modulo 2**64.
    assert mix64(-1) == mix64(2**64 - 1)


def test_mix64_no_collisions_over_seed_epoch_grid():
    values = {mix64(s, e) for s in range(100) for e in range(100)}
    assert len(values) == 10_000
    assert len({v & 0xFFFFFFFF for v in values}) == 10_000  # low 32 bits (Feistel round keys)


def test_mix64_is_never_seed_plus_epoch():
    for s in range(50):
        for e in range(50):
            assert mix64(s + 1, e) != mix64(s, e + 1)


def test_stream_id_is_stable_and_distinct():
    # Golden values: stream ids must not depend on the process (Python's hash is salted).
    assert stream_id("augmentations") == 1114309408
    assert stream_id("default") == 2075171070
    names = ["augmentations", "default", "a", "b", "aug", "augmentation", ""]
    ids = [stream_id(n) for n in names]
    assert len(set(ids)) == len(names)
    assert all(0 <= i < 2**31 for i in ids)
    assert stream_id("aug") == stream_id("aug")


def test_stream_key_depends_on_name_and_seed():
    base = jax.random.key(0)
    kd = lambda k: tuple(np.asarray(jax.random.key_data(k)).tolist())  # noqa: E731
    keys = {kd(stream_key(base, name, seed)) for name in ("a", "b") for seed in (0, 1, 2**40)}
    assert len(keys) == 6
    assert kd(stream_key(base, "a", 3)) == kd(stream_key(base, "a", 3))
    assert kd(stream_key(jax.random.key(1), "a", 3)) != kd(stream_key(base, "a", 3))


def _kd(keys):
    return np.asarray(jax.random.key_data(keys))


def test_record_keys_depend_only_on_record_id():
    key = jax.random.key(42)
    a = _kd(record_keys(key, 3, jnp.array([10, 20, 30, 40])))
    b = _kd(record_keys(key, 3, jnp.array([40, 30, 99, 10])))
    c = _kd(record_keys(key, 3, jnp.array([30])))
    np.testing.assert_array_equal(a[0], b[3])  # id 10 at positions 0 and 3
    np.testing.assert_array_equal(a[3], b[0])  # id 40
    np.testing.assert_array_equal(a[2], b[1])  # id 30
    np.testing.assert_array_equal(a[2], c[0])  # id 30 alone
    # Distinct ids give distinct keys.
    assert len({tuple(r) for r in a.tolist()}) == 4
    # The same id twice in one batch gives the same key twice.
    d = _kd(record_keys(key, 3, jnp.array([7, 7])))
    np.testing.assert_array_equal(d[0], d[1])


def test_record_keys_depend_on_epoch_and_key():
    ids = jnp.arange(8)
    e0 = _kd(record_keys(jax.random.key(0), 0, ids))
    e1 = _kd(record_keys(jax.random.key(0), 1, ids))
    k1 = _kd(record_keys(jax.random.key(1), 0, ids))
    for i in range(8):
        assert not np.array_equal(e0[i], e1[i])
        assert not np.array_equal(e0[i], k1[i])
    # Traced epoch under jit gives the same keys as a Python int.
    jitted = jax.jit(lambda e: record_keys(jax.random.key(0), e, ids))
    np.testing.assert_array_equal(_kd(jitted(jnp.int32(1))), e1)
