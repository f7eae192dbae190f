"""Tone operators against Pillow (``ImageEnhance.Sharpness``, ``ImageOps``) and NumPy.

References and tolerances:
- ``uint8``: Sharpness, Solarize (Pillow threshold ``t`` given as ``t / 255``),
  Posterize, Invert and Equalize equal Pillow exactly. AutoContrast is within 1
  level of Pillow (Pillow computes ``x * scale + offset`` in double precision and
  truncates, which can land one level below the exact ``floor(255 (x - lo) / (hi - lo))``
  datarax computes) and equals the exact formula.
- Float paths: the same formula in NumPy float64, ``atol=1e-5``.
- Gradients: ``jax.test_util.check_grads`` in float32, first order, reverse mode,
  ``eps=1e-3``, ``atol=rtol=2e-2``. Posterize and Equalize are piecewise constant:
  their gradient is zero (checked finite, not NaN); Solarize is not differentiable
  in its threshold.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from in_pipeline import assert_operator_in_pipeline
from jax.test_util import check_grads
from PIL import Image, ImageEnhance, ImageOps

from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.base import uniforms_from_words
from datarax.operators.image.tone import (
    AutoContrast,
    AutoContrastConfig,
    Equalize,
    EqualizeConfig,
    Invert,
    InvertConfig,
    Posterize,
    PosterizeConfig,
    Sharpness,
    SharpnessConfig,
    Solarize,
    SolarizeConfig,
)

# --------------------------------------------------------------------------- helpers


@functools.partial(jax.jit, static_argnums=(0, 5))
def _run(graphdef, state, images, record_ids, epoch, seed):
    op = nnx.merge(graphdef, state)
    data, _ = op.apply_batch({"image": images}, {}, record_ids, epoch, seed)
    return data["image"]


def apply(op, images, *, epoch=0, seed=0):
    """``op.apply_batch`` on a batch of images (records ``0..B-1``), compiled."""
    images = jnp.asarray(images)
    ids = jnp.arange(images.shape[0], dtype=jnp.int32)
    graphdef, state = nnx.split(op)
    return np.asarray(_run(graphdef, state, images, ids, jnp.uint32(epoch), seed))


def record_uniforms(op, n):
    words = op.random_words(jnp.arange(n, dtype=jnp.int32), jnp.uint32(0), 0)
    return np.asarray(uniforms_from_words(words, op.uniform_count))


def images_of(seed, shape, *, low=0, high=256):
    """uint8 images; each record gets its own sub-range so histograms differ."""
    rng = np.random.default_rng(seed)
    x = rng.integers(low, high, shape).astype(np.uint8)
    if shape[0] > 1:  # a narrow and a two-level record make the stretch and tables non-trivial
        x[1] = x[1] // 4 + 60
        x[-1] = np.where(x[-1] > 127, 200, 30)
    return x


def pil_each(images, fn):
    return np.stack([np.asarray(fn(Image.fromarray(im), i)) for i, im in enumerate(images)])


def astronaut(size=32):
    image = Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.Resampling.BOX)
    return np.asarray(image)[None]


def unit_images(shape=(3, 6, 7, 3), seed=3):
    return np.random.default_rng(seed).uniform(0.0, 1.0, shape).astype(np.float32)


SHAPES = st.sampled_from([(3, 7, 6, 3), (2, 9, 11), (2, 2, 5, 3)])


# ------------------------------------------------------------------------ Sharpness


@settings(max_examples=12, deadline=None)
@given(factor=st.floats(0.0, 3.0), shape=SHAPES, seed=st.integers(0, 2**16))
def test_sharpness_equals_pil(factor, shape, seed):
    x = images_of(seed, shape)
    out = apply(Sharpness(SharpnessConfig(factor=factor, learnable=True)), x)
    f32 = float(np.float32(factor))
    np.testing.assert_array_equal(
        out, pil_each(x, lambda im, _: ImageEnhance.Sharpness(im).enhance(f32))
    )


@pytest.mark.parametrize("factor", [0.0, 0.5, 2.0])
def test_sharpness_equals_pil_on_astronaut(factor):
    x = astronaut()
    out = apply(Sharpness(SharpnessConfig(factor=factor)), x)
    np.testing.assert_array_equal(
        out, pil_each(x, lambda im, _: ImageEnhance.Sharpness(im).enhance(factor))
    )


def test_sharpness_per_record_factors_equal_pil():
    x = images_of(1, (10, 6, 6, 3))
    op = Sharpness(SharpnessConfig(factor=(0.0, 2.0)), rngs=nnx.Rngs(4))
    factors = record_uniforms(op, 10)[:, 0] * np.float32(2.0)
    expected = pil_each(x, lambda im, i: ImageEnhance.Sharpness(im).enhance(float(factors[i])))
    np.testing.assert_array_equal(apply(op, x), expected)


def test_sharpness_float_path_blends_with_unrounded_smoothing():
    x = unit_images().astype(np.float64)
    kernel = np.ones((3, 3)) / 13.0
    kernel[1, 1] = 5.0 / 13.0
    smooth = x.copy()
    for dy in range(3):
        for dx in range(3):
            if (dy, dx) == (0, 0):
                smooth[:, 1:-1, 1:-1] = 0.0
            smooth[:, 1:-1, 1:-1] += (
                kernel[dy, dx] * x[:, dy : dy + x.shape[1] - 2, dx : dx + x.shape[2] - 2]
            )
    expected = np.clip(smooth + 1.6 * (x - smooth), 0.0, 1.0)
    out = apply(Sharpness(SharpnessConfig(factor=1.6)), x.astype(np.float32))
    np.testing.assert_allclose(out, expected, atol=1e-5)


# ------------------------------------------------------------------------- Solarize


@settings(max_examples=15, deadline=None)
@given(level=st.integers(0, 255), shape=SHAPES, seed=st.integers(0, 2**16))
def test_solarize_equals_pil(level, shape, seed):
    x = images_of(seed, shape)
    out = apply(Solarize(SolarizeConfig(threshold=level / 255)), x)
    np.testing.assert_array_equal(out, pil_each(x, lambda im, _: ImageOps.solarize(im, level)))


def test_solarize_every_level_threshold_equals_pil():
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    for level in range(256):
        expected = np.asarray(ImageOps.solarize(Image.fromarray(x[0]), level))
        np.testing.assert_array_equal(
            np.asarray(Solarize(SolarizeConfig(threshold=level / 255)).transform_images(x, None))[
                0
            ],
            expected,
        )


def test_solarize_float_and_per_record_thresholds():
    x = unit_images((12, 5, 5, 3))
    op = Solarize(SolarizeConfig(threshold=(0.2, 0.9)), rngs=nnx.Rngs(1))
    thresholds = np.float32(0.2) + record_uniforms(op, 12)[:, 0] * np.float32(0.7)
    t = thresholds[:, None, None, None]
    np.testing.assert_allclose(apply(op, x), np.where(x >= t, 1.0 - x, x), atol=1e-6)


# ------------------------------------------------------------------------ Posterize


@pytest.mark.parametrize("bits", range(1, 9))
def test_posterize_equals_pil(bits):
    x = np.concatenate([images_of(bits, (2, 8, 8, 3)), astronaut(8)])
    out = apply(Posterize(PosterizeConfig(bits=bits)), x)
    np.testing.assert_array_equal(out, pil_each(x, lambda im, _: ImageOps.posterize(im, bits)))


def test_posterize_float_quantises_to_levels():
    x = unit_images()
    levels = np.round(x * 255.0).astype(np.int64)
    expected = (levels & 0b11100000) / 255.0
    np.testing.assert_allclose(apply(Posterize(PosterizeConfig(bits=3)), x), expected, atol=1e-6)


def test_posterize_draws_every_bit_count_of_the_range():
    x = np.full((300, 1, 1), 255, np.uint8)
    op = Posterize(PosterizeConfig(bits=(2, 5)), rngs=nnx.Rngs(0))
    out = apply(op, x).ravel()
    kept = {255: 8, 254: 7, 252: 6, 248: 5, 240: 4, 224: 3, 192: 2}
    counts = np.bincount([kept[v] for v in out.tolist()], minlength=9)
    assert set(np.flatnonzero(counts)) == {2, 3, 4, 5}
    assert counts[2:6].min() > 50
    expected_bits = 2 + np.floor(record_uniforms(op, 300)[:, 0] * 4).astype(int)
    np.testing.assert_array_equal([kept[v] for v in out.tolist()], expected_bits)


# --------------------------------------------------------------------------- Invert


def test_invert_equals_pil_and_one_minus_x():
    x = np.concatenate([images_of(0, (2, 6, 6, 3)), astronaut(6)])
    np.testing.assert_array_equal(
        apply(Invert(InvertConfig()), x), pil_each(x, lambda im, _: ImageOps.invert(im))
    )
    f = unit_images()
    np.testing.assert_allclose(apply(Invert(InvertConfig()), f), 1.0 - f, atol=1e-7)


# --------------------------------------------------------------------- AutoContrast


def exact_autocontrast(x):
    lo = x.min(axis=(1, 2), keepdims=True).astype(np.int64)
    hi = x.max(axis=(1, 2), keepdims=True).astype(np.int64)
    span = np.where(hi > lo, hi - lo, 1)
    return np.where(hi > lo, (255 * (x - lo)) // span, x)


@settings(max_examples=15, deadline=None)
@given(
    shape=SHAPES, seed=st.integers(0, 2**16), low=st.integers(0, 120), high=st.integers(121, 256)
)
def test_autocontrast_within_one_level_of_pil(shape, seed, low, high):
    x = images_of(seed, shape, low=low, high=high)
    if len(shape) == 4:
        x[0, ..., 2] = 77  # a constant channel stays as it is
    out = apply(AutoContrast(AutoContrastConfig()), x)
    expected = pil_each(x, lambda im, _: ImageOps.autocontrast(im))
    assert set(np.unique(out.astype(int) - expected)) <= {0, 1}
    np.testing.assert_array_equal(out, exact_autocontrast(x.astype(np.int64)))


def test_autocontrast_within_one_level_of_pil_on_astronaut():
    x = astronaut() // 2 + 40
    out = apply(AutoContrast(AutoContrastConfig()), x)
    diff = out.astype(int) - pil_each(x, lambda im, _: ImageOps.autocontrast(im))
    assert set(np.unique(diff)) <= {0, 1}  # Pillow is at most one level lower
    assert np.mean(diff != 0) < 0.02
    np.testing.assert_array_equal(out, exact_autocontrast(x.astype(np.int64)))


def test_autocontrast_float_path():
    x = unit_images() * 0.5 + 0.2
    x[0, ..., 1] = 0.4
    lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    expected = np.where(hi > lo, (x - lo) / np.where(hi > lo, hi - lo, 1), x)
    np.testing.assert_allclose(apply(AutoContrast(AutoContrastConfig()), x), expected, atol=1e-5)


# ------------------------------------------------------------------------- Equalize


@settings(max_examples=15, deadline=None)
@given(
    shape=SHAPES, seed=st.integers(0, 2**16), low=st.integers(0, 200), spread=st.integers(1, 256)
)
def test_equalize_equals_pil(shape, seed, low, spread):
    x = images_of(seed, shape, low=low, high=min(256, low + spread))
    out = apply(Equalize(EqualizeConfig()), x)
    np.testing.assert_array_equal(out, pil_each(x, lambda im, _: ImageOps.equalize(im)))


def test_equalize_equals_pil_on_astronaut_and_special_histograms():
    constant = np.full((1, 8, 8, 3), 90, np.uint8)
    few = np.zeros((1, 8, 8, 3), np.uint8)
    few[0, :1] = 255  # step == 0 for a tiny second level
    x = np.concatenate([astronaut(8), constant, few, images_of(3, (1, 8, 8, 3))])
    out = apply(Equalize(EqualizeConfig()), x)
    np.testing.assert_array_equal(out, pil_each(x, lambda im, _: ImageOps.equalize(im)))


def test_equalize_float_equals_uint8_on_levels():
    x = unit_images()
    levels = np.round(x * 255).astype(np.uint8)
    expected = apply(Equalize(EqualizeConfig()), levels) / 255.0
    np.testing.assert_allclose(apply(Equalize(EqualizeConfig()), x), expected, atol=1e-6)


# ------------------------------------------------------------------------ gradients

TOL = dict(order=1, modes=["rev"], eps=1e-3, atol=2e-2, rtol=2e-2)


def _loss(op, x):
    graphdef, params, rest = nnx.split(op, nnx.Param, ...)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), jnp.float32)
    ids = jnp.arange(x.shape[0], dtype=jnp.int32)

    @jax.jit
    def loss(images, p):
        data, _ = nnx.merge(graphdef, p, rest).apply_batch(
            {"image": images}, {}, ids, jnp.uint32(0), 0
        )
        return jnp.sum(data["image"] * weights)

    return loss, params


def grad_images():
    """Float images in [0.2, 0.8], no value within 0.01 of the Solarize threshold 0.5."""
    x = unit_images((2, 5, 5, 3), seed=7) * 0.6 + 0.2
    return jnp.asarray(np.where(np.abs(x - 0.5) < 0.01, x + 0.03, x), jnp.float32)


@pytest.mark.parametrize(
    "make_op",
    [
        lambda: Sharpness(SharpnessConfig(factor=(0.5, 1.5), learnable=True), rngs=nnx.Rngs(0)),
        lambda: Solarize(SolarizeConfig(threshold=0.5)),
        lambda: Invert(InvertConfig()),
        lambda: AutoContrast(AutoContrastConfig()),
    ],
    ids=["sharpness", "solarize", "invert", "autocontrast"],
)
def test_gradients_wrt_input_and_learnable_factor(make_op):
    op = make_op()
    loss, params = _loss(op, grad_images())
    names = set(op.differentiable_in) - {"input"}
    assert len(jax.tree_util.tree_leaves(params)) == len(names)
    check_grads(loss, (grad_images(), params), **TOL)


@pytest.mark.parametrize(
    "op",
    [Posterize(PosterizeConfig(bits=3)), Equalize(EqualizeConfig())],
    ids=["posterize", "equalize"],
)
def test_piecewise_constant_operators_have_zero_gradient(op):
    assert op.differentiable_in == ()
    loss, params = _loss(op, grad_images())
    grad = np.asarray(jax.grad(loss)(grad_images(), params))
    assert np.all(grad == 0.0)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: SharpnessConfig(factor=-1.0), r"SharpnessConfig\.factor: out of range"),
        (lambda: SharpnessConfig(learnable=1), r"SharpnessConfig\.learnable: must be a bool"),
        (
            lambda: SolarizeConfig(threshold=128),
            r"SolarizeConfig\.threshold: out of range; expected values in \[0.0, 1.0\]",
        ),
        (lambda: PosterizeConfig(bits=0), r"PosterizeConfig\.bits: bits out of range"),
        (lambda: PosterizeConfig(bits=(6, 3)), r"PosterizeConfig\.bits: .*low <= high"),
        (lambda: PosterizeConfig(bits=4.0), r"PosterizeConfig\.bits: .*found 4\.0"),
        (
            lambda: InvertConfig(probability=-0.1),
            r"InvertConfig\.probability: probability out of range",
        ),
        (
            lambda: EqualizeConfig(probability="half"),
            r"EqualizeConfig\.probability: .*found 'half'",
        ),
    ],
)
def test_bad_configs_raise_config_error(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


@pytest.mark.parametrize(
    "op, images, message",
    [
        (Equalize(EqualizeConfig()), np.zeros((2, 4, 4, 2), np.uint8), r"1 or 3 channels"),
        (Posterize(PosterizeConfig()), np.zeros((2, 4, 4, 3), np.int16), r"uint8 or floating"),
        (AutoContrast(AutoContrastConfig()), np.zeros((2, 4), np.uint8), r"rank 2 or 3 per record"),
    ],
)
def test_wrong_images_raise_schema_error(op, images, message):
    with pytest.raises(SchemaError, match=rf"{type(op).__name__}, field 'image': .*{message}"):
        apply(op, images)


# ------------------------------------------------------------------------- pipeline

PIPELINE_OPS = {
    "sharpness": lambda: Sharpness(SharpnessConfig(factor=(0.0, 2.0)), rngs=nnx.Rngs(1)),
    "solarize": lambda: Solarize(SolarizeConfig(threshold=(0.3, 0.8)), rngs=nnx.Rngs(2)),
    "posterize": lambda: Posterize(PosterizeConfig(bits=(2, 6)), rngs=nnx.Rngs(3)),
    "invert": lambda: Invert(InvertConfig(probability=0.5), rngs=nnx.Rngs(4)),
    "autocontrast": lambda: AutoContrast(AutoContrastConfig(probability=0.5), rngs=nnx.Rngs(5)),
    "equalize": lambda: Equalize(EqualizeConfig(probability=0.5), rngs=nnx.Rngs(6)),
}


@pytest.mark.parametrize("name", list(PIPELINE_OPS))
def test_operators_pass_the_in_pipeline_check(name):
    images = images_of(0, (40, 6, 6, 3))
    assert_operator_in_pipeline(PIPELINE_OPS[name], {"image": images})
