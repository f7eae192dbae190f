"""Resize against PIL.Image.resize (NEAREST, BILINEAR, BICUBIC, BOX) and jax.image.resize.

Tolerances: float images (PIL mode "F", computed in double there, float32 here)
agree to 1e-5; uint8 images (mode "L" / "RGB") to one level, from PIL's 22-bit
fixed-point weights and its choice of which pass runs first.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from in_pipeline import assert_operator_in_pipeline
from jax.test_util import check_grads
from PIL import Image
from skimage import data as skdata

from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.image.resize import Resize, ResizeConfig, resample_weights
from datarax.operators.image.sampling import render

PIL_FILTERS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "area": Image.BOX,
}


@functools.partial(jax.jit, static_argnums=(0,))
def _apply(graphdef, state, data):
    op = nnx.merge(graphdef, state)
    ids = jnp.arange(next(iter(data.values())).shape[0])
    return op.apply_batch(data, {}, ids, jnp.uint32(0), 0)[0]


def apply(op, images, **more):
    out = _apply(*nnx.split(op), {"image": jnp.asarray(images), **more})
    return {k: np.asarray(v) for k, v in out.items()}


def pil_resize(image, size, method):
    mode = "F" if image.dtype == np.float32 else ("RGB" if image.ndim == 3 else "L")
    return np.asarray(Image.fromarray(image, mode).resize(size[::-1], PIL_FILTERS[method]))


sizes = st.tuples(st.integers(3, 40), st.integers(3, 40))


@settings(max_examples=25, deadline=None)
@given(
    in_size=st.tuples(st.integers(5, 30), st.integers(5, 30)),
    out_size=sizes,
    method=st.sampled_from(list(PIL_FILTERS)),
)
def test_resize_matches_pil_on_float_images(in_size, out_size, method):
    image = np.random.default_rng(0).uniform(0, 1, in_size).astype(np.float32)
    out = apply(Resize(ResizeConfig(size=out_size, interpolation=method)), image[None])["image"]
    assert out.shape == (1, *out_size) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], pil_resize(image, out_size, method), atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    in_size=st.tuples(st.integers(5, 30), st.integers(5, 30)),
    out_size=sizes,
    method=st.sampled_from(list(PIL_FILTERS)),
)
def test_resize_matches_pil_on_uint8_images_within_one_level(in_size, out_size, method):
    image = np.random.default_rng(1).integers(0, 256, in_size).astype(np.uint8)
    out = apply(Resize(ResizeConfig(size=out_size, interpolation=method)), image[None])["image"]
    assert out.dtype == np.uint8
    diff = np.abs(out[0].astype(int) - pil_resize(image, out_size, method))
    # One level: PIL's 22-bit fixed-point weights, and which of the two passes it
    # runs first (rounded in between), differ from ours on some pixels.
    assert diff.max() <= 1, diff.max()


@pytest.mark.parametrize("method", list(PIL_FILTERS))
def test_resize_rgb_photo_matches_pil(method):
    photo = skdata.chelsea()[::6, ::6]  # (50, 76, 3) uint8
    for size in [(20, 31), (64, 90)]:
        out = apply(Resize(ResizeConfig(size=size, interpolation=method)), photo[None])["image"]
        diff = np.abs(out[0].astype(int) - pil_resize(photo, size, method))
        assert diff.max() <= 1 and diff.mean() < 0.02


@pytest.mark.parametrize("method, jax_method", [("bilinear", "linear"), ("bicubic", "cubic")])
def test_without_antialias_it_is_jax_image_resize_without_antialias(method, jax_method):
    images = np.random.default_rng(2).uniform(0, 1, (2, 23, 17, 3)).astype(np.float32)
    for size in [(9, 7), (30, 40), (11, 30)]:
        config = ResizeConfig(size=size, interpolation=method, antialias=False)
        out = apply(Resize(config), images)["image"]
        ref = jax.image.resize(images, (2, *size, 3), jax_method, antialias=False)
        np.testing.assert_allclose(out, np.asarray(ref), atol=1e-5)


def test_antialiased_bilinear_is_jax_image_resize_with_antialias():
    images = np.random.default_rng(3).uniform(0, 1, (2, 40, 36)).astype(np.float32)
    out = apply(Resize(ResizeConfig(size=(13, 10))), images)["image"]
    ref = jax.image.resize(images, (2, 13, 10), "linear", antialias=True)
    np.testing.assert_allclose(out, np.asarray(ref), atol=1e-5)


def test_weights_are_area_averages_and_rows_sum_to_one():
    np.testing.assert_allclose(resample_weights(6, 2, "area"), np.kron(np.eye(2), [1, 1, 1]) / 3)
    for method in ("bilinear", "bicubic", "area"):
        for antialias in (True, False):
            w = resample_weights(13, 5, method, antialias=antialias)
            np.testing.assert_allclose(w.sum(axis=1), 1.0)
    # antialiased downscaling reads every input pixel; point sampling does not
    assert np.all(resample_weights(12, 3, "bilinear").sum(axis=0) > 0)
    assert np.any(resample_weights(12, 3, "bilinear", antialias=False).sum(axis=0) == 0)


@pytest.mark.slow
def test_point_sampled_resize_is_a_sampling_step_equal_to_the_filter():
    images = jnp.asarray(np.random.default_rng(4).uniform(0, 1, (2, 10, 14, 2)), jnp.float32)
    for size, antialias in [((25, 31), True), ((6, 9), False), ((10, 30), True)]:
        op = Resize(ResizeConfig(size=size, antialias=antialias))
        steps = op.sampling_steps(10, 14, None)
        assert steps is not None
        sampled = render(steps, images, mask=False, where="test")
        np.testing.assert_allclose(sampled, apply(op, images)["image"], atol=1e-5)
    assert Resize(ResizeConfig(size=(6, 9))).sampling_steps(10, 14, None) is None  # filtered
    assert Resize(ResizeConfig(size=5, interpolation="bicubic")).sampling_steps(8, 8, None) is None


def test_resize_gradient_in_the_input():
    images = jnp.asarray(np.random.default_rng(5).uniform(0, 1, (1, 9, 7, 2)), jnp.float32)
    for method in ("bilinear", "bicubic", "area"):
        op = Resize(ResizeConfig(size=(5, 11), interpolation=method))
        # linear in the image: float32 central differences agree to 1e-2
        check_grads(
            lambda x, op=op: op.transform_images(x, None), (images,), order=1, modes=["rev"],
            eps=1e-2, atol=1e-2, rtol=1e-2,
        )  # fmt: skip


def test_masks_are_resized_with_nearest():
    images = np.random.default_rng(6).uniform(0, 1, (2, 12, 12, 3)).astype(np.float32)
    masks = np.random.default_rng(7).integers(0, 5, (2, 12, 12)).astype(np.int32)
    config = ResizeConfig(size=(7, 20), interpolation="bicubic", also=("mask",))
    out = apply(Resize(config), images, mask=jnp.asarray(masks))
    assert out["mask"].shape == (2, 7, 20) and out["mask"].dtype == np.int32
    for b in range(2):
        np.testing.assert_array_equal(
            out["mask"][b], pil_resize(masks[b].astype(np.uint8), (7, 20), "nearest")
        )


@pytest.mark.parametrize(
    "kw, where",
    [
        ({"size": 0}, "size"),
        ({"size": (3, 4, 5)}, "size"),
        ({"size": (-1, 4)}, "size"),
        ({"interpolation": "lanczos"}, "interpolation"),
        ({"antialias": "yes"}, "antialias"),
        ({"also": ("image",)}, "also"),
    ],
)
def test_resize_config_errors(kw, where):
    with pytest.raises(ConfigError, match=rf"ResizeConfig\.{where}"):
        ResizeConfig(**kw)


def test_resize_schema_errors():
    op = Resize(ResizeConfig(size=4))
    with pytest.raises(SchemaError, match=r"rank 2 or 3"):
        op.apply_batch({"image": jnp.zeros((2, 4))}, {}, jnp.arange(2), jnp.uint32(0), 0)


def test_resize_passes_the_in_pipeline_check():
    images = np.random.default_rng(0).integers(0, 255, (40, 10, 12, 3), dtype=np.uint8)
    assert_operator_in_pipeline(
        lambda: Resize(ResizeConfig(size=(6, 8), interpolation="bicubic")), {"image": images}
    )
