"""Rotate, Affine, RandomAffine against PIL.Image.rotate and scipy.ndimage.affine_transform.

Conventions: pixel centres at ``i + 0.5``, angles counter-clockwise about the image
centre ``(H / 2, W / 2)``, as PIL's ``rotate``; scipy's centres are at integers, so
its offset is ``t + A @ 0.5 - 0.5`` for our map ``p -> A p + t``.
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
from scipy import ndimage
from skimage import data as skdata

from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.operators.image.affine import (
    Affine,
    AffineConfig,
    RandomAffine,
    RandomAffineConfig,
    Rotate,
    RotateConfig,
    affine_matrix,
)
from datarax.operators.magnitude import draw

PIL_FILTERS = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


@functools.partial(jax.jit, static_argnums=(0,))
def _apply(graphdef, state, images, ids):
    op = nnx.merge(graphdef, state)
    return op.apply_batch({"image": images}, {}, ids, jnp.uint32(2), 5)[0]["image"]


def apply(op, images, ids=None):
    images = jnp.asarray(images)
    ids = jnp.arange(images.shape[0]) if ids is None else jnp.asarray(ids)
    return np.asarray(_apply(*nnx.split(op), images, ids))


def record_values(op, name, n):
    """The value of magnitude ``name`` per record 0..n-1 (epoch 2, seed 5), from its draws."""
    u = op.draws(jnp.arange(n), jnp.uint32(2), 5)
    index = list(getattr(op, "_NAMES", ("angle",))).index(name)
    return np.asarray(draw(getattr(op, name), u[:, index]))


def pil_rotate(image, angle, interpolation, fill):
    mode = "F" if image.dtype == np.float32 else ("RGB" if image.ndim == 3 else "L")
    fillcolor = (fill,) * 3 if mode == "RGB" else fill
    rotated = Image.fromarray(image, mode).rotate(
        float(angle), resample=PIL_FILTERS[interpolation], fillcolor=fillcolor
    )
    return np.asarray(rotated)


# --------------------------------------------------------------------------- Rotate


@settings(max_examples=20, deadline=None)
@given(
    angle=st.floats(-180.0, 180.0),
    size=st.sampled_from([(16, 16), (17, 20), (24, 15)]),
    interpolation=st.sampled_from(["bilinear", "nearest"]),
    fill=st.sampled_from([0.0, 0.25, 1.0]),
)
def test_rotate_matches_pil_on_float_images(angle, size, interpolation, fill):
    image = np.random.default_rng(0).uniform(0, 1, size).astype(np.float32)
    op = Rotate(RotateConfig(angle=angle, interpolation=interpolation, fill=fill))
    out = apply(op, image[None])[0]
    ref = pil_rotate(image, angle, interpolation, fill)
    close = np.abs(out - ref) <= 1e-5  # PIL computes in double, we in float32
    # Every pixel, fill included; a point within float32 rounding of the image
    # border or of a pixel boundary (nearest) may land on the other side.
    assert close.mean() >= 0.995, np.argwhere(~close)[:5]


@pytest.mark.parametrize("angle", [90.0, -90.0, 180.0, 45.0])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_rotate_matches_pil_exactly_at_quarter_turns_and_diagonals(angle, interpolation):
    # An odd size: at 45 degrees an even one puts pixel centres on the diagonals
    # exactly on pixel boundaries, where "nearest" is a tie that float rounding settles.
    image = np.random.default_rng(1).uniform(0, 1, (15, 15)).astype(np.float32)
    out = apply(Rotate(RotateConfig(angle=angle, interpolation=interpolation)), image[None])[0]
    np.testing.assert_allclose(out, pil_rotate(image, angle, interpolation, 0.0), atol=1e-5)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_rotate_uint8_photo_matches_pil_within_one_level(interpolation):
    photo = skdata.coffee()[::12, ::12]  # (34, 50, 3) uint8
    out = apply(Rotate(RotateConfig(angle=33.0, interpolation=interpolation, fill=7)), photo[None])
    assert out.dtype == np.uint8
    diff = out[0].astype(int) - pil_rotate(photo, 33.0, interpolation, 7)
    # PIL truncates 8-bit bilinear results, datarax rounds half up: 0 or +1 level.
    assert diff.min() >= 0 and diff.max() <= (1 if interpolation == "bilinear" else 0)


def test_rotate_per_record_angles_match_pil_and_stay_in_range():
    n = 12
    images = np.random.default_rng(2).uniform(0, 1, (n, 15, 17)).astype(np.float32)
    op = Rotate(RotateConfig(angle=(-40.0, 25.0), fill=0.5), rngs=nnx.Rngs(3))
    assert op.stochastic
    out = apply(op, images)
    angles = record_values(op, "angle", n)
    assert np.all((angles >= -40.0) & (angles <= 25.0)) and np.ptp(angles) > 20.0
    for image, got, angle in zip(images, out, angles, strict=True):
        close = np.abs(got - pil_rotate(image, angle, "bilinear", 0.5)) <= 1e-5
        assert close.mean() >= 0.995


def test_rotate_matches_scipy_affine_transform_in_the_interior():
    image = np.random.default_rng(3).uniform(0, 1, (20, 26)).astype(np.float32)
    out = apply(Rotate(RotateConfig(angle=23.0)), image[None])[0]
    matrix = np.asarray(affine_matrix(20, 26, rotation=23.0))[0]
    ref, inner = scipy_affine(image, matrix, order=1)
    np.testing.assert_allclose(out[inner], ref[inner], atol=1e-5)


def scipy_affine(image, matrix, order):
    """``scipy.ndimage.affine_transform`` with our (y, x, 1) matrix; also the interior mask
    (output pixels whose source point is at least one pixel inside the image)."""
    linear, shift = matrix[:2, :2], matrix[:2, 2]
    offset = shift + linear @ np.array([0.5, 0.5]) - 0.5
    ref = ndimage.affine_transform(image, linear, offset=offset, order=order, mode="nearest")
    h, w = image.shape[-2:]
    yy, xx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    sy = matrix[0, 0] * yy + matrix[0, 1] * xx + matrix[0, 2]
    sx = matrix[1, 0] * yy + matrix[1, 1] * xx + matrix[1, 2]
    inner = (sy > 1.0) & (sy < h - 1.0) & (sx > 1.0) & (sx < w - 1.0)
    return ref, inner


# --------------------------------------------------------------------------- Affine


NAMES = ("rotation", "translate_x", "translate_y", "scale", "shear_x", "shear_y")


def reference_matrix(h, w, rotation, tx, ty, scale, shx, shy):
    """The documented map, built independently on (x, y): input = C + A^-1 (p - C - T)."""
    a, sx, sy = np.deg2rad([rotation, shx, shy])
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    shear_y = np.array([[1.0, 0.0], [-np.tan(sy), 1.0]])
    shear_x = np.array([[1.0, -np.tan(sx)], [0.0, 1.0]])
    forward = scale * rot @ shear_y @ shear_x
    inverse = np.linalg.inv(forward)
    centre, shift = np.array([w / 2, h / 2]), np.array([tx, ty])
    offset = centre - inverse @ (centre + shift)
    swap = np.array([[0, 1], [1, 0]])  # (x, y) -> (y, x)
    out = np.eye(3)
    out[:2, :2] = swap @ inverse @ swap
    out[:2, 2] = swap @ offset
    return out


@settings(max_examples=15, deadline=None)
@given(
    rotation=st.floats(-60, 60),
    tx=st.floats(-4, 4),
    ty=st.floats(-4, 4),
    scale=st.floats(0.7, 1.4),
    shx=st.floats(-20, 20),
    shy=st.floats(-20, 20),
    interpolation=st.sampled_from(["bilinear", "nearest"]),
)
def test_affine_matches_scipy_affine_transform(rotation, tx, ty, scale, shx, shy, interpolation):
    h, w = 18, 22
    image = np.random.default_rng(4).uniform(0, 1, (h, w)).astype(np.float32)
    params = (rotation, tx, ty, scale, shx, shy)
    config = AffineConfig(
        rotation=rotation,
        translate_x=tx,
        translate_y=ty,
        scale=scale,
        shear_x=shx,
        shear_y=shy,
        interpolation=interpolation,
    )
    out = apply(Affine(config), image[None])[0]
    matrix = reference_matrix(h, w, *params)
    np.testing.assert_allclose(
        np.asarray(affine_matrix(h, w, **dict(zip(NAMES, params, strict=True)))[0]),
        matrix,
        atol=2e-5,
    )
    ref, inner = scipy_affine(image, matrix, order=1 if interpolation == "bilinear" else 0)
    if interpolation == "bilinear":
        np.testing.assert_allclose(out[inner], ref[inner], atol=1e-4)
    else:  # nearest: ties between pixels may round either way
        assert np.mean(out[inner] == ref[inner]) > 0.98


def test_affine_rotation_is_rotate_and_identity_is_identity():
    images = np.random.default_rng(5).uniform(0, 1, (3, 12, 14, 2)).astype(np.float32)
    np.testing.assert_allclose(
        apply(Affine(AffineConfig(rotation=31.0)), images),
        apply(Rotate(RotateConfig(angle=31.0)), images),
        atol=1e-6,
    )
    np.testing.assert_allclose(apply(Affine(AffineConfig()), images), images, atol=1e-6)
    # translation by whole pixels shifts the image (pixels from outside are filled)
    shifted = apply(Affine(AffineConfig(translate_x=3.0, translate_y=-2.0, fill=-1.0)), images)
    np.testing.assert_allclose(shifted[:, :-2, 3:], images[:, 2:, :-3], atol=1e-6)
    assert np.all(shifted[:, :, :3] == -1.0) and np.all(shifted[:, -2:] == -1.0)


def test_random_affine_draws_torchvision_ranges_per_record():
    n = 400
    config = RandomAffineConfig(
        degrees=30.0, translate=(0.1, 0.2), scale=(0.8, 1.2), shear=(-5.0, 5.0, -10.0, 0.0)
    )
    op = RandomAffine(config, rngs=nnx.Rngs(6))
    assert op.stochastic
    ranges = {
        "rotation": (-30, 30),
        "translate_x": (-0.1, 0.1),
        "translate_y": (-0.2, 0.2),
        "scale": (0.8, 1.2),
        "shear_x": (-5, 5),
        "shear_y": (-10, 0),
    }
    values = {}
    for name, (low, high) in ranges.items():
        values[name] = v = record_values(op, name, n)
        assert v.min() >= low and v.max() <= high
        assert abs(v.mean() - (low + high) / 2) < 0.1 * (high - low)  # uniform: mean mid
    assert abs(np.corrcoef(values["rotation"], values["scale"])[0, 1]) < 0.2  # independent
    # Each record equals Affine with its drawn values, translations in pixels.
    images = np.random.default_rng(7).uniform(0, 1, (4, 10, 20)).astype(np.float32)
    out = apply(op, images)
    for i in range(4):
        fixed = {k: float(values[k][i]) for k in NAMES}
        fixed["translate_x"] *= 20
        fixed["translate_y"] *= 10
        expected = apply(Affine(AffineConfig(**fixed)), images[i : i + 1])[0]
        np.testing.assert_allclose(out[i], expected, atol=1e-5)


def test_random_affine_single_numbers_are_symmetric_ranges():
    op = RandomAffine(RandomAffineConfig(degrees=10.0, shear=4.0), rngs=nnx.Rngs(0))
    assert op.rotation == (-10.0, 10.0) and op.shear_x == (-4.0, 4.0)
    assert op.shear_y == (0.0, 0.0) and op.scale == (1.0, 1.0)
    assert not RandomAffine.is_stochastic(RandomAffineConfig())


# ------------------------------------------------------------------------- gradients


def _smooth(shape, seed=0):
    field = np.random.default_rng(seed).uniform(0, 1, shape)
    return ndimage.gaussian_filter(field, sigma=(0, 2, 2) + (0,) * (len(shape) - 3)).astype(
        np.float32
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: Rotate(RotateConfig(angle=17.0, learnable=True)),
        lambda: Rotate(RotateConfig(angle=(-20.0, 20.0), learnable=True), rngs=nnx.Rngs(1)),
        lambda: Affine(
            AffineConfig(
                rotation=12.0,
                translate_x=1.3,
                translate_y=-0.7,
                scale=1.1,
                shear_x=5.0,
                shear_y=-3.0,
                learnable=True,
            )
        ),
        lambda: RandomAffine(
            RandomAffineConfig(
                degrees=15.0, translate=(0.1, 0.1), scale=(0.9, 1.1), learnable=True
            ),
            rngs=nnx.Rngs(2),
        ),
    ],
    ids=["rotate", "rotate-range", "affine", "random-affine"],
)
def test_gradients_in_learnable_magnitudes_and_input(make):
    op = make()
    graphdef, params, rest = nnx.split(op, nnx.Param, ...)
    images = jnp.asarray(_smooth((3, 16, 16, 2)))
    # Zero weight near the border: there pixels switch between image and fill (a
    # hard edge, as PIL), which finite differences see as jumps.
    weights = np.random.default_rng(9).normal(size=(3, 16, 16, 2))
    weights[:, :4], weights[:, -4:], weights[:, :, :4], weights[:, :, -4:] = 0, 0, 0, 0
    weights = jnp.asarray(weights, jnp.float32)

    def loss(params, images):
        out = nnx.merge(graphdef, params, rest).apply_batch(
            {"image": images}, {}, jnp.arange(3), jnp.uint32(0), 0
        )[0]["image"]
        return jnp.sum(out * weights)

    grads = jax.grad(loss)(params, images)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads))
    # float32 central differences, 3% tolerance. Bilinear sampling is piecewise linear
    # in the coordinates, so the step must stay well below a pixel: translations are
    # fractions of the image (1e-3 of 16 px), angles degrees, scales factors.
    check_grads(loss, (params, images), order=1, modes=["rev"], eps=1e-3, atol=3e-2, rtol=3e-2)


def test_learnable_magnitudes_are_params_and_fixed_ones_constants():
    op = Affine(AffineConfig(rotation=(1.0, 2.0), learnable=True), rngs=nnx.Rngs(0))
    assert isinstance(op.rotation, nnx.Param) and op.rotation[...].tolist() == [1.0, 2.0]
    assert Affine(AffineConfig(rotation=3.0)).rotation == (3.0, 3.0)


# ---------------------------------------------------------------- errors, pipelines


@pytest.mark.parametrize(
    "cls, kw, where",
    [
        (RotateConfig, {"angle": (5.0, 1.0)}, "RotateConfig.angle"),
        (RotateConfig, {"angle": "10"}, "RotateConfig.angle"),
        (RotateConfig, {"interpolation": "bicubic"}, "RotateConfig.interpolation"),
        (RotateConfig, {"fill": "black"}, "RotateConfig.fill"),
        (RotateConfig, {"learnable": 1}, "RotateConfig.learnable"),
        (AffineConfig, {"scale": 0.0}, "AffineConfig.scale"),
        (AffineConfig, {"scale": (-1.0, 2.0)}, "AffineConfig.scale"),
        (AffineConfig, {"shear_x": 90.0}, "AffineConfig.shear_x"),
        (AffineConfig, {"translate_x": float("nan")}, "AffineConfig.translate_x"),
        (RandomAffineConfig, {"degrees": -1.0}, "RandomAffineConfig.degrees"),
        (RandomAffineConfig, {"translate": (1.5, 0.0)}, "RandomAffineConfig.translate"),
        (RandomAffineConfig, {"translate": 0.1}, "RandomAffineConfig.translate"),
        (RandomAffineConfig, {"scale": 1.2}, "RandomAffineConfig.scale"),
        (RandomAffineConfig, {"scale": (0.0, 1.0)}, "RandomAffineConfig.scale"),
        (RandomAffineConfig, {"shear": (1.0, 2.0, 3.0)}, "RandomAffineConfig.shear"),
        (RandomAffineConfig, {"shear": (0.0, 95.0)}, "RandomAffineConfig.shear"),
    ],
)
def test_config_errors_name_the_field(cls, kw, where):
    with pytest.raises(ConfigError, match=rf"{where}: .*expected .*found"):
        cls(**kw)


def test_schema_errors_when_traced():
    op = Rotate(RotateConfig(angle=10.0, fill=-1.0))
    with pytest.raises(SchemaError, match=r"Rotate, field 'image': fill value not representable"):
        op.apply_batch({"image": jnp.zeros((2, 4, 4), jnp.uint8)}, {}, jnp.arange(2), 0, 0)
    with pytest.raises(SchemaError, match=r"rank 2 or 3"):
        op.apply_batch({"image": jnp.zeros((2, 4))}, {}, jnp.arange(2), jnp.uint32(0), 0)
    with pytest.raises(SchemaError, match=r"Rotate: image field missing"):
        op.apply_batch({"pixels": jnp.zeros((2, 4, 4))}, {}, jnp.arange(2), jnp.uint32(0), 0)


def test_fixed_operators_need_no_rngs_but_ranges_do():
    assert not Rotate(RotateConfig(angle=5.0)).stochastic
    with pytest.raises(OperatorError, match="rngs"):
        Rotate(RotateConfig(angle=(0.0, 5.0)))
    with pytest.raises(OperatorError, match="rngs"):
        RandomAffine(RandomAffineConfig(degrees=5.0))


@pytest.mark.slow
def test_rotate_and_random_affine_pass_the_in_pipeline_check():
    images = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    masks = np.random.default_rng(1).integers(0, 4, (40, 8, 8), dtype=np.uint8)
    assert_operator_in_pipeline(
        lambda: Rotate(RotateConfig(angle=(-30.0, 30.0), also=("mask",)), rngs=nnx.Rngs(1)),
        {"image": images, "mask": masks},
    )
    assert_operator_in_pipeline(
        lambda: RandomAffine(
            RandomAffineConfig(degrees=20.0, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5.0),
            rngs=nnx.Rngs(2),
        ),
        {"image": images.astype(np.float32) / 255},
        resume=False,
    )
