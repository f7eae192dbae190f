"""ElementOperator and MapOperator: per-record functions vmapped over a batch."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from datarax.core.element import Element
from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.core.rng import record_keys, stream_key
from datarax.operators import (
    ElementOperator,
    ElementOperatorConfig,
    MapOperator,
    MapOperatorConfig,
)

B = 6


def _batch():
    data = {
        "x": jnp.arange(B * 3, dtype=jnp.float32).reshape(B, 3),
        "y": jnp.arange(B, dtype=jnp.int32) * 10,
    }
    states = {"s": jnp.arange(B, dtype=jnp.float32) / 2}
    record_ids = jnp.array([17, 3, 250, 9, 0, 42], dtype=jnp.int32)
    return data, states, record_ids


def _row(tree, i):
    return jax.tree_util.tree_map(lambda v: v[i], tree)


def det_fn(e: Element, key=None) -> Element:
    x = e.data["x"] * 2 + e.metadata["record_id"].astype(jnp.float32)
    return e.update_data({"x": x, "sum": jnp.sum(x)}).update_state({"s": e.state["s"] + 1})


def noisy(e: Element, key) -> Element:
    noise = jax.random.normal(key, e.data["x"].shape)
    return e.update_data({"x": e.data["x"] + noise}).update_state({"u": jax.random.uniform(key)})


def stochastic_op(seed=0, stream_name=None, fn=noisy):
    return ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name=stream_name), fn=fn, rngs=nnx.Rngs(seed)
    )


# --------------------------------------------------------------------------- __call__


def test_deterministic_call_on_one_element():
    op = ElementOperator(
        ElementOperatorConfig(), fn=lambda e, key=None: e.update_data({"x": e.data["x"] * 2})
    )
    e = Element(data={"x": jnp.float32(1.5), "y": jnp.int32(4)})
    out = op(e)
    assert float(out.data["x"]) == 3.0
    assert int(out.data["y"]) == 4
    assert float(e.data["x"]) == 1.5  # input untouched


def test_deterministic_one_arg_fn_is_called_without_key():
    op = ElementOperator(ElementOperatorConfig(), fn=lambda e: e.update_data({"x": -e.data["x"]}))
    assert float(op(Element(data={"x": jnp.float32(2.0)})).data["x"]) == -2.0


def test_stochastic_call_on_one_element():
    op = stochastic_op()
    e = Element(data={"x": jnp.zeros(4)})
    k1, k2 = jax.random.key(1), jax.random.key(2)
    a, a2, b = op(e, k1), op(e, k1), op(e, k2)
    np.testing.assert_array_equal(a.data["x"], a2.data["x"])
    np.testing.assert_array_equal(a.data["x"], jax.random.normal(k1, (4,)))
    assert not np.array_equal(a.data["x"], b.data["x"])


def test_stochastic_call_without_key_raises():
    with pytest.raises(
        OperatorError,
        match=r"^ElementOperator\(noisy\): a stochastic operator "
        r"needs a key; expected op\(element, key\), found key=None$",
    ):
        stochastic_op()(Element(data={"x": jnp.zeros(2)}))


# --------------------------------------------------------------------------- apply_batch


def test_deterministic_apply_batch_equals_per_record_loop():
    op = ElementOperator(ElementOperatorConfig(), fn=det_fn)
    data, states, rids = _batch()
    out_data, out_states = op.apply_batch(data, states, rids, jnp.int32(3), 0)
    assert set(out_data) == {"x", "y", "sum"} and set(out_states) == {"s"}
    for i in range(B):
        ref = op(Element(_row(data, i), _row(states, i), {"record_id": rids[i]}))
        for k in out_data:
            np.testing.assert_allclose(out_data[k][i], ref.data[k], rtol=1e-6)
        np.testing.assert_allclose(out_states["s"][i], ref.state["s"], rtol=1e-6)
    np.testing.assert_array_equal(out_data["y"], data["y"])


@pytest.mark.parametrize("epoch", [0, 5])
@pytest.mark.parametrize("seed", [0, 123456789])
def test_stochastic_apply_batch_equals_per_record_loop(epoch, seed):
    op = stochastic_op(seed=7, stream_name="aug")
    data, states, rids = _batch()
    out_data, out_states = op.apply_batch(data, states, rids, jnp.int32(epoch), seed)
    # The per-record keys, derived independently of the operator's helper.
    keys = record_keys(stream_key(op.base_key[...], "aug", seed), epoch, rids)
    for i in range(B):
        ref = op(Element(_row(data, i), _row(states, i), {"record_id": rids[i]}), keys[i])
        np.testing.assert_allclose(out_data["x"][i], ref.data["x"], rtol=1e-6)
        np.testing.assert_allclose(out_states["u"][i], ref.state["u"], rtol=1e-6)
    assert not np.allclose(out_data["x"], data["x"])


def test_stochastic_output_depends_only_on_record_id_epoch_and_seed():
    op = stochastic_op(seed=3)
    data, states, rids = _batch()
    epoch = jnp.int32(2)
    out, st = op.apply_batch(data, states, rids, epoch, 11)

    perm = np.array([4, 2, 0, 5, 1, 3])
    p_out, p_st = op.apply_batch(_row(data, perm), _row(states, perm), rids[perm], epoch, 11)
    np.testing.assert_allclose(p_out["x"], np.asarray(out["x"])[perm], rtol=1e-6)
    np.testing.assert_allclose(p_st["u"], np.asarray(st["u"])[perm], rtol=1e-6)

    # A sub-batch (different batch size and positions) gives the same per-record outputs.
    sub = np.array([5, 1])
    s_out, _ = op.apply_batch(_row(data, sub), _row(states, sub), rids[sub], epoch, 11)
    np.testing.assert_allclose(s_out["x"], np.asarray(out["x"])[sub], rtol=1e-6)

    # Same identity, same result: rerunning is deterministic.
    again, _ = op.apply_batch(data, states, rids, epoch, 11)
    np.testing.assert_array_equal(again["x"], out["x"])

    # Records with the same input but different ids get different noise.
    same = {"x": jnp.zeros((B, 3)), "y": data["y"]}
    z, _ = op.apply_batch(same, states, rids, epoch, 11)
    assert len({tuple(np.asarray(r).tolist()) for r in z["x"]}) == B


def test_different_epochs_and_seeds_give_different_keys_and_outputs():
    op = stochastic_op()
    data, states, rids = _batch()
    k0 = jax.random.key_data(op.keys_for(rids, jnp.int32(0), 0))
    k1 = jax.random.key_data(op.keys_for(rids, jnp.int32(1), 0))
    ks = jax.random.key_data(op.keys_for(rids, jnp.int32(0), 1))
    assert k0.shape[0] == B
    for i in range(B):
        assert not np.array_equal(k0[i], k1[i])
        assert not np.array_equal(k0[i], ks[i])
    # (seed+1, epoch) vs (seed, epoch+1) are unrelated too.
    k10 = jax.random.key_data(op.keys_for(rids, jnp.int32(0), 1))
    k01 = jax.random.key_data(op.keys_for(rids, jnp.int32(1), 0))
    assert not np.array_equal(k10, k01)
    out0, _ = op.apply_batch(data, states, rids, jnp.int32(0), 0)
    out1, _ = op.apply_batch(data, states, rids, jnp.int32(1), 0)
    for i in range(B):
        assert not np.allclose(out0["x"][i], out1["x"][i])


def test_stream_names_give_different_keys_and_rngs_stream_is_used():
    rngs = nnx.Rngs(default=0, aug=1)
    a = ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name="aug"), fn=noisy, rngs=rngs
    )
    b = ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name="other"), fn=noisy, rngs=rngs
    )
    np.testing.assert_array_equal(
        jax.random.key_data(a.base_key[...]), jax.random.key_data(rngs.aug.key[...])
    )
    np.testing.assert_array_equal(
        jax.random.key_data(b.base_key[...]), jax.random.key_data(rngs.default.key[...])
    )
    # Building an operator reads the stream's key without drawing from it.
    assert int(rngs.default.count[...]) == 0 and int(rngs.aug.count[...]) == 0
    # Same base key, different stream name: different per-record keys.
    c = ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name="third"), fn=noisy, rngs=nnx.Rngs(0)
    )
    rids = jnp.arange(4)
    assert not np.array_equal(
        jax.random.key_data(b.keys_for(rids, 0, 0)), jax.random.key_data(c.keys_for(rids, 0, 0))
    )


def test_apply_batch_under_jit_matches_eager():
    op = stochastic_op(seed=5)
    data, states, rids = _batch()
    eager, _ = op.apply_batch(data, states, rids, jnp.int32(1), 3)
    jitted = jax.jit(lambda d, s, r, e: op.apply_batch(d, s, r, e, 3))
    out, _ = jitted(data, states, rids, jnp.int32(1))
    np.testing.assert_allclose(out["x"], eager["x"], rtol=1e-5, atol=1e-6)


def test_subclass_overriding_transform_with_param():
    class Scale(ElementOperator):
        def __init__(self):
            super().__init__(ElementOperatorConfig())
            self.w = nnx.Param(jnp.float32(3.0))

        def transform(self, element, key):
            return element.update_data({"x": element.data["x"] * self.w[...]})

    op = Scale()
    assert op.name == "Scale"
    data, states, rids = _batch()
    out, _ = op.apply_batch(data, states, rids, jnp.int32(0), 0)
    np.testing.assert_allclose(out["x"], data["x"] * 3)


# --------------------------------------------------------------------------- errors


def test_stochastic_without_rngs_raises():
    with pytest.raises(
        OperatorError,
        match=r"^ElementOperator\(noisy\): a stochastic operator "
        r"needs random keys; expected rngs=nnx\.Rngs\(seed\), found rngs=None$",
    ):
        ElementOperator(ElementOperatorConfig(stochastic=True), fn=noisy)


def test_stochastic_map_without_rngs_mentions_rngs():
    with pytest.raises(OperatorError, match="rngs"):
        MapOperator(MapOperatorConfig(stochastic=True), fn=lambda x, k: x)


def test_non_element_return_raises_schema_error():
    def bad(e):
        return {"x": e.data["x"]}

    op = ElementOperator(ElementOperatorConfig(), fn=bad)
    msg = (
        r"^ElementOperator\(bad\): function must return an Element; expected Element "
        r"\(use element\.update_data\(\.\.\.\)\), found dict$"
    )
    with pytest.raises(SchemaError, match=msg):
        op(Element(data={"x": jnp.zeros(2)}))
    data, states, rids = _batch()
    # Raised while tracing under vmap, JAX adds a traceback note, so no "$" anchor here.
    with pytest.raises(SchemaError, match=msg.rstrip("$")):
        op.apply_batch(data, states, rids, jnp.int32(0), 0)


def test_non_array_value_raises_schema_error():
    op = ElementOperator(ElementOperatorConfig(), fn=lambda e: e.update_data({"x": "text"}))
    with pytest.raises(
        SchemaError,
        match=r"^ElementOperator, field .*'x'.*: function returned a "
        r"non-array value; expected a JAX array, found str$",
    ):
        op(Element(data={"x": jnp.zeros(2)}))


def test_stochastic_element_fn_without_key_raises():
    def one_arg(e):
        return e

    with pytest.raises(
        OperatorError,
        match=r"^ElementOperator\(one_arg\): a stochastic "
        r"operator's function must accept a key; expected fn\(element, key\), "
        r"found fn\(element\)$",
    ):
        ElementOperator(ElementOperatorConfig(stochastic=True), fn=one_arg, rngs=nnx.Rngs(0))


def test_missing_fn_raises():
    with pytest.raises(
        OperatorError,
        match=r"^ElementOperator: no function given; expected "
        r"fn=callable\(element, key\), found fn=None$",
    ):
        ElementOperator(ElementOperatorConfig())


def test_fn_without_element_argument_raises():
    with pytest.raises(
        OperatorError,
        match=r"function takes no element argument; expected "
        r"fn\(element\) or fn\(element, key\), found fn\(\)$",
    ):
        ElementOperator(ElementOperatorConfig(), fn=lambda: None)


def test_wrong_config_type_raises():
    from datarax.samplers import SequentialSamplerConfig

    with pytest.raises(
        ConfigError,
        match=r"^ElementOperator: wrong config type; expected "
        r"ElementOperatorConfig, found SequentialSamplerConfig$",
    ):
        ElementOperator(SequentialSamplerConfig(), fn=det_fn)


def _growing_fn(field="x"):
    calls = [0]

    def grow(e):
        calls[0] += 1
        return e.update_data({field: jnp.zeros((calls[0],), jnp.float32)})

    return grow


def test_output_shape_change_between_traces_raises_schema_error():
    op = ElementOperator(ElementOperatorConfig(), fn=_growing_fn("x"))
    data, states, rids = _batch()
    op.apply_batch(data, states, rids, jnp.int32(0), 0)
    with pytest.raises(SchemaError, match=r"changed between calls") as info:
        op.apply_batch(data, states, rids, jnp.int32(0), 0)
    msg = str(info.value)
    assert "x" in msg.split(":")[0]  # the field is named in the "where" part
    assert msg.endswith("expected float32(1,), found float32(2,)")


def test_output_dtype_change_between_traces_raises_schema_error():
    calls = [0]

    def flip(e):
        calls[0] += 1
        return e.update_data({"y": e.data["y"].astype(jnp.float32 if calls[0] > 1 else jnp.int32)})

    op = ElementOperator(ElementOperatorConfig(), fn=flip)
    data, states, rids = _batch()
    op.apply_batch(data, states, rids, jnp.int32(0), 0)
    with pytest.raises(
        SchemaError,
        match=r"changed between calls.*expected int32\(\), "
        r"found float32\(\)",
    ):
        op.apply_batch(data, states, rids, jnp.int32(0), 0)


def test_output_change_error_names_the_field_cleanly():
    op = ElementOperator(ElementOperatorConfig(), fn=_growing_fn("x"))
    data, states, rids = _batch()
    op.apply_batch(data, states, rids, jnp.int32(0), 0)
    with pytest.raises(
        SchemaError,
        match=re.escape(
            "ElementOperator(grow), field 'x': operator output changed between calls with the same "
            "input; expected float32(1,), found float32(2,)"
        ),
    ):
        op.apply_batch(data, states, rids, jnp.int32(0), 0)


def test_consistent_outputs_do_not_raise_across_batch_sizes_and_input_specs():
    op = ElementOperator(ElementOperatorConfig(), fn=det_fn)
    data, states, rids = _batch()
    op.apply_batch(data, states, rids, jnp.int32(0), 0)
    op.apply_batch(_row(data, slice(0, 2)), _row(states, slice(0, 2)), rids[:2], jnp.int32(1), 0)
    # A different input spec may give a different output spec.
    wide = {"x": jnp.zeros((2, 5)), "y": jnp.zeros(2, jnp.int32)}
    out, _ = op.apply_batch(wide, {"s": jnp.zeros(2)}, rids[:2], jnp.int32(0), 0)
    assert out["x"].shape == (2, 5)


@pytest.mark.parametrize(
    ("kwargs", "field", "expected", "found"),
    [
        ({"stream_name": ""}, "stream_name", "a name such as 'augmentations'", "''"),
        ({"stream_name": 3}, "stream_name", "a name such as 'augmentations'", "3"),
        ({"stochastic": "yes"}, "stochastic", "True or False", "'yes'"),
        ({"stochastic": 1}, "stochastic", "True or False", "1"),
    ],
)
@pytest.mark.parametrize("config_cls", [ElementOperatorConfig, MapOperatorConfig])
def test_config_validation(config_cls, kwargs, field, expected, found):
    what = "must be a bool" if field == "stochastic" else "must be a non-empty string or None"
    with pytest.raises(
        ConfigError,
        match="^"
        + re.escape(f"{config_cls.__name__}.{field}: {what}; expected {expected}, found {found}")
        + "$",
    ):
        config_cls(**kwargs)


@pytest.mark.parametrize("fields", ["image", ("a", 1), [2]])
def test_map_config_rejects_bad_fields(fields):
    with pytest.raises(
        ConfigError,
        match="^"
        + re.escape(
            "MapOperatorConfig.fields: must be a tuple of field names or None; expected e.g. "
            f"('image',), found {fields!r}"
        )
        + "$",
    ):
        MapOperatorConfig(fields=fields)


# --------------------------------------------------------------------------- MapOperator


def test_map_chosen_fields_leaves_others_untouched():
    op = MapOperator(MapOperatorConfig(fields=("x",)), fn=lambda v: v / 2)
    e = Element(
        data={"x": jnp.float32(3.0), "y": jnp.int32(1), "z": jnp.ones(2)},
        state={"s": jnp.float32(4.0)},
    )
    out = op(e)
    assert float(out.data["x"]) == 1.5
    assert out.data["y"] is e.data["y"] and out.data["z"] is e.data["z"]
    assert out.state["s"] is e.state["s"]
    assert float(e.data["x"]) == 3.0

    data, states, rids = _batch()
    out_data, out_states = op.apply_batch(data, states, rids, jnp.int32(0), 0)
    np.testing.assert_allclose(out_data["x"], data["x"] / 2)
    np.testing.assert_array_equal(out_data["y"], data["y"])
    np.testing.assert_array_equal(out_states["s"], states["s"])


def test_map_all_fields_and_nested_leaves():
    op = MapOperator(MapOperatorConfig(), fn=lambda v: v + 1)
    e = Element(data={"a": jnp.float32(1.0), "pair": {"p": jnp.int32(2), "q": jnp.zeros(2)}})
    out = op(e)
    assert float(out.data["a"]) == 2.0
    assert int(out.data["pair"]["p"]) == 3
    np.testing.assert_array_equal(out.data["pair"]["q"], [1.0, 1.0])


def test_map_missing_field_raises_schema_error():
    op = MapOperator(MapOperatorConfig(fields=("z",)), fn=lambda v: v)
    with pytest.raises(
        SchemaError,
        match=r"^MapOperator: field not in the element; expected "
        r"one of \['x', 'y'\], found 'z'$",
    ):
        op(Element(data={"y": jnp.zeros(1), "x": jnp.zeros(1)}))


def test_map_stochastic_with_one_arg_fn_raises():
    def half(v):
        return v / 2

    with pytest.raises(
        OperatorError,
        match=r"^MapOperator\(half\): a stochastic map's function "
        r"must accept a key; expected fn\(leaf, key\), found fn\(leaf\)$",
    ):
        MapOperator(MapOperatorConfig(stochastic=True), fn=half, rngs=nnx.Rngs(0))


def test_map_stochastic_gives_each_leaf_its_own_key():
    op = MapOperator(
        MapOperatorConfig(stochastic=True, fields=("a", "b")),
        fn=lambda v, k: v + jax.random.normal(k, v.shape),
        rngs=nnx.Rngs(0),
    )
    data = {"a": jnp.zeros((B, 4)), "b": jnp.zeros((B, 4)), "c": jnp.zeros((B, 4))}
    _, states, rids = _batch()
    out, _ = op.apply_batch(data, {}, rids, jnp.int32(0), 0)
    for i in range(B):
        assert not np.allclose(out["a"][i], out["b"][i])
    np.testing.assert_array_equal(out["c"], data["c"])
    # Still a function of the record only: permuting the batch permutes the outputs.
    perm = np.array([1, 0, 3, 2, 5, 4])
    p, _ = op.apply_batch(_row(data, perm), {}, rids[perm], jnp.int32(0), 0)
    np.testing.assert_allclose(p["a"], np.asarray(out["a"])[perm], rtol=1e-6)


def test_map_deterministic_two_arg_fn_gets_none_key():
    seen = []

    def fn(v, key):
        seen.append(key)
        return v * 3

    op = MapOperator(MapOperatorConfig(), fn=fn)
    assert float(op(Element(data={"x": jnp.float32(2.0)})).data["x"]) == 6.0
    assert seen == [None]


def test_map_with_jnp_ufunc():
    op = MapOperator(MapOperatorConfig(), fn=jnp.negative)
    np.testing.assert_array_equal(
        op(Element(data={"x": jnp.arange(3.0)})).data["x"], [0.0, -1.0, -2.0]
    )


def test_fingerprint_names_the_function():
    op = ElementOperator(ElementOperatorConfig(stream_name="aug"), fn=det_fn, name="double")
    fp = op.fingerprint()
    assert fp["type"] == "ElementOperator" and fp["name"] == "double"
    assert re.fullmatch(r"det_fn:[0-9a-f]{16}", fp["fn"])
    assert fp["config"] == {"stochastic": "False", "stream_name": "'aug'"}
