"""GaussianNoise, SaltAndPepper and GaussianBlur against NumPy / SciPy references.

Random operators are checked draw for draw: the test recomputes each record's
random numbers from its key (``record_key(op.random_words(...))``) and builds the
expected output with NumPy. GaussianBlur is compared with
``scipy.ndimage.gaussian_filter`` (mode ``"mirror"``, ``truncate = radius / sigma``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import op_testing
import pytest
import scipy.ndimage as ndi
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from in_pipeline import assert_operator_in_pipeline
from jax.test_util import check_grads

from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.operators.image.base import uniform
from datarax.operators.image.noise import (
    GaussianBlur,
    GaussianBlurConfig,
    GaussianNoise,
    GaussianNoiseConfig,
    SaltAndPepper,
    SaltAndPepperConfig,
    record_key,
)

EPOCH, SEED = 2, 5


def apply(op, images, ids=None):
    """``op`` on a batch, compiled once per operator structure and input shape."""
    return op_testing.apply(op, images, ids, epoch=EPOCH, seed=SEED)


def words_of(op, ids):
    """The records' random words, as the operator computes them (compiled)."""
    return op_testing.words_of(op, ids, epoch=EPOCH, seed=SEED)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _draws(words, shape, kind):
    sample = jax.random.normal if kind == "normal" else jax.random.uniform
    return jax.vmap(lambda k: sample(k, shape))(record_key(words))


def normals(op, ids, shape):
    return np.asarray(_draws(words_of(op, ids), shape, "normal"))


def uniforms_per_pixel(op, ids, shape):
    return np.asarray(_draws(words_of(op, ids), shape, "uniform"))


def first_uniform(op, ids):
    return np.asarray(uniform(words_of(op, ids)[:, 0]), np.float64)


def images(shape, seed=0, low=0.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


# --------------------------------------------------------------------- GaussianNoise


def noise(sigma=0.1, seed=0, **kw):
    return GaussianNoise(GaussianNoiseConfig(sigma=sigma, **kw), rngs=nnx.Rngs(seed))


@pytest.mark.parametrize("sigma", [0.05, (0.0, 0.3)], ids=["fixed", "range"])
@pytest.mark.parametrize("shape", [(6, 8, 7, 3), (6, 9, 5)], ids=["color", "gray"])
def test_noise_is_image_plus_sigma_times_the_record_normals(sigma, shape):
    op = noise(sigma, clip=False)
    ids = np.arange(6) * 11 + 3
    x = images(shape, seed=1)
    out = apply(op, x, ids)
    low, high = (sigma, sigma) if isinstance(sigma, float) else sigma
    sigmas = low + first_uniform(op, ids) * (high - low)
    n = normals(op, ids, shape[1:])
    expected = x + sigmas.reshape(-1, *[1] * (len(shape) - 1)) * n
    # float32 arithmetic vs float64 reference
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert out.dtype == np.float32


def test_noise_clips_float_images_by_default():
    op = noise(0.5)
    x = images((4, 6, 6, 3), seed=2)
    ids = np.arange(4)
    out = apply(op, x, ids)
    expected = np.clip(x + 0.5 * normals(op, ids, (6, 6, 3)), 0.0, 1.0)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0


def test_noise_on_uint8_scales_sigma_to_255_and_rounds():
    op = noise(0.04)
    x = np.random.default_rng(3).integers(0, 256, (8, 10, 10, 3)).astype(np.uint8)
    ids = np.arange(8)
    out = apply(op, x, ids)
    assert out.dtype == np.uint8
    noisy = x.astype(np.float32) + np.float32(0.04 * 255) * normals(op, ids, (10, 10, 3))
    expected = np.clip(np.round(noisy), 0, 255)
    diff = np.abs(out.astype(np.int64) - expected)
    # float32 sums may fall on the other side of a .5 rounding boundary: at most 1 apart, rarely
    assert diff.max() <= 1 and np.mean(diff != 0) < 1e-3


def test_noise_statistics_match_sigma():
    op = noise(0.1, clip=False)
    out = apply(op, np.full((16, 32, 32), 0.5, np.float32))
    residual = out - 0.5
    # 16 * 1024 normal draws: the sample sd is within 2% of sigma (> 10 standard errors)
    assert abs(residual.std() / 0.1 - 1) < 0.02
    assert abs(residual.mean()) < 0.003


def test_noise_depends_on_record_not_position():
    op = noise((0.0, 0.2))
    ids = np.arange(20) * 7
    x = images((20, 5, 5, 3), seed=4)
    full = apply(op, x, ids)
    order = np.random.default_rng(0).permutation(20)[:9]
    np.testing.assert_array_equal(apply(op, x[order], ids[order]), full[order])


def test_noise_gradients_in_input_and_learnable_sigma():
    op = noise((0.05, 0.2), clip=False, learnable=True)
    graphdef, params, rest = nnx.split(op, nnx.Param, ...)
    x = jnp.asarray(images((3, 5, 5, 2), seed=5, low=0.2, high=0.8))
    ids = jnp.arange(3, dtype=jnp.int32)
    weights = jnp.asarray(images((3, 5, 5, 2), seed=6))

    def loss(x, sigma_span):
        p = jax.tree_util.tree_map(lambda _: sigma_span, params)
        out = nnx.merge(graphdef, p, rest).apply_batch({"image": x}, {}, ids, jnp.uint32(0), 0)[0][
            "image"
        ]
        return jnp.sum(weights * out)

    loss = jax.jit(loss)
    span = jnp.asarray([0.05, 0.2], jnp.float32)
    # float32 central differences; the loss is linear in both arguments
    check_grads(loss, (x, span), order=1, modes=("rev",), eps=1e-2, atol=1e-2, rtol=1e-2)
    grad = jax.grad(loss, argnums=1)(x, span)
    assert np.all(np.abs(np.asarray(grad)) > 0)


def test_noise_needs_rngs():
    with pytest.raises(OperatorError, match="rngs"):
        GaussianNoise(GaussianNoiseConfig(sigma=0.1))


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"sigma": -0.1}, "sigma"),
        ({"sigma": (0.3, 0.1)}, "sigma"),
        ({"sigma": "x"}, "sigma"),
        ({"clip": "yes"}, "clip"),
        ({"learnable": 1}, "learnable"),
        ({"field": ""}, "field"),
    ],
)
def test_noise_config_errors(kw, field):
    with pytest.raises(ConfigError, match=rf"GaussianNoiseConfig\.{field}"):
        GaussianNoiseConfig(**kw)


def test_noise_rejects_boolean_images():
    with pytest.raises(SchemaError, match="floating or integer"):
        noise().apply_batch(
            {"image": jnp.zeros((2, 4, 4), bool)}, {}, jnp.arange(2), jnp.uint32(0), 0
        )


# --------------------------------------------------------------------- SaltAndPepper


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("amount", [0.2, (0.05, 0.5)], ids=["fixed", "range"])
def test_salt_and_pepper_replaces_exactly_the_drawn_pixels(amount, per_channel):
    op = SaltAndPepper(
        SaltAndPepperConfig(amount=amount, salt_ratio=0.3, per_channel=per_channel),
        rngs=nnx.Rngs(1),
    )
    ids = np.arange(8) + 100
    x = np.random.default_rng(7).integers(1, 255, (8, 12, 12, 3)).astype(np.uint8)
    out = apply(op, x, ids)
    low, high = (amount, amount) if isinstance(amount, float) else amount
    amounts = (low + first_uniform(op, ids) * (high - low)).astype(np.float32)
    u = uniforms_per_pixel(op, ids, (12, 12, 3) if per_channel else (12, 12))
    if not per_channel:
        u = u[..., None]
    a = amounts.reshape(-1, 1, 1, 1)
    salt, pepper = u < a * np.float32(0.3), (u >= a * np.float32(0.3)) & (u < a)
    expected = np.where(salt, 255, np.where(pepper, 0, x))
    np.testing.assert_array_equal(out, expected)
    # x avoids 0 and 255, so the replaced counts can be read off the output
    assert np.sum(out == 255) == np.sum(np.broadcast_to(salt, x.shape))
    assert np.sum(out == 0) == np.sum(np.broadcast_to(pepper, x.shape))
    if not per_channel:  # whole pixels: all channels agree
        replaced = (out == 0) | (out == 255)
        assert np.all(replaced.all(-1) == replaced.any(-1))


def test_salt_and_pepper_fraction_and_float_values():
    op = SaltAndPepper(SaltAndPepperConfig(amount=0.1, salt_ratio=0.5), rngs=nnx.Rngs(2))
    x = np.full((8, 32, 32), 0.5, np.float32)
    out = apply(op, x)
    n = x.size
    # binomial(8192, 0.05) per kind: sd ~ 20; allow 5 sd
    assert abs(np.sum(out == 1.0) - 0.05 * n) < 100
    assert abs(np.sum(out == 0.0) - 0.05 * n) < 100
    assert set(np.unique(out).tolist()) == {0.0, 0.5, 1.0}


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"amount": 1.5}, "amount"),
        ({"amount": (0.5, 0.1)}, "amount"),
        ({"salt_ratio": -0.1}, "salt_ratio"),
        ({"salt_ratio": (0.1, 0.2)}, "salt_ratio"),
        ({"per_channel": "no"}, "per_channel"),
    ],
)
def test_salt_and_pepper_config_errors(kw, field):
    with pytest.raises(ConfigError, match=rf"SaltAndPepperConfig\.{field}"):
        SaltAndPepperConfig(**kw)


# ---------------------------------------------------------------------- GaussianBlur


def scipy_blur(x, sigma, kernel_size):
    """float64 reference: scipy.ndimage.gaussian_filter1d per axis, mirrored border."""
    k_h, k_w = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    out = x.astype(np.float64)
    for axis, k in ((0, k_h), (1, k_w)):
        radius = k // 2
        if radius:
            out = ndi.gaussian_filter1d(
                out, sigma, axis=axis, mode="mirror", truncate=radius / sigma
            )
    return out


@settings(max_examples=12, deadline=None)
@given(
    sigma=st.floats(0.3, 3.0),
    kernel=st.sampled_from([3, 5, (3, 7), (5, 1), 9]),
    channels=st.sampled_from([0, 1, 3]),
)
def test_blur_matches_scipy_gaussian_filter(sigma, kernel, channels):
    shape = (2, 11, 13) + ((channels,) if channels else ())
    x = images(shape, seed=8)
    out = apply(GaussianBlur(GaussianBlurConfig(kernel_size=kernel, sigma=sigma)), x)
    expected = np.stack([scipy_blur(r, sigma, kernel) for r in x])
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6)  # float32 vs float64


def test_blur_square_kernel_equals_gaussian_filter_in_one_call():
    x = images((3, 10, 10, 3), seed=9)
    out = apply(GaussianBlur(GaussianBlurConfig(kernel_size=7, sigma=1.5)), x)
    for r, o in zip(x, out, strict=True):
        ref = ndi.gaussian_filter(r.astype(np.float64), (1.5, 1.5, 0), mode="mirror", truncate=2.0)
        np.testing.assert_allclose(o, ref, rtol=0, atol=2e-6)


def test_blur_per_record_sigma_from_the_record_key():
    op = GaussianBlur(GaussianBlurConfig(kernel_size=5, sigma=(0.5, 2.5)), rngs=nnx.Rngs(3))
    assert op.stochastic
    ids = np.arange(6) * 5 + 1
    x = images((6, 9, 9, 2), seed=10)
    out = apply(op, x, ids)
    sigmas = np.float32(0.5) + first_uniform(op, ids).astype(np.float32) * np.float32(2.0)
    assert len(set(sigmas.tolist())) == 6
    for r, o, s in zip(x, out, sigmas, strict=True):
        np.testing.assert_allclose(o, scipy_blur(r, float(s), 5), rtol=0, atol=2e-6)


def test_blur_uint8_rounds_the_float_result():
    x = np.random.default_rng(11).integers(0, 256, (3, 12, 12, 3)).astype(np.uint8)
    out = apply(GaussianBlur(GaussianBlurConfig(kernel_size=5, sigma=1.2)), x)
    assert out.dtype == np.uint8
    expected = np.round(np.stack([scipy_blur(r, 1.2, 5) for r in x]))
    diff = np.abs(out.astype(np.int64) - expected)
    assert diff.max() <= 1 and np.mean(diff != 0) < 1e-2  # only at .5 boundaries


def test_blur_fixed_sigma_is_deterministic_and_kernel_one_is_identity():
    op = GaussianBlur(GaussianBlurConfig(kernel_size=1, sigma=1.0))
    assert not op.stochastic
    x = images((2, 5, 5, 3), seed=12)
    np.testing.assert_allclose(apply(op, x), x, rtol=0, atol=0)


def test_blur_gradients_in_input_and_learnable_sigma():
    op = GaussianBlur(
        GaussianBlurConfig(kernel_size=5, sigma=(0.8, 1.6), learnable=True), rngs=nnx.Rngs(4)
    )
    graphdef, params, rest = nnx.split(op, nnx.Param, ...)
    ids = jnp.arange(3, dtype=jnp.int32)
    x = jnp.asarray(images((3, 7, 7, 2), seed=13))
    weights = jnp.asarray(images((3, 7, 7, 2), seed=14))

    def loss(x, span):
        p = jax.tree_util.tree_map(lambda _: span, params)
        out = nnx.merge(graphdef, p, rest).apply_batch({"image": x}, {}, ids, jnp.uint32(0), 0)[0][
            "image"
        ]
        return jnp.sum(weights * out)

    loss = jax.jit(loss)
    span = jnp.asarray([0.8, 1.6], jnp.float32)
    # float32 central differences (eps 1e-2), smooth in sigma: 2% tolerance
    check_grads(loss, (x, span), order=1, modes=("rev",), eps=1e-2, atol=2e-2, rtol=2e-2)
    assert np.all(np.abs(np.asarray(jax.grad(loss, argnums=1)(x, span))) > 0)


def test_blur_kernel_larger_than_image_is_a_schema_error():
    op = GaussianBlur(GaussianBlurConfig(kernel_size=(3, 9), sigma=1.0))
    with pytest.raises(SchemaError, match="kernel radius") as exc:
        apply(op, images((2, 6, 4), seed=0))
    assert "(1, 4)" in str(exc.value) and "(6, 4)" in str(exc.value)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"kernel_size": 4}, "kernel_size"),
        ({"kernel_size": (3, 0)}, "kernel_size"),
        ({"kernel_size": -3}, "kernel_size"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": (0.0, 1.0)}, "sigma"),
        ({"sigma": (2.0, 1.0)}, "sigma"),
        ({"learnable": "true"}, "learnable"),
    ],
)
def test_blur_config_errors(kw, field):
    with pytest.raises(ConfigError, match=rf"GaussianBlurConfig\.{field}"):
        GaussianBlurConfig(**kw)


# ------------------------------------------------------------------------ in pipeline


@pytest.mark.slow
def test_noise_operators_pass_the_in_pipeline_check():
    data = {"image": np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)}
    assert_operator_in_pipeline(
        lambda: GaussianNoise(GaussianNoiseConfig(sigma=(0.0, 0.1)), rngs=nnx.Rngs(1)), data
    )
    assert_operator_in_pipeline(
        lambda: SaltAndPepper(SaltAndPepperConfig(amount=0.2), rngs=nnx.Rngs(2)),
        data,
        resume=False,
    )
    assert_operator_in_pipeline(
        lambda: GaussianBlur(GaussianBlurConfig(kernel_size=3, sigma=(0.5, 1.5)), rngs=nnx.Rngs(3)),
        data,
        resume=False,
    )
