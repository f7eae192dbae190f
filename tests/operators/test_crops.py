"""CenterCrop, Pad, Flip against NumPy; RandomResizedCrop's boxes and output.

RandomResizedCrop is checked against torchvision's box rule (area fraction uniform
in ``scale``, log aspect ratio uniform in ``ratio``, ten tries, centre-crop
fallback) statistically, and its output against cropping each record's box with
NumPy and resizing it with ``jax.image.resize(..., antialias=False)``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from in_pipeline import assert_operator_in_pipeline
from PIL import Image
from scipy import stats

from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.operators.image.crops import (
    CenterCrop,
    CenterCropConfig,
    Flip,
    FlipConfig,
    Pad,
    PadConfig,
    RandomResizedCrop,
    RandomResizedCropConfig,
)
from datarax.operators.image.flip import RandomFlip, RandomFlipConfig
from datarax.operators.image.sampling import render


@functools.partial(jax.jit, static_argnums=(0,))
def _apply(graphdef, state, data, ids):
    return nnx.merge(graphdef, state).apply_batch(data, {}, ids, jnp.uint32(1), 3)[0]


def apply(op, images, ids=None, **more):
    images = jnp.asarray(images)
    ids = jnp.arange(images.shape[0]) if ids is None else jnp.asarray(ids, jnp.int32)
    out = _apply(*nnx.split(op), {"image": images, **more}, ids)
    return {k: np.asarray(v) for k, v in out.items()}


def images_of(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


# ------------------------------------------------------------------------ CenterCrop


@pytest.mark.parametrize(
    "shape, size",
    [((2, 10, 12, 3), (6, 7)), ((2, 9, 9), 4), ((2, 8, 8, 1), (8, 3)), ((2, 5, 6), (5, 6))],
)
def test_center_crop_is_the_torchvision_centre_window(shape, size):
    images = images_of(shape)
    out = apply(CenterCrop(CenterCropConfig(size=size)), images)["image"]
    h, w = (size, size) if isinstance(size, int) else size
    top, left = int(round((shape[1] - h) / 2)), int(round((shape[2] - w) / 2))
    np.testing.assert_array_equal(out, images[:, top : top + h, left : left + w])


def test_center_crop_larger_than_the_image_pads_with_fill():
    images = images_of((2, 4, 5, 2))
    out = apply(CenterCrop(CenterCropConfig(size=(7, 6), fill=-1.0)), images)["image"]
    # torchvision pads (top, bottom) = (1, 2), (left, right) = (0, 1), then crops.
    padded = np.pad(images, [(0, 0), (1, 2), (0, 1), (0, 0)], constant_values=-1.0)
    np.testing.assert_array_equal(out, padded)


# ------------------------------------------------------------------------------- Pad


@settings(max_examples=20, deadline=None)
@given(
    padding=st.one_of(
        st.integers(0, 7),
        st.tuples(st.integers(0, 7), st.integers(0, 7)),
        st.tuples(*(st.integers(0, 9) for _ in range(4))),
    ),
    mode=st.sampled_from(["constant", "edge", "reflect"]),
    shape=st.sampled_from([(2, 5, 6), (2, 4, 3, 2), (1, 1, 4), (2, 2, 2, 1)]),
)
def test_pad_matches_numpy_pad(padding, mode, shape):
    images = images_of(shape, seed=1)
    out = apply(Pad(PadConfig(padding=padding, mode=mode, fill=0.5)), images)["image"]
    if isinstance(padding, int):
        top = bottom = left = right = padding
    elif len(padding) == 2:
        (top, left), (bottom, right) = padding, padding
    else:
        top, bottom, left, right = padding
    widths = [(0, 0), (top, bottom), (left, right)] + [(0, 0)] * (images.ndim - 3)
    kw = {"constant_values": 0.5} if mode == "constant" else {}
    np.testing.assert_array_equal(out, np.pad(images, widths, mode=mode, **kw))


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_as_a_sampling_step_equals_its_gather(mode):
    images = jnp.asarray(images_of((2, 5, 7, 2), seed=2))
    op = Pad(PadConfig(padding=(3, 0, 6, 2), mode=mode, fill=0.25))
    sampled = render(op.sampling_steps(5, 7, None), images, mask=False, where="test")
    np.testing.assert_array_equal(sampled, apply(op, images)["image"])


def test_pad_keeps_uint8_and_pads_masks_in_the_same_mode():
    images = np.random.default_rng(3).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    masks = np.random.default_rng(4).integers(0, 3, (2, 4, 4)).astype(np.int32)
    op = Pad(PadConfig(padding=2, mode="reflect", also=("mask",)))
    out = apply(op, images, mask=jnp.asarray(masks))
    assert out["image"].dtype == np.uint8
    np.testing.assert_array_equal(out["mask"], np.pad(masks, [(0, 0), (2, 2), (2, 2)], "reflect"))
    constant = Pad(PadConfig(padding=1, fill=9, also=("mask",), also_fill=-1))
    out = apply(constant, images, mask=jnp.asarray(masks))
    np.testing.assert_array_equal(out["image"][:, 0], 9)
    np.testing.assert_array_equal(out["mask"][:, 0], -1)


# ------------------------------------------------------------------------------ Flip


@pytest.mark.parametrize("direction, axis", [("horizontal", 2), ("vertical", 1)])
def test_flip_is_numpy_flip_and_random_flip_with_probability_one(direction, axis):
    images = images_of((3, 4, 5, 2))
    out = apply(Flip(FlipConfig(direction=direction)), images)["image"]
    np.testing.assert_array_equal(out, np.flip(images, axis=axis))
    always = RandomFlip(RandomFlipConfig(direction=direction, probability=1.0), rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(out, apply(always, images)["image"])
    assert not Flip(FlipConfig()).stochastic


# ---------------------------------------------------------------- RandomResizedCrop


def rrc(seed=0, **kw):
    return RandomResizedCrop(RandomResizedCropConfig(**kw), rngs=nnx.Rngs(seed))


def boxes_of(op, height, width, n, epoch=1, seed=3):
    ids = jnp.arange(n)
    return np.asarray(op.boxes(height, width, op.draws(ids, jnp.uint32(epoch), seed)))


def test_rrc_box_distribution_follows_scale_and_log_ratio():
    # Large image, scale <= 0.5: every first try fits, so the draws are exact.
    n, size = 4000, 1000
    op = rrc(scale=(0.08, 0.5), ratio=(0.75, 4 / 3))
    top, left, h, w = boxes_of(op, size, size, n).T
    assert np.all((top >= 0) & (left >= 0) & (top + h <= size) & (left + w <= size))
    area = h * w / size**2
    log_ratio = np.log(w / h)
    # Rounding to whole pixels moves area by < 0.2% and log ratio by < 0.01.
    assert area.min() > 0.08 * 0.99 and area.max() < 0.5 * 1.01
    assert log_ratio.min() > math.log(0.75) - 0.01 and log_ratio.max() < math.log(4 / 3) + 0.01
    assert stats.kstest(area, stats.uniform(0.08, 0.42).cdf).pvalue > 1e-3
    span = math.log(4 / 3) - math.log(0.75)
    assert stats.kstest(log_ratio, stats.uniform(math.log(0.75), span).cdf).pvalue > 1e-3
    # offsets uniform over the valid positions
    assert stats.kstest(top / (size - h + 1), "uniform").pvalue > 1e-3
    assert stats.kstest(left / (size - w + 1), "uniform").pvalue > 1e-3


def test_rrc_boxes_stay_inside_small_images_with_the_default_ranges():
    for height, width in [(16, 16), (10, 30), (31, 7)]:
        top, left, h, w = boxes_of(rrc(), height, width, 2000).T
        assert np.all((h >= 1) & (w >= 1) & (top >= 0) & (left >= 0))
        assert np.all((top + h <= height) & (left + w <= width))
        assert len({tuple(b) for b in zip(top, left, h, w, strict=True)}) > 100


@pytest.mark.parametrize(
    "height, width, scale, ratio, expected",
    [
        (20, 20, (1.0, 1.0), (2.0, 3.0), [5, 0, 10, 20]),  # narrower than the ratios
        (10, 40, (1.0, 1.0), (0.5, 1.0), [0, 15, 10, 10]),  # wider: full height
        (12, 12, (1.5, 2.0), (0.5, 2.0), [0, 0, 12, 12]),  # in range: the whole image
    ],
)
def test_rrc_falls_back_to_torchvision_centre_crop(height, width, scale, ratio, expected):
    # No try fits (the box would be larger than the image): torchvision's fallback.
    op = rrc(scale=scale, ratio=ratio)
    np.testing.assert_array_equal(boxes_of(op, height, width, 5), [expected] * 5)


@pytest.mark.parametrize("shape", [(16, 20, 24, 3), (16, 13, 9)])
def test_rrc_output_is_the_box_cropped_and_resized(shape):
    images = images_of(shape, seed=5)
    op = rrc(seed=4, size=(12, 10))
    ids = np.arange(16) * 7
    out = apply(op, images, ids)["image"]
    boxes = np.asarray(op.boxes(shape[1], shape[2], op.draws(jnp.asarray(ids), jnp.uint32(1), 3)))
    for image, got, (top, left, h, w) in zip(images, out, boxes, strict=True):
        box = image[top : top + h, left : left + w]
        ref = jax.image.resize(box, (12, 10, *box.shape[2:]), "linear", antialias=False)
        np.testing.assert_allclose(got, np.asarray(ref), atol=1e-5)  # float32 weights


def test_rrc_nearest_and_masks_read_the_box_like_pil_nearest():
    images = images_of((8, 30, 30), seed=6)
    masks = np.random.default_rng(7).integers(0, 4, (8, 30, 30)).astype(np.int32)
    op = rrc(seed=5, size=16, interpolation="nearest", also=("mask",))
    out = apply(op, images, mask=jnp.asarray(masks))
    boxes = np.asarray(op.boxes(30, 30, op.draws(jnp.arange(8), jnp.uint32(1), 3)))
    for i, (top, left, h, w) in enumerate(boxes):
        box = masks[i, top : top + h, left : left + w].astype(np.uint8)
        ref = np.asarray(Image.fromarray(box, "L").resize((16, 16), Image.NEAREST))
        # ties (a point exactly on a pixel edge) may round either way in float32
        assert np.mean(out["mask"][i] == ref) > 0.97
    assert set(np.unique(out["mask"])) <= {0, 1, 2, 3}


def test_rrc_depends_on_record_id_not_batch_position():
    images = images_of((20, 16, 16), seed=8)
    op, ids = rrc(size=8), np.arange(20) * 5 + 1
    full = apply(op, images, ids)["image"]
    order = np.random.default_rng(0).permutation(20)[:9]
    part = apply(op, images[order], ids[order])["image"]
    # The same boxes; the values agree to float32 rounding (XLA may contract
    # multiply-adds differently for another batch shape).
    np.testing.assert_allclose(part, full[order], atol=1e-6)


def test_rrc_draws_all_boxes_without_gathering_per_record():
    op = rrc()
    jaxpr = jax.make_jaxpr(lambda u: op.boxes(32, 32, u))(jnp.zeros((4, 40)))
    assert " gather[" not in str(jaxpr)


# ---------------------------------------------------------------- errors, pipelines


@pytest.mark.parametrize(
    "cls, kw, where",
    [
        (CenterCropConfig, {"size": 0}, "CenterCropConfig.size"),
        (CenterCropConfig, {"fill": None}, "CenterCropConfig.fill"),
        (PadConfig, {"padding": -1}, "PadConfig.padding"),
        (PadConfig, {"padding": (1, 2, 3)}, "PadConfig.padding"),
        (PadConfig, {"padding": (1, 2, 3, -4)}, "PadConfig.padding"),
        (PadConfig, {"mode": "wrap"}, "PadConfig.mode"),
        (FlipConfig, {"direction": "diagonal"}, "FlipConfig.direction"),
        (RandomResizedCropConfig, {"size": (4, 0)}, "RandomResizedCropConfig.size"),
        (RandomResizedCropConfig, {"scale": (0.5, 0.1)}, "RandomResizedCropConfig.scale"),
        (RandomResizedCropConfig, {"scale": 0.5}, "RandomResizedCropConfig.scale"),
        (RandomResizedCropConfig, {"ratio": (0.0, 1.0)}, "RandomResizedCropConfig.ratio"),
        (RandomResizedCropConfig, {"interpolation": "bicubic"}, "RandomResizedCropConfig.interp"),
        (RandomResizedCropConfig, {"attempts": 0}, "RandomResizedCropConfig.attempts"),
    ],
)
def test_config_errors_name_the_field(cls, kw, where):
    with pytest.raises(ConfigError, match=rf"{where}"):
        cls(**kw)


def test_schema_and_operator_errors():
    with pytest.raises(SchemaError, match=r"CenterCrop, field 'image': fill value not repres"):
        apply(CenterCrop(CenterCropConfig(size=6, fill=0.5)), np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(SchemaError, match=r"Pad: image field missing"):
        Pad(PadConfig()).apply_batch({"x": jnp.zeros((1, 4, 4))}, {}, jnp.arange(1), 0, 0)
    with pytest.raises(OperatorError, match="rngs"):
        RandomResizedCrop(RandomResizedCropConfig())


@pytest.mark.slow
def test_crops_pass_the_in_pipeline_check():
    images = np.random.default_rng(0).integers(0, 255, (40, 10, 12, 3), dtype=np.uint8)
    masks = np.random.default_rng(1).integers(0, 4, (40, 10, 12), dtype=np.uint8)
    assert_operator_in_pipeline(
        lambda: RandomResizedCrop(
            RandomResizedCropConfig(size=(8, 6), also=("mask",)), rngs=nnx.Rngs(1)
        ),
        {"image": images, "mask": masks},
    )
    for make in (
        lambda: CenterCrop(CenterCropConfig(size=(6, 14))),
        lambda: Pad(PadConfig(padding=(1, 2), mode="reflect")),
        lambda: Flip(FlipConfig(direction="vertical")),
    ):
        assert_operator_in_pipeline(make, {"image": images}, resume=False)
