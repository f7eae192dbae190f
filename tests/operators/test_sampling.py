"""The coordinate-map sampler, fusion of geometric chains into one sampling, moved fields.

References: ``scipy.ndimage.map_coordinates`` for the sampler (its pixel centres are
at integers, ours at ``i + 0.5``); for fusion, the same operators run one by one.
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
from jax.test_util import check_grads
from scipy import ndimage
from skimage import data as skdata

from datarax import from_source
from datarax.core.errors import ConfigError, SchemaError
from datarax.dag.nodes import OperatorNode
from datarax.operators.base import apply_in_order
from datarax.operators.image.affine import Affine, AffineConfig, Rotate, RotateConfig
from datarax.operators.image.crop import RandomCrop, RandomCropConfig
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
from datarax.operators.image.resize import Resize, ResizeConfig
from datarax.operators.image.sampling import sample
from datarax.sources import MemorySource, MemorySourceConfig

pytestmark = pytest.mark.slow  # run by the separate slow step of .ci/run

IDS = jnp.arange(100, 108)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _one_by_one(graphdef, state, data, fused):
    ops = nnx.merge(graphdef, state)
    if fused:
        return apply_in_order(ops, data, {}, IDS[: _batch(data)], jnp.uint32(1), 4)[0]
    for op in ops:
        data, _ = op.apply_batch(data, {}, IDS[: _batch(data)], jnp.uint32(1), 4)
    return data


def _batch(data):
    return next(iter(data.values())).shape[0]


def run(ops, data, *, fused):
    """The operators on ``data`` (compiled), fused as a pipeline does or one by one."""
    graphdef, state = nnx.split(tuple(ops))
    out = _one_by_one(graphdef, state, {k: jnp.asarray(v) for k, v in data.items()}, fused)
    return {k: np.asarray(v) for k, v in out.items()}


def gathers(ops, data) -> int:
    """How many gathers the fused run of ``ops`` performs (primitives in its jaxpr)."""
    jaxpr = jax.make_jaxpr(
        lambda d: apply_in_order(ops, d, {}, IDS[: _batch(d)], jnp.uint32(1), 4)[0]
    )(data)
    return str(jaxpr).count(" gather[")  # the printout includes nested jaxprs


def smooth_images(n: int, size: int = 48) -> np.ndarray:
    """Float32 photos (skimage astronaut), downscaled and blurred: bilinear-friendly."""
    photo = skdata.astronaut()[::4, ::4].astype(np.float32) / 255.0  # 128 x 128
    photo = ndimage.gaussian_filter(photo, sigma=(2.0, 2.0, 0.0))
    corners = [(7 * i % (128 - size), 11 * i % (128 - size)) for i in range(n)]
    return np.stack([photo[y : y + size, x : x + size] for y, x in corners])


# --------------------------------------------------------------------------- sample


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    shape=st.sampled_from([(2, 7, 9), (2, 8, 8, 3), (1, 5, 13, 2)]),
)
def test_bilinear_sample_matches_scipy_map_coordinates(seed, shape):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, shape).astype(np.float32)
    h, w = shape[1:3]
    # Points anywhere inside the image, including the outer half-pixel band.
    ys = rng.uniform(0, h, (shape[0], 6, 5)).astype(np.float32)
    xs = rng.uniform(0, w, (shape[0], 6, 5)).astype(np.float32)
    out = np.asarray(sample(jnp.asarray(images), jnp.asarray(ys), jnp.asarray(xs)))
    for b in range(shape[0]):
        channels = images[b] if images.ndim == 4 else images[b][..., None]
        for c in range(channels.shape[-1]):
            # scipy: centres at integers; mode="nearest" repeats the edge like ours.
            coords = np.stack([ys[b] - 0.5, xs[b] - 0.5])
            ref = ndimage.map_coordinates(channels[..., c], coords, order=1, mode="nearest")
            got = out[b] if images.ndim == 3 else out[b, ..., c]
            np.testing.assert_allclose(got, ref, atol=1e-5)  # float32 weights


def test_nearest_sample_reads_the_pixel_containing_the_point():
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (3, 6, 7)).astype(np.float32)
    ys = rng.uniform(0, 6, (3, 4, 4)).astype(np.float32)
    xs = rng.uniform(0, 7, (3, 4, 4)).astype(np.float32)
    out = np.asarray(sample(jnp.asarray(images), ys, xs, interpolation="nearest"))
    b = np.arange(3)[:, None, None]
    np.testing.assert_array_equal(
        out, images[b, np.floor(ys).astype(int), np.floor(xs).astype(int)]
    )


def test_points_outside_read_the_fill_value_with_a_hard_edge():
    images = jnp.ones((1, 4, 4))
    ys = jnp.array([[[-0.01, 0.0, 3.99, 4.0, 2.0]]])
    xs = jnp.array([[[2.0, 2.0, 2.0, 2.0, 4.5]]])
    out = np.asarray(sample(images, ys, xs, fill=-2.0))
    np.testing.assert_array_equal(out, [[[-2.0, 1.0, 1.0, -2.0, -2.0]]])
    edge = np.asarray(sample(images * jnp.arange(4.0), ys, xs))  # fill=None: edge pixels
    np.testing.assert_allclose(edge, [[[1.5, 1.5, 1.5, 1.5, 3.0]]])  # x = 2: between 1 and 2


def test_integer_images_are_rounded_half_up_and_keep_their_dtype():
    images = jnp.array([[[0, 1], [254, 255]]], jnp.uint8)
    out = sample(images, jnp.array([[[0.5, 1.0]]]), jnp.array([[[1.0, 0.5]]]))
    assert out.dtype == jnp.uint8
    np.testing.assert_array_equal(out, [[[1, 127]]])  # 0.5 -> 1, 127.0 -> 127


def test_sample_fill_must_fit_the_dtype():
    with pytest.raises(SchemaError, match=r"fill value not representable.*uint8"):
        sample(jnp.zeros((1, 2, 2), jnp.uint8), jnp.zeros((1, 1, 1)), jnp.zeros((1, 1, 1)), fill=-1)


def test_bilinear_sample_gradients_in_image_and_points():
    rng = np.random.default_rng(2)
    images = jnp.asarray(rng.uniform(0, 1, (1, 6, 6, 2)), jnp.float32)
    # Points away from pixel-centre lines, where bilinear has its kinks.
    ys = jnp.asarray(rng.uniform(1.1, 1.4, (1, 3, 3)) + np.arange(3)[:, None], jnp.float32)
    xs = jnp.asarray(rng.uniform(1.1, 1.4, (1, 3, 3)) + np.arange(3)[None, :], jnp.float32)
    weights = jnp.asarray(rng.normal(size=(1, 3, 3, 2)), jnp.float32)

    def loss(images, ys, xs):
        return jnp.sum(sample(images, ys, xs) * weights)

    # float32 central differences, eps 1e-3: tolerance 1e-2.
    check_grads(
        loss, (images, ys, xs), order=1, modes=["rev", "fwd"], eps=1e-3, atol=1e-2, rtol=1e-2
    )


# --------------------------------------------------------------------------- fusion


def _rotate_rrc_flip():
    return [
        Rotate(RotateConfig(angle=(-20.0, 20.0)), rngs=nnx.Rngs(1)),
        RandomResizedCrop(RandomResizedCropConfig(size=32, scale=(0.3, 0.8)), rngs=nnx.Rngs(2)),
        RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(3)),
    ]


def _affine_affine():
    return [
        Affine(AffineConfig(rotation=(5.0, 15.0), scale=1.2, translate_x=2.0), rngs=nnx.Rngs(4)),
        Affine(
            AffineConfig(rotation=-25.0, shear_x=10.0, translate_y=(-3.0, 3.0)), rngs=nnx.Rngs(5)
        ),
    ]


def _resize_up_rotate():
    return [Resize(ResizeConfig(size=64)), Rotate(RotateConfig(angle=7.0))]


@pytest.mark.parametrize(
    "make",
    [_rotate_rrc_flip, _affine_affine, _resize_up_rotate],
    ids=["rot-rrc-flip", "aff-aff", "resize-rot"],
)
def test_fused_interpolating_chain_is_one_sampling_close_to_one_by_one(make):
    ops = make()
    images = smooth_images(8)
    fused = run(ops, {"image": images}, fused=True)["image"]
    alone = run(ops, {"image": images}, fused=False)["image"]
    assert fused.shape == alone.shape and fused.dtype == np.float32
    # Away from the fill border (where one by one blends fill into the image and the
    # fused sampling has a hard edge): the coverage of an all-ones image is 1.
    coverage = run(ops, {"image": np.ones_like(images)}, fused=False)["image"]
    interior = np.abs(coverage - 1.0) < 1e-6
    assert interior.mean() > 0.8
    diff = np.abs(fused - alone)[interior]
    # Bilinear of bilinear is not bilinear: on smooth photos the two agree closely.
    assert diff.max() < 0.05 and diff.mean() < 2e-3, (diff.max(), diff.mean())
    assert gathers(ops, {"image": jnp.asarray(images)}) == 1


@pytest.mark.parametrize(
    "make",
    [
        # nearest everywhere: one sampling equals one by one exactly
        lambda: [
            Pad(PadConfig(padding=3, mode="reflect")),
            Rotate(RotateConfig(angle=30.0, interpolation="nearest", fill=0.5)),
            CenterCrop(CenterCropConfig(size=40)),
            Flip(FlipConfig(direction="vertical")),
        ],
        # lattice maps before one interpolating step: exact
        lambda: [
            RandomCrop(RandomCropConfig(size=40), rngs=nnx.Rngs(0)),
            Flip(FlipConfig()),
            RandomResizedCrop(RandomResizedCropConfig(size=24), rngs=nnx.Rngs(1)),
        ],
        lambda: [
            Pad(PadConfig(padding=(2, 5), mode="edge")),
            Affine(AffineConfig(rotation=(-30.0, 30.0), scale=(0.8, 1.2)), rngs=nnx.Rngs(2)),
        ],
        lambda: [Flip(FlipConfig()), Resize(ResizeConfig(size=(70, 60)))],
        # a nearest step after a bilinear one reads its pixel centres: exact
        lambda: [
            Rotate(RotateConfig(angle=12.0)),
            Rotate(RotateConfig(angle=(-9.0, 9.0), interpolation="nearest"), rngs=nnx.Rngs(3)),
        ],
    ],
    ids=[
        "nearest-chain",
        "lattice-then-rrc",
        "pad-then-affine",
        "flip-then-resize",
        "bilinear-then-nearest",
    ],
)
def test_fused_chains_that_are_exact(make):
    ops = make()
    images = np.random.default_rng(0).uniform(0, 1, (8, 48, 48, 2)).astype(np.float32)
    fused = run(ops, {"image": images}, fused=True)["image"]
    alone = run(ops, {"image": images}, fused=False)["image"]
    # float32 point arithmetic: points agree to ~1e-6 pixel, values to 1e-5
    np.testing.assert_allclose(fused, alone, atol=1e-5)
    assert gathers(ops, {"image": jnp.asarray(images)}) == 1


def test_crops_and_flips_alone_still_fuse_into_one_exact_gather():
    ops = [
        RandomCrop(RandomCropConfig(size=40, padding=2), rngs=nnx.Rngs(0)),
        Flip(FlipConfig()),
        CenterCrop(CenterCropConfig(size=30)),
        Pad(PadConfig(padding=1, mode="reflect")),
    ]
    images = np.random.default_rng(1).integers(0, 256, (8, 48, 48, 3)).astype(np.uint8)
    fused = run(ops, {"image": images}, fused=True)["image"]
    np.testing.assert_array_equal(fused, run(ops, {"image": images}, fused=False)["image"])
    assert fused.dtype == np.uint8


def test_a_filtered_resize_breaks_the_run_and_runs_alone():
    ops = [Rotate(RotateConfig(angle=10.0)), Resize(ResizeConfig(size=20)), Flip(FlipConfig())]
    images = smooth_images(4)
    fused = run(ops, {"image": images}, fused=True)["image"]
    np.testing.assert_allclose(fused, run(ops, {"image": images}, fused=False)["image"], atol=1e-6)
    assert gathers(ops, {"image": jnp.asarray(images)}) == 2  # rotate; resize (matmuls); flip


def test_fused_chain_in_a_pipeline_equals_one_by_one():
    images = smooth_images(40, 32)
    source = MemorySource(MemorySourceConfig(), data={"image": images})
    ops = [
        Pad(PadConfig(padding=2, mode="edge")),
        Rotate(RotateConfig(angle=(-10.0, 10.0), interpolation="nearest"), rngs=nnx.Rngs(1)),
        RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(2)),
    ]
    pipeline = from_source(source, 16, seed=4)
    for op in ops:
        pipeline = pipeline >> OperatorNode(op)
    for batch in pipeline:
        ids = np.asarray(batch.record_ids)
        data = {"image": jnp.asarray(images[ids])}
        for op in ops:
            data, _ = op.apply_batch(data, {}, jnp.asarray(ids), jnp.asarray(batch.epoch), 4)
        np.testing.assert_array_equal(np.asarray(batch["image"]), np.asarray(data["image"]))


# ----------------------------------------------------------------------- moved fields


def _labels(n, size=48, classes=5):
    return np.random.default_rng(7).integers(1, classes, (n, size, size)).astype(np.int32)


@pytest.mark.parametrize(
    "make, as_nearest",
    [
        (
            lambda also: [Rotate(RotateConfig(angle=(-30.0, 30.0), also=also), rngs=nnx.Rngs(1))],
            lambda: [
                Rotate(RotateConfig(angle=(-30.0, 30.0), interpolation="nearest"), rngs=nnx.Rngs(1))
            ],
        ),
        (
            lambda also: [
                RandomResizedCrop(RandomResizedCropConfig(size=24, also=also), rngs=nnx.Rngs(2)),
                Affine(AffineConfig(rotation=10.0, scale=1.3, also=also)),
                RandomFlip(RandomFlipConfig(also=also), rngs=nnx.Rngs(3)),
            ],
            lambda: [
                RandomResizedCrop(
                    RandomResizedCropConfig(size=24, interpolation="nearest"), rngs=nnx.Rngs(2)
                ),
                Affine(AffineConfig(rotation=10.0, scale=1.3, interpolation="nearest")),
                RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(3)),
            ],
        ),
        (
            lambda also: [Resize(ResizeConfig(size=20, interpolation="bicubic", also=also))],
            lambda: [Resize(ResizeConfig(size=20, interpolation="nearest"))],
        ),
    ],
    ids=["rotate", "rrc-affine-flip", "resize"],
)
@pytest.mark.parametrize("fused", [True, False])
def test_masks_move_with_the_image_by_nearest_sampling(make, as_nearest, fused):
    images, labels = smooth_images(8), _labels(8)
    out = run(make(("mask",)), {"image": images, "mask": labels}, fused=fused)
    # The mask is moved exactly as the same operators with "nearest" move an image.
    reference = run(as_nearest(), {"image": labels}, fused=False)["image"]
    assert out["mask"].dtype == np.int32
    np.testing.assert_array_equal(out["mask"], reference)
    assert set(np.unique(out["mask"])) <= {0, 1, 2, 3, 4}
    # and the image is moved as without the mask
    np.testing.assert_array_equal(
        out["image"], run(make(()), {"image": images}, fused=fused)["image"]
    )


def test_mask_fill_and_operators_without_the_mask_leave_it_alone():
    labels = np.ones((8, 16, 16, 1), np.uint8)
    images = np.zeros((8, 16, 16, 3), np.float32)
    ops = [
        Rotate(RotateConfig(angle=45.0, also=("mask",), also_fill=9)),
        Flip(FlipConfig()),  # moves only the image
    ]
    out = run(ops, {"image": images, "mask": labels}, fused=True)
    corner, centre = out["mask"][:, 0, 0, 0], out["mask"][:, 8, 8, 0]
    assert np.all(corner == 9) and np.all(centre == 1)
    np.testing.assert_array_equal(
        out["mask"], run(ops[:1], {"image": images, "mask": labels}, fused=True)["mask"]
    )


@pytest.mark.parametrize(
    "also, message",
    [
        (("image",), "other than the image field"),
        (("m", "m"), "distinct"),
        ("mask", "distinct"),
        ((3,), "distinct"),
    ],
)
def test_also_config_errors(also, message):
    with pytest.raises(ConfigError, match=rf"RotateConfig\.also: .*{message}"):
        RotateConfig(also=also)
    with pytest.raises(ConfigError, match=r"RotateConfig\.also_fill"):
        RotateConfig(also_fill="zero")


def test_moved_fields_are_checked_when_traced():
    op = Rotate(RotateConfig(angle=10.0, also=("mask",)))
    data = {"image": jnp.zeros((2, 8, 8, 3))}
    with pytest.raises(SchemaError, match=r"Rotate: moved field missing.*'mask'"):
        op.apply_batch(data, {}, jnp.arange(2), jnp.uint32(0), 0)
    bad = {**data, "mask": jnp.zeros((2, 8, 7))}
    with pytest.raises(SchemaError, match=r"field 'mask'.*height and width.*\(8, 8\).*\(8, 7\)"):
        op.apply_batch(bad, {}, jnp.arange(2), jnp.uint32(0), 0)
    with pytest.raises(SchemaError, match=r"fill value not representable"):
        Rotate(RotateConfig(angle=10.0, also=("mask",), also_fill=-1)).apply_batch(
            {**data, "mask": jnp.zeros((2, 8, 8), jnp.uint8)}, {}, jnp.arange(2), jnp.uint32(0), 0
        )
