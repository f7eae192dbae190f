"""`from_function`: dm_pix, augmax and jax.numpy functions as operators.

Reference: the same function called by hand on each record with the operator's own
per-record keys (``op.keys_for``). Outputs agree to ``rtol=atol=1e-6`` (vmapped
and per-record XLA code may round differently in the last bit).
"""

from __future__ import annotations

import functools

import augmax
import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from in_pipeline import assert_operator_in_pipeline

from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.operators.adapters import FunctionOperator, FunctionOperatorConfig, from_function


@functools.partial(jax.jit, static_argnums=(0, 5))
def _run(graphdef, state, data, record_ids, epoch, seed):
    data, _ = nnx.merge(graphdef, state).apply_batch(data, {}, record_ids, epoch, seed)
    return data


def apply(op, data, ids, *, epoch=0, seed=0):
    graphdef, state = nnx.split(op)
    ids = jnp.asarray(ids, jnp.int32)
    return _run(graphdef, state, data, ids, jnp.uint32(epoch), seed)


def images(n=6, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, (n, 8, 8, 3)), jnp.float32)


def by_hand(fn, x, keys=None):
    """``fn`` on each record separately (with its key), stacked."""
    fn = jax.jit(fn)
    rows = [fn(x[i]) if keys is None else fn(x[i], keys[i]) for i in range(x.shape[0])]
    return np.stack([np.asarray(r) for r in rows])


def record_keys(op, ids, *, epoch=0, seed=0):
    return op.keys_for(jnp.asarray(ids, jnp.int32), jnp.uint32(epoch), seed)


def test_deterministic_dm_pix_function_per_record():
    x = images()
    op = from_function(lambda image: pix.adjust_contrast(image, 1.7))
    assert not op.stochastic
    out = apply(op, {"image": x, "label": jnp.arange(6)}, np.arange(6))
    np.testing.assert_allclose(
        out["image"], by_hand(lambda im: pix.adjust_contrast(im, 1.7), x), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(out["label"], np.arange(6))  # other fields pass through


def test_partial_with_two_parameters_is_called_without_a_key():
    # adjust_gamma(image, gamma) has two positional parameters; it must not get a key.
    op = from_function(functools.partial(pix.adjust_gamma, gamma=0.5))
    x = images()
    out = apply(op, {"image": x}, np.arange(6))["image"]
    np.testing.assert_allclose(out, np.asarray(x) ** 0.5, rtol=1e-6, atol=1e-6)


def test_stochastic_dm_pix_function_gets_each_records_key():
    x = images(8)
    fn = lambda image, key: pix.random_brightness(key, image, 0.3)  # noqa: E731
    op = from_function(fn, stochastic=True, rngs=nnx.Rngs(4))
    ids = np.array([5, 2, 9, 0, 7, 3, 1, 8])
    out = np.asarray(apply(op, {"image": x}, ids, epoch=2, seed=11)["image"])
    expected = by_hand(fn, x, record_keys(op, ids, epoch=2, seed=11))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert np.ptp((out - np.asarray(x)).mean(axis=(1, 2, 3))) > 0.05  # deltas differ per record
    # a record's result depends on its id, not its position in the batch
    flipped = np.asarray(apply(op, {"image": x[::-1]}, ids[::-1], epoch=2, seed=11)["image"])
    np.testing.assert_array_equal(flipped[::-1], out)


CHAIN = augmax.Chain(
    augmax.HorizontalFlip(),
    augmax.RandomBrightness(p=1.0),
    augmax.RandomContrast(p=1.0),
)
COLOR_CHAIN = augmax.Chain(augmax.RandomBrightness(p=0.8), augmax.RandomContrast(p=0.8))


def test_augmax_chain_per_record_and_batched_agree_with_calls_by_hand():
    x = images(6, seed=1)
    ids = np.arange(10, 16)
    per_record = from_function(
        lambda image, key: CHAIN(key, image), stochastic=True, rngs=nnx.Rngs(2)
    )
    batched = from_function(
        lambda batch, keys: jax.vmap(CHAIN)(keys, batch),
        stochastic=True,
        batched=True,
        rngs=nnx.Rngs(2),
        stream_name=per_record.stream_name,
    )
    keys = record_keys(per_record, ids)
    expected = by_hand(lambda im, key: CHAIN(key, im), x, keys)
    np.testing.assert_allclose(
        apply(per_record, {"image": x}, ids)["image"], expected, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        apply(batched, {"image": x}, ids)["image"], expected, rtol=1e-6, atol=1e-6
    )


def test_batched_deterministic_function_may_change_shape_and_dtype():
    op = from_function(
        lambda batch: (batch[:, ::2, ::2] * 255).astype(jnp.uint8), batched=True, field="pixels"
    )
    out = apply(op, {"pixels": images()}, np.arange(6))["pixels"]
    assert out.shape == (6, 4, 4, 3) and out.dtype == jnp.uint8


def test_different_functions_draw_from_different_streams():
    a = from_function(lambda image, key: image + jax.random.uniform(key), stochastic=True)
    b = from_function(lambda image, key: image - jax.random.uniform(key), stochastic=True)
    assert a.stream_name != b.stream_name
    ka, kb = (jax.random.key_data(record_keys(op, [0, 1])) for op in (a, b))
    assert not np.array_equal(ka, kb)


def test_fingerprint_names_the_function():
    op = from_function(jnp.sqrt, field="x", name="root")
    assert op.name == "root"
    assert "sqrt" in op.fingerprint()["fn"]
    assert FunctionOperator(FunctionOperatorConfig(), fn=jnp.abs).name == "FunctionOperator(abs)"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"field": ""}, r"FunctionOperatorConfig\.field: must be a field name"),
        ({"stochastic": "yes"}, r"FunctionOperatorConfig\.stochastic: must be a bool"),
        ({"batched": 1}, r"FunctionOperatorConfig\.batched: must be a bool"),
        ({"stream_name": ""}, r"FunctionOperatorConfig\.stream_name: must be a non-empty string"),
    ],
)
def test_bad_configs_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FunctionOperatorConfig(**kwargs)


def test_bad_functions_raise_operator_error():
    with pytest.raises(
        OperatorError, match=r"a stochastic function must accept a key; expected fn\(image, key\)"
    ):
        from_function(lambda image: image, stochastic=True)
    with pytest.raises(OperatorError, match=r"expected fn\(images, keys\)"):
        from_function(lambda images: images, stochastic=True, batched=True)
    with pytest.raises(OperatorError, match="not a function"):
        from_function("contrast")
    with pytest.raises(OperatorError, match="needs random keys"):
        FunctionOperator(FunctionOperatorConfig(stochastic=True), fn=lambda i, k: i)


def test_bad_outputs_and_missing_fields_raise_schema_error():
    x = {"image": images()}
    with pytest.raises(
        SchemaError, match=r"FunctionOperator\(shape_of\), field 'image': .*non-array"
    ):

        def shape_of(image):
            return image.shape

        apply(from_function(shape_of), x, np.arange(6))
    with pytest.raises(
        SchemaError,
        match=r"changed the batch size; expected leading axis 6, found shape \(3, 8, 8, 3\)",
    ):
        apply(from_function(lambda b: b[:3], batched=True), x, np.arange(6))
    with pytest.raises(SchemaError, match=r"field missing; expected a field 'pixels'"):
        apply(from_function(jnp.sqrt, field="pixels"), x, np.arange(6))


# ------------------------------------------------------------------------- pipeline


def _random_brightness(image, key):
    return pix.random_brightness(key, image, 0.3)


def _color_chain(batch, keys):
    return jax.vmap(COLOR_CHAIN)(keys, batch)


# The functions are module-level so that operators built anew by each pipeline share
# one compiled program (a fresh lambda per operator would be a new program each time).
PIPELINE_OPS = {
    "dm_pix per record": lambda: from_function(
        _random_brightness, stochastic=True, rngs=nnx.Rngs(1)
    ),
    "augmax batched": lambda: from_function(_color_chain, stochastic=True, batched=True),
}


@pytest.mark.parametrize("name", list(PIPELINE_OPS))
def test_adapters_pass_the_in_pipeline_check(name):
    data = {"image": np.random.default_rng(0).uniform(0, 1, (40, 6, 6, 3)).astype(np.float32)}
    assert_operator_in_pipeline(PIPELINE_OPS[name], data)
