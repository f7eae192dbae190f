"""Colour operators against Pillow, colorsys, scikit-image and NumPy.

References and tolerances:
- Brightness, Contrast, Saturation (``PIL.ImageEnhance``) and Grayscale
  (``convert("L")``) on ``uint8``: exact equality.
- Hue on ``uint8``: ``colorsys`` in float64, rounded: at most 1 level (float32
  rounding at .5 boundaries). Gamma on ``uint8``: ``skimage.exposure.adjust_gamma``,
  at most 1 level.
- Float paths: the same formula in NumPy float64, ``atol=1e-5``.
- Gradients: ``jax.test_util.check_grads`` in float32, first order, reverse mode,
  ``eps=1e-3``, ``atol=rtol=2e-2`` (inputs kept away from clipping and hue-sector kinks).
"""

from __future__ import annotations

import colorsys
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import skimage.exposure
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from in_pipeline import assert_operator_in_pipeline
from jax.test_util import check_grads
from PIL import Image, ImageEnhance

from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.operators.base import uniforms_from_words
from datarax.operators.image.color import (
    Brightness,
    BrightnessConfig,
    ColorJitter,
    ColorJitterConfig,
    Contrast,
    ContrastConfig,
    Gamma,
    GammaConfig,
    Grayscale,
    GrayscaleConfig,
    Hue,
    HueConfig,
    Saturation,
    SaturationConfig,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
)

# --------------------------------------------------------------------------- helpers


@functools.partial(jax.jit, static_argnums=(0, 5))
def _run(graphdef, state, images, record_ids, epoch, seed):
    op = nnx.merge(graphdef, state)
    data, _ = op.apply_batch({"image": images}, {}, record_ids, epoch, seed)
    return data["image"]


def apply(op, images, ids=None, *, epoch=0, seed=0):
    """``op.apply_batch`` on a batch of images, compiled once per (operator kind, shape)."""
    images = jnp.asarray(images)
    ids = jnp.arange(images.shape[0]) if ids is None else jnp.asarray(ids)
    graphdef, state = nnx.split(op)
    return np.asarray(_run(graphdef, state, images, ids.astype(jnp.int32), jnp.uint32(epoch), seed))


def record_uniforms(op, n, *, epoch=0, seed=0):
    """The uniforms ``op`` draws for records ``0..n-1`` (as ``transform_images`` gets them)."""
    words = op.random_words(jnp.arange(n, dtype=jnp.int32), jnp.uint32(epoch), seed)
    return np.asarray(uniforms_from_words(words, op.uniform_count))


def random_uint8(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def pil_each(images, fn):
    """``fn(PIL image, record index)`` for each record, stacked back into an array."""
    return np.stack([np.asarray(fn(Image.fromarray(im), i)) for i, im in enumerate(images)])


def astronaut(size=32):
    """skimage's astronaut photo, downscaled with PIL's box filter to ``size`` x ``size``."""
    image = Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.Resampling.BOX)
    return np.asarray(image)[None]


def luma64(x):
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


ENHANCERS = [
    (Brightness, BrightnessConfig, ImageEnhance.Brightness),
    (Contrast, ContrastConfig, ImageEnhance.Contrast),
    (Saturation, SaturationConfig, ImageEnhance.Color),
]
ENHANCER_IDS = ["brightness", "contrast", "saturation"]


# ------------------------------------------------------------- uint8 against Pillow


@pytest.mark.parametrize("op_type, config_type, enhancer", ENHANCERS, ids=ENHANCER_IDS)
@settings(max_examples=15, deadline=None)
@given(
    factor=st.floats(0.0, 2.5, allow_nan=False),
    shape=st.sampled_from([(2, 5, 7, 3), (3, 12, 9, 3)]),
    seed=st.integers(0, 2**16),
)
def test_enhancers_equal_pil_on_random_images(op_type, config_type, enhancer, factor, shape, seed):
    # learnable=True makes the factor a traced Param: one compilation per shape.
    x = random_uint8(shape, seed)
    out = apply(op_type(config_type(factor=factor, learnable=True)), x)
    f32 = float(np.float32(factor))  # the op computes in float32; PIL converts to C float
    expected = pil_each(x, lambda im, _: enhancer(im).enhance(f32))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("op_type, config_type, enhancer", ENHANCERS, ids=ENHANCER_IDS)
@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0, 1.7])
def test_enhancers_equal_pil_on_astronaut(op_type, config_type, enhancer, factor):
    x = astronaut()
    out = apply(op_type(config_type(factor=factor)), x)
    np.testing.assert_array_equal(out, pil_each(x, lambda im, _: enhancer(im).enhance(factor)))


@pytest.mark.parametrize("op_type, config_type, enhancer", ENHANCERS, ids=ENHANCER_IDS)
def test_per_record_factors_equal_pil(op_type, config_type, enhancer):
    x = random_uint8((12, 6, 6, 3), 4)
    op = op_type(config_type(factor=(0.2, 1.8)), rngs=nnx.Rngs(5))
    factors = 0.2 + record_uniforms(op, 12)[:, 0] * np.float32(1.6)
    assert np.ptp(factors) > 0.5  # really per record
    out = apply(op, x)
    expected = pil_each(x, lambda im, i: enhancer(im).enhance(float(factors[i])))
    np.testing.assert_array_equal(out, expected)


def test_contrast_and_brightness_on_one_channel_equal_pil():
    x = random_uint8((3, 7, 9), 2)
    for op_type, config_type, enhancer in ENHANCERS[:2]:
        out = apply(op_type(config_type(factor=1.4)), x)
        assert out.shape == x.shape
        expected = pil_each(x, lambda im, _, e=enhancer: e(im).enhance(1.4))
        np.testing.assert_array_equal(out, expected)
        with_axis = apply(op_type(config_type(factor=1.4)), x[..., None])
        np.testing.assert_array_equal(with_axis[..., 0], expected)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_grayscale_equals_pil_convert_l(seed):
    x = random_uint8((3, 9, 8, 3), seed)
    one = apply(Grayscale(GrayscaleConfig(output_channels=1)), x)
    three = apply(Grayscale(GrayscaleConfig(output_channels=3)), x)
    expected = pil_each(x, lambda im, _: im.convert("L"))
    np.testing.assert_array_equal(one, expected[..., None])
    np.testing.assert_array_equal(three, np.repeat(expected[..., None], 3, axis=-1))


def test_grayscale_equals_pil_on_astronaut():
    x = astronaut()
    expected = pil_each(x, lambda im, _: im.convert("L"))
    np.testing.assert_array_equal(apply(Grayscale(GrayscaleConfig()), x)[..., 0], expected)


def hue_colorsys(x, shift):
    """Hue rotation of float RGB in [0, 1] with colorsys (float64), pixel by pixel."""
    flat = x.reshape(-1, 3).astype(np.float64)
    out = []
    for r, g, b in flat:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        out.append(colorsys.hsv_to_rgb((h + shift) % 1.0, s, v))
    return np.asarray(out).reshape(x.shape)


@settings(max_examples=10, deadline=None)
@given(shift=st.floats(-0.5, 0.5), seed=st.integers(0, 2**16))
def test_hue_uint8_within_one_level_of_colorsys(shift, seed):
    x = random_uint8((2, 6, 5, 3), seed)
    out = apply(Hue(HueConfig(shift=shift, learnable=True)), x)
    s32 = float(np.float32(shift))
    expected = np.clip(np.round(hue_colorsys(x / 255.0, s32) * 255.0), 0, 255)
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_hue_on_astronaut_within_one_level_of_colorsys():
    x = astronaut(16)
    out = apply(Hue(HueConfig(shift=0.3)), x)
    expected = np.clip(np.round(hue_colorsys(x / 255.0, 0.3) * 255.0), 0, 255)
    diff = np.abs(out.astype(int) - expected)
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01


def test_hue_zero_shift_is_identity_on_uint8():
    x = random_uint8((2, 8, 8, 3), 9)
    np.testing.assert_array_equal(apply(Hue(HueConfig(shift=0.0)), x), x)


@pytest.mark.parametrize("gamma, gain", [(0.5, 1.0), (1.0, 1.0), (2.2, 0.9), (0.8, 1.3)])
def test_gamma_uint8_within_one_level_of_skimage(gamma, gain):
    x = np.concatenate([astronaut(16), random_uint8((2, 16, 16, 3), 1)])
    out = apply(Gamma(GammaConfig(gamma=gamma, gain=gain)), x)
    expected = skimage.exposure.adjust_gamma(x, gamma, gain)
    diff = np.abs(out.astype(int) - expected.astype(int))
    assert out.dtype == np.uint8
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01


# ------------------------------------------------------------ float against NumPy

FLOAT_CASES = [
    (Brightness(BrightnessConfig(factor=1.3)), lambda x: x * 1.3),
    (
        Contrast(ContrastConfig(factor=0.6)),
        lambda x: (m := luma64(x).mean(axis=(1, 2))[:, None, None, None]) + 0.6 * (x - m),
    ),
    (
        Saturation(SaturationConfig(factor=1.8)),
        lambda x: luma64(x)[..., None] + 1.8 * (x - luma64(x)[..., None]),
    ),
    (Hue(HueConfig(shift=-0.2)), lambda x: hue_colorsys(x, -0.2)),
    (Gamma(GammaConfig(gamma=0.7, gain=1.1)), lambda x: 1.1 * x**0.7),
    (
        Grayscale(GrayscaleConfig(output_channels=3)),
        lambda x: np.repeat(luma64(x)[..., None], 3, -1),
    ),
]


@pytest.mark.parametrize(
    "op, formula", FLOAT_CASES, ids=["brightness", "contrast", "saturation", "hue", "gamma", "gray"]
)
def test_float_path_equals_numpy_formula(op, formula):
    x = np.random.default_rng(3).uniform(0.0, 1.0, (3, 6, 7, 3)).astype(np.float32)
    x[0, 0, 0] = (0.5, 0.5, 0.5)  # a grey pixel
    x[0, 0, 1] = (0.0, 0.0, 0.0)  # a black one
    out = apply(op, x)
    assert out.dtype == np.float32
    expected = np.clip(formula(x.astype(np.float64)), 0.0, 1.0)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_other_float_dtypes_are_computed_in_float32_and_kept():
    x = np.random.default_rng(3).uniform(0.0, 1.0, (2, 4, 4, 3)).astype(np.float32)
    out = apply(Saturation(SaturationConfig(factor=0.5)), jnp.asarray(x, jnp.bfloat16))
    assert out.dtype == jnp.bfloat16
    reference = apply(Saturation(SaturationConfig(factor=0.5)), x)
    np.testing.assert_allclose(out.astype(np.float32), reference, atol=1e-2)


# ----------------------------------------------------------------------- ColorJitter


def jitter_by_hand(images, values, order):
    """Each record through the functional adjustments in its own order, one at a time."""
    steps = [
        jax.jit(f) for f in (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
    ]
    out = []
    for b in range(len(images)):
        image = jnp.asarray(images[b : b + 1])
        for index in order[b]:
            image = steps[index](image, jnp.asarray(values[b : b + 1, index]))
        out.append(np.asarray(image[0]))
    return np.stack(out)


def jitter_all():
    config = ColorJitterConfig(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    return ColorJitter(config, rngs=nnx.Rngs(3))


def test_color_jitter_applies_each_records_factors_in_its_order():
    x = random_uint8((24, 6, 6, 3), 6)
    op = jitter_all()
    values, order = (np.asarray(a) for a in op.parameters(24, jnp.asarray(record_uniforms(op, 24))))
    assert np.all(np.sort(order, axis=1) == np.arange(4))  # a permutation per record
    assert len({tuple(o) for o in order}) > 6  # and they differ between records
    lo = np.array([0.6, 0.6, 0.6, -0.1])
    hi = np.array([1.4, 1.4, 1.4, 0.1])
    assert np.all((values >= lo - 1e-6) & (values <= hi + 1e-6))
    np.testing.assert_array_equal(apply(op, x), jitter_by_hand(x, values, order))


def test_color_jitter_without_hue_equals_pil_steps():
    x = random_uint8((10, 5, 7, 3), 8)
    op = ColorJitter(ColorJitterConfig(brightness=(0.5, 1.5), saturation=0.5), rngs=nnx.Rngs(1))
    values, order = (np.asarray(a) for a in op.parameters(10, jnp.asarray(record_uniforms(op, 10))))
    enhancers = {0: ImageEnhance.Brightness, 2: ImageEnhance.Color}
    assert {tuple(o) for o in order} <= {(0, 2), (2, 0)}

    def by_pil(im, i):
        for index in order[i]:
            im = enhancers[index](im).enhance(float(values[i, index]))
        return im

    np.testing.assert_array_equal(apply(op, x), pil_each(x, by_pil))


def test_color_jitter_orders_are_uniform():
    op = jitter_all()
    _, order = op.parameters(2400, jnp.asarray(record_uniforms(op, 2400)))
    counts = {}
    for row in np.asarray(order).tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    assert set(counts) == set(itertools.permutations(range(4)))
    assert min(counts.values()) > 50  # 100 expected for each of 24 orders


def test_color_jitter_ranges_follow_torchvision():
    config = ColorJitterConfig(brightness=0.3, contrast=(0.2, 0.9), saturation=1.5, hue=0.2)
    assert config.span("brightness") == (0.7, 1.3)
    assert config.span("contrast") == (0.2, 0.9)
    assert config.span("saturation") == (0.0, 2.5)
    assert config.span("hue") == (-0.2, 0.2)
    assert ColorJitterConfig(contrast=0.5).enabled() == ("contrast",)
    assert ColorJitterConfig(brightness=(1.0, 1.0), hue=(0.0, 0.0)).enabled() == ()
    # one fixed adjustment is deterministic; two fixed ones still have a random order
    assert not ColorJitter.is_stochastic(ColorJitterConfig(brightness=(1.2, 1.2)))
    assert ColorJitter.is_stochastic(ColorJitterConfig(brightness=(1.2, 1.2), hue=(0.1, 0.1)))
    x = random_uint8((2, 4, 4, 3), 0)
    np.testing.assert_array_equal(apply(ColorJitter(ColorJitterConfig()), x), x)


# ---------------------------------------------------------------------- gradients


def smooth_images(shape=(2, 5, 5), seed=0):
    """Float RGB images whose hues sit within 0.02 of a sector's centre ((j + 0.5) / 6).

    Hue rotations of up to 0.06 then cross no sector boundary (where the HSV
    formulas have kinks), and values in [0.16, 0.7] stay clear of clipping.
    """
    rng = np.random.default_rng(seed)
    hue = (rng.integers(0, 6, shape) + 0.5) / 6 + rng.uniform(-0.02, 0.02, shape)
    sat, val = rng.uniform(0.3, 0.6, shape), rng.uniform(0.4, 0.7, shape)
    triples = zip(hue.ravel(), sat.ravel(), val.ravel(), strict=True)
    rgb = [colorsys.hsv_to_rgb(h, s_, v) for h, s_, v in triples]
    return jnp.asarray(np.reshape(rgb, shape + (3,)), jnp.float32)


GRAD_OPS = [
    lambda: Brightness(BrightnessConfig(factor=(0.8, 1.1), learnable=True), rngs=nnx.Rngs(0)),
    lambda: Contrast(ContrastConfig(factor=(0.7, 1.2), learnable=True), rngs=nnx.Rngs(0)),
    lambda: Saturation(SaturationConfig(factor=(0.6, 1.2), learnable=True), rngs=nnx.Rngs(0)),
    lambda: Hue(HueConfig(shift=(-0.04, 0.04), learnable=True), rngs=nnx.Rngs(0)),
    lambda: Gamma(GammaConfig(gamma=(0.8, 1.2), gain=(0.9, 1.0), learnable=True), rngs=nnx.Rngs(0)),
    lambda: Grayscale(GrayscaleConfig(output_channels=3)),
    lambda: ColorJitter(
        ColorJitterConfig(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.04, learnable=True),
        rngs=nnx.Rngs(0),
    ),
]
GRAD_IDS = ["brightness", "contrast", "saturation", "hue", "gamma", "gray", "jitter"]
TOL = dict(order=1, modes=["rev"], eps=1e-3, atol=2e-2, rtol=2e-2)


def _loss_fns(op, x):
    graphdef, params, rest = nnx.split(op, nnx.Param, ...)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), jnp.float32)
    ids = jnp.arange(x.shape[0], dtype=jnp.int32)

    def loss(images, p):
        data, _ = nnx.merge(graphdef, p, rest).apply_batch(
            {"image": images}, {}, ids, jnp.uint32(0), 0
        )
        return jnp.sum(data["image"] * weights[..., : data["image"].shape[-1]])

    return jax.jit(loss), params


@pytest.mark.parametrize("make_op", GRAD_OPS, ids=GRAD_IDS)
def test_gradients_wrt_input_and_learnable_magnitudes(make_op):
    op = make_op()
    x = smooth_images()
    loss, params = _loss_fns(op, x)
    names = set(op.differentiable_in) - {"input"}
    assert len(jax.tree_util.tree_leaves(params)) == len(names)  # one Param per magnitude
    check_grads(loss, (x, params), **TOL)
    grads = jax.grad(loss, argnums=(0, 1))(x, params)
    assert all(np.any(np.asarray(g) != 0) for g in jax.tree_util.tree_leaves(grads))
    for g in jax.tree_util.tree_leaves(grads[1]):  # both ends of every range
        assert np.all(np.asarray(g) != 0)


# ------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: BrightnessConfig(factor=-0.5), r"BrightnessConfig\.factor: out of range"),
        (lambda: ContrastConfig(factor=(1.5, 0.5)), r"ContrastConfig\.factor: .*low <= high"),
        (lambda: SaturationConfig(factor="big"), r"SaturationConfig\.factor: must be a number"),
        (lambda: HueConfig(shift=0.7), r"HueConfig\.shift: out of range; expected values in"),
        (lambda: GammaConfig(gamma=-1.0), r"GammaConfig\.gamma: out of range"),
        (lambda: GammaConfig(learnable="yes"), r"GammaConfig\.learnable: must be a bool"),
        (lambda: BrightnessConfig(probability=1.5), r"BrightnessConfig\.probability: .*\[0, 1\]"),
        (lambda: GrayscaleConfig(output_channels=2), r"GrayscaleConfig\.output_channels: .*1 or 3"),
        (
            lambda: GrayscaleConfig(output_channels=1, probability=0.5),
            r"GrayscaleConfig\.output_channels: a random grayscale must keep 3 channels",
        ),
        (lambda: ColorJitterConfig(brightness=-0.1), r"ColorJitterConfig\.brightness: jitter"),
        (lambda: ColorJitterConfig(hue=0.6), r"ColorJitterConfig\.hue: jitter amount out of range"),
        (lambda: ColorJitterConfig(hue=(-0.6, 0.1)), r"ColorJitterConfig\.hue: out of range"),
        (lambda: ColorJitterConfig(contrast=(-1, 2)), r"ColorJitterConfig\.contrast: out of"),
        (lambda: BrightnessConfig(field=""), r"BrightnessConfig\.field: must be a field name"),
    ],
)
def test_bad_configs_raise_config_error(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_ranges_need_rngs_and_fixed_values_do_not():
    Brightness(BrightnessConfig(factor=1.2))
    with pytest.raises(OperatorError, match="needs random keys"):
        Brightness(BrightnessConfig(factor=(0.8, 1.2)))
    with pytest.raises(OperatorError, match="needs random keys"):
        Grayscale(GrayscaleConfig(output_channels=3, probability=0.5))


@pytest.mark.parametrize(
    "op, images, message",
    [
        (Saturation(SaturationConfig(factor=0.5)), np.zeros((2, 4, 4, 1), np.uint8), r"3 channels"),
        (Hue(HueConfig(shift=0.1)), np.zeros((2, 4, 4), np.uint8), r"3 channels"),
        (Grayscale(GrayscaleConfig()), np.zeros((2, 4, 4, 4), np.uint8), r"shape \(4, 4, 4\)"),
        (ColorJitter(ColorJitterConfig()), np.zeros((2, 4, 4, 1), np.float32), r"3 channels"),
        (Brightness(BrightnessConfig()), np.zeros((2, 4, 4, 2), np.uint8), r"1 or 3 channels"),
        (Contrast(ContrastConfig()), np.zeros((2, 4, 4, 3), np.int32), r"uint8 or floating"),
        (Gamma(GammaConfig()), np.zeros((2, 4), np.float32), r"rank 2 or 3 per record"),
    ],
)
def test_wrong_images_raise_schema_error(op, images, message):
    with pytest.raises(SchemaError, match=rf"{type(op).__name__}, field 'image': .*{message}"):
        apply(op, images)


# -------------------------------------------------------------------- probability


def test_probability_changes_about_that_share_of_records_and_leaves_the_rest():
    x = random_uint8((400, 2, 2, 3), 1)
    op = Grayscale(GrayscaleConfig(output_channels=3, probability=0.3), rngs=nnx.Rngs(2))
    out = apply(op, x)
    gray = apply(Grayscale(GrayscaleConfig(output_channels=3)), x)
    changed = np.all(out == gray, axis=(1, 2, 3))
    unchanged = np.all(out == x, axis=(1, 2, 3))
    assert np.all(changed | unchanged)
    assert 0.22 < changed.mean() < 0.38
    np.testing.assert_array_equal(changed, record_uniforms(op, 400)[:, -1] < 0.3)


# ----------------------------------------------------------------------- pipeline

PIPELINE_OPS = {
    "brightness": lambda: Brightness(BrightnessConfig(factor=(0.5, 1.5)), rngs=nnx.Rngs(1)),
    "contrast": lambda: Contrast(
        ContrastConfig(factor=(0.5, 1.5), probability=0.7), rngs=nnx.Rngs(2)
    ),
    "saturation": lambda: Saturation(SaturationConfig(factor=(0.0, 2.0)), rngs=nnx.Rngs(3)),
    "hue": lambda: Hue(HueConfig(shift=(-0.3, 0.3)), rngs=nnx.Rngs(4)),
    "gamma": lambda: Gamma(GammaConfig(gamma=(0.5, 2.0), gain=(0.9, 1.1)), rngs=nnx.Rngs(5)),
    "grayscale": lambda: Grayscale(
        GrayscaleConfig(output_channels=3, probability=0.5), rngs=nnx.Rngs(6)
    ),
    "jitter": jitter_all,
}


@pytest.mark.parametrize("name", list(PIPELINE_OPS))
def test_operators_pass_the_in_pipeline_check(name):
    images = random_uint8((40, 6, 6, 3), 0)
    assert_operator_in_pipeline(PIPELINE_OPS[name], {"image": images})
