"""PixelDropout, ChannelDropout, PatchDropout, Cutout and RandomErasing.

Each record's random numbers are recomputed from its key
(``record_key(op.random_words(...))``) and the expected output is built with NumPy;
RandomErasing's box rule is torchvision's algorithm, re-written in NumPy here. Counts
(dropped pixels, channels, patches; box areas) are checked exactly.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import op_testing
import pytest
from flax import nnx
from in_pipeline import assert_operator_in_pipeline

from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.image.base import uniform
from datarax.operators.image.noise import record_key
from datarax.operators.image.occlusion import (
    ChannelDropout,
    ChannelDropoutConfig,
    Cutout,
    CutoutConfig,
    PatchDropout,
    PatchDropoutConfig,
    PixelDropout,
    PixelDropoutConfig,
    RandomErasing,
    RandomErasingConfig,
)

EPOCH, SEED = 1, 4


def apply(op, images, ids=None):
    """``op`` on a batch, compiled once per operator structure and input shape."""
    return op_testing.apply(op, images, ids, epoch=EPOCH, seed=SEED)


def words_of(op, ids):
    """The records' random words, as the operator computes them (compiled)."""
    return op_testing.words_of(op, ids, epoch=EPOCH, seed=SEED)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _uniforms(words, shape, split):
    keys = record_key(words)
    if split is not None:
        keys = jax.vmap(jax.random.split)(keys)[:, split]
    return jax.vmap(lambda k: jax.random.uniform(k, shape))(keys)


def key_uniforms(op, ids, shape, split=None):
    """``jax.random.uniform(record_key, shape)`` per record (of split ``split`` if given)."""
    return np.asarray(_uniforms(words_of(op, ids), shape, split))


def first_uniform(op, ids):
    return np.asarray(uniform(words_of(op, ids)[:, 0]))


def distinct_images(shape, seed=0):
    """uint8 images in [10, 250]: never equal to the fills used here (0, 255, 7)."""
    return np.random.default_rng(seed).integers(10, 250, shape).astype(np.uint8)


def ranks(u):
    return np.argsort(np.argsort(u, axis=1, kind="stable"), axis=1, kind="stable")


# ---------------------------------------------------------------------- PixelDropout


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("probability", [0.3, (0.1, 0.6)], ids=["fixed", "range"])
def test_pixel_dropout_drops_exactly_the_drawn_pixels(probability, per_channel):
    op = PixelDropout(
        PixelDropoutConfig(probability=probability, per_channel=per_channel, fill=7),
        rngs=nnx.Rngs(0),
    )
    ids = np.arange(6) * 3 + 2
    x = distinct_images((6, 10, 12, 3), seed=1)
    out = apply(op, x, ids)
    low, high = (probability,) * 2 if isinstance(probability, float) else probability
    p = np.float32(low) + first_uniform(op, ids) * np.float32(high - low)
    u = key_uniforms(op, ids, (10, 12, 3) if per_channel else (10, 12))
    dropped = u < p.reshape(-1, *[1] * (u.ndim - 1))
    if not per_channel:
        dropped = np.broadcast_to(dropped[..., None], x.shape)
    np.testing.assert_array_equal(out, np.where(dropped, 7, x))
    assert np.sum(out == 7) == np.sum(dropped)  # exact count


def test_pixel_dropout_fraction_is_the_probability():
    op = PixelDropout(PixelDropoutConfig(probability=0.25), rngs=nnx.Rngs(1))
    out = apply(op, np.ones((8, 32, 32), np.float32))
    # binomial(8192, 0.25): sd ~ 39; 5 sd
    assert abs(np.sum(out == 0.0) - 0.25 * out.size) < 200


def test_pixel_dropout_fill_must_fit_the_dtype():
    for fill in (-1.0, 0.5, 300.0):
        op = PixelDropout(PixelDropoutConfig(probability=0.5, fill=fill), rngs=nnx.Rngs(0))
        with pytest.raises(SchemaError, match="fill value not representable") as exc:
            apply(op, distinct_images((2, 4, 4)))
        assert "uint8" in str(exc.value) and repr(fill) in str(exc.value)


# -------------------------------------------------------------------- ChannelDropout


@pytest.mark.parametrize("count", [1, (0, 3)], ids=["fixed", "range"])
def test_channel_dropout_drops_the_lowest_ranked_channels(count):
    op = ChannelDropout(ChannelDropoutConfig(count=count, fill=255), rngs=nnx.Rngs(2))
    n, channels = 64, 4
    ids = np.arange(n) + 50
    x = distinct_images((n, 5, 6, channels), seed=2)
    out = apply(op, x, ids)
    low, high = (count, count) if isinstance(count, int) else count
    counts = low + np.floor(first_uniform(op, ids) * (high - low + 1)).astype(int)
    dropped = ranks(key_uniforms(op, ids, (channels,))) < counts[:, None]  # (n, C)
    np.testing.assert_array_equal(out, np.where(dropped[:, None, None, :], 255, x))
    whole = (out == 255).all(axis=(1, 2))  # a channel is dropped entirely or not at all
    assert np.array_equal(whole, (out == 255).any(axis=(1, 2)))
    np.testing.assert_array_equal(whole.sum(axis=1), counts)  # exact count per record
    assert set(counts.tolist()) == set(range(low, high + 1))  # every count drawn


@pytest.mark.parametrize("shape", [(2, 4, 4), (2, 4, 4, 3)], ids=["gray", "3-channels"])
def test_channel_dropout_needs_more_channels_than_it_drops(shape):
    op = ChannelDropout(ChannelDropoutConfig(count=(1, 3)), rngs=nnx.Rngs(0))
    with pytest.raises(SchemaError, match="more channels than it drops") as exc:
        apply(op, distinct_images(shape))
    assert "C > 3" in str(exc.value)


def test_channel_dropout_config_errors():
    with pytest.raises(ConfigError, match=r"ChannelDropoutConfig\.count"):
        ChannelDropoutConfig(count=(3, 1))
    with pytest.raises(ConfigError, match=r"ChannelDropoutConfig\.count"):
        ChannelDropoutConfig(count=-1)
    with pytest.raises(ConfigError, match=r"ChannelDropoutConfig\.fill"):
        ChannelDropoutConfig(fill="zero")


# ---------------------------------------------------------------------- PatchDropout


@pytest.mark.parametrize(
    "shape, patch, fraction",
    [((8, 8, 12, 3), 4, 0.5), ((8, 10, 10), (4, 3), (0.0, 1.0)), ((8, 6, 6, 1), 2, 0.3)],
    ids=["divisible", "ragged-grid-range", "round"],
)
def test_patch_dropout_drops_an_exact_number_of_whole_patches(shape, patch, fraction):
    op = PatchDropout(PatchDropoutConfig(patch_size=patch, fraction=fraction), rngs=nnx.Rngs(3))
    ids = np.arange(shape[0]) * 13
    x = distinct_images(shape, seed=3)
    out = apply(op, x, ids)
    p_h, p_w = (patch, patch) if isinstance(patch, int) else patch
    g_h, g_w = -(-shape[1] // p_h), -(-shape[2] // p_w)
    n = g_h * g_w
    low, high = (fraction,) * 2 if isinstance(fraction, float) else fraction
    f = np.float32(low) + first_uniform(op, ids) * np.float32(high - low)
    counts = np.floor(f * np.float32(n) + np.float32(0.5)).astype(int)
    dropped = (ranks(key_uniforms(op, ids, (n,))) < counts[:, None]).reshape(-1, g_h, g_w)
    mask = dropped.repeat(p_h, axis=1).repeat(p_w, axis=2)[:, : shape[1], : shape[2]]
    if len(shape) == 4:
        mask = mask[..., None]
    np.testing.assert_array_equal(out, np.where(mask, 0, x))
    np.testing.assert_array_equal(dropped.sum(axis=(1, 2)), counts)
    if isinstance(fraction, float):  # round(0.3 * 9) = 3, round(0.5 * 6) = 3
        assert set(counts.tolist()) == {math.floor(fraction * n + 0.5)}


def test_patch_dropout_config_errors():
    with pytest.raises(ConfigError, match=r"PatchDropoutConfig\.patch_size"):
        PatchDropoutConfig(patch_size=(0, 4))
    with pytest.raises(ConfigError, match=r"PatchDropoutConfig\.fraction"):
        PatchDropoutConfig(fraction=1.5)


# ---------------------------------------------------------------------------- Cutout


def test_cutout_boxes_are_clipped_boxes_of_the_drawn_centres():
    op = Cutout(CutoutConfig(size=(5, 4), probability=0.7, fill=7), rngs=nnx.Rngs(4))
    n, h, w = 200, 12, 10
    ids = np.arange(n) + 9
    x = distinct_images((n, h, w, 2), seed=4)
    out = apply(op, x, ids)
    u = key_uniforms(op, ids, (3,))
    cut = u[:, 0] < 0.7
    cy, cx = np.floor(u[:, 1] * h).astype(int), np.floor(u[:, 2] * w).astype(int)
    expected = x.copy()
    areas = np.zeros(n, int)
    for i in np.flatnonzero(cut):  # the reference: a loop over records, NumPy slicing
        t, lft = max(cy[i] - 2, 0), max(cx[i] - 2, 0)
        b, r = min(cy[i] - 2 + 5, h), min(cx[i] - 2 + 4, w)
        expected[i, t:b, lft:r] = 7
        areas[i] = (b - t) * (r - lft)
    np.testing.assert_array_equal(out, expected)
    filled = (out == 7).all(-1).sum(axis=(1, 2))
    np.testing.assert_array_equal(filled, areas)
    assert filled.max() == 20 and filled[cut].min() >= 3 * 2  # a corner keeps >= 3 x 2
    assert abs(cut.mean() - 0.7) < 0.11  # binomial(200, 0.7): 3.4 sd


# --------------------------------------------------------------------- RandomErasing


def torchvision_erasing(u_p, attempts, height, width, scale, ratio):
    """torchvision ``RandomErasing.get_params`` in NumPy, with given uniforms.

    ``attempts``: (10, 4) uniforms for (area, log ratio, top, left). Returns
    ``(top, left, h, w)`` or ``None`` when the record is left unchanged.
    """
    if not u_p < 0.5:
        return None
    area = height * width
    log_ratio = np.log(np.float32(ratio[0])), np.log(np.float32(ratio[1]))
    for a, r, t, lft in attempts:
        erase_area = np.float32(area) * (np.float32(scale[0]) + a * np.float32(scale[1] - scale[0]))
        aspect = np.exp(log_ratio[0] + r * (log_ratio[1] - log_ratio[0]))
        h = int(round(float(np.sqrt(erase_area * aspect))))
        w = int(round(float(np.sqrt(erase_area / aspect))))
        if not (h < height and w < width):
            continue
        return int(np.floor(t * (height - h + 1))), int(np.floor(lft * (width - w + 1))), h, w
    return None


@pytest.mark.parametrize(
    "scale, ratio", [((0.02, 0.33), (0.3, 3.3)), ((0.5, 0.9), (0.2, 5.0))], ids=["default", "large"]
)
def test_random_erasing_follows_torchvision_box_rule(scale, ratio):
    value = (7, 255, 0)
    config = RandomErasingConfig(probability=0.5, scale=scale, ratio=ratio, value=value)
    op = RandomErasing(config, rngs=nnx.Rngs(5))
    n, h, w = 120, 12, 16
    ids = np.arange(n) * 2
    x = distinct_images((n, h, w, 3), seed=5)
    out = apply(op, x, ids)
    u_p = first_uniform(op, ids)
    attempts = key_uniforms(op, ids, (10, 4), split=0)
    expected = x.copy()
    erased = 0
    for i in range(n):
        box = torchvision_erasing(u_p[i], attempts[i], h, w, scale, ratio)
        if box is not None:
            t, lft, bh, bw = box
            expected[i, t : t + bh, lft : lft + bw] = value
            erased += 1
            assert bh * bw <= scale[1] * h * w + bh + bw  # rounding of h and w only
    np.testing.assert_array_equal(out, expected)
    assert 0.3 * n < erased < 0.7 * n


def test_random_erasing_random_values_come_from_the_second_key():
    config = RandomErasingConfig(probability=1.0, scale=(0.2, 0.4), value="random")
    op = RandomErasing(config, rngs=nnx.Rngs(6))
    ids = np.arange(4)
    x = np.full((4, 10, 10, 3), 0.5, np.float32)
    out = apply(op, x, ids)
    keys = jax.vmap(jax.random.split)(record_key(words_of(op, ids)))[:, 1]
    noise = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (10, 10, 3)))(keys))
    erased = out != 0.5
    assert erased.any(axis=(1, 2, 3)).all()
    np.testing.assert_array_equal(out[erased], noise[erased])


def test_random_erasing_never_fits_leaves_the_image():
    # 2x2 images: any area of at least half the image rounds to a side of >= 2.
    op = RandomErasing(RandomErasingConfig(probability=1.0, scale=(0.9, 1.0)), rngs=nnx.Rngs(0))
    x = distinct_images((16, 2, 2, 3))
    np.testing.assert_array_equal(apply(op, x), x)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"probability": 1.5}, "probability"),
        ({"scale": (0.5, 0.1)}, "scale"),
        ({"scale": (0.1, 1.5)}, "scale"),
        ({"ratio": (0.0, 1.0)}, "ratio"),
        ({"value": "noise"}, "value"),
        ({"value": ()}, "value"),
    ],
)
def test_random_erasing_config_errors(kw, field):
    with pytest.raises(ConfigError, match=rf"RandomErasingConfig\.{field}"):
        RandomErasingConfig(**kw)


def test_random_erasing_per_channel_value_must_match_the_channels():
    op = RandomErasing(RandomErasingConfig(probability=1.0, value=(1.0, 2.0)), rngs=nnx.Rngs(0))
    with pytest.raises(SchemaError, match="one erasing value per channel"):
        apply(op, np.zeros((2, 8, 8, 3), np.float32))


def test_occlusion_passes_gradients_to_kept_pixels():
    op = PatchDropout(PatchDropoutConfig(patch_size=2, fraction=0.5), rngs=nnx.Rngs(7))
    x = jnp.asarray(np.random.default_rng(8).uniform(0.1, 1, (2, 4, 4, 1)).astype(np.float32))
    ids = jnp.arange(2, dtype=jnp.int32)

    def total(x):
        return jnp.sum(op.apply_batch({"image": x}, {}, ids, jnp.uint32(0), 0)[0]["image"])

    grad = np.asarray(jax.grad(total)(x))
    kept = np.asarray(op.apply_batch({"image": x}, {}, ids, jnp.uint32(0), 0)[0]["image"]) != 0
    np.testing.assert_array_equal(grad, kept.astype(np.float32))  # 1 where kept, 0 where dropped


# ------------------------------------------------------------------------ in pipeline


@pytest.mark.slow
def test_occlusion_operators_pass_the_in_pipeline_check():
    data = {"image": np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)}
    makers = [
        lambda: PatchDropout(PatchDropoutConfig(patch_size=4, fraction=0.5), rngs=nnx.Rngs(1)),
        lambda: PixelDropout(PixelDropoutConfig(probability=(0.0, 0.2)), rngs=nnx.Rngs(2)),
        lambda: ChannelDropout(ChannelDropoutConfig(count=(1, 2)), rngs=nnx.Rngs(3)),
        lambda: Cutout(CutoutConfig(size=3), rngs=nnx.Rngs(4)),
        lambda: RandomErasing(RandomErasingConfig(), rngs=nnx.Rngs(5)),
    ]
    for i, make in enumerate(makers):
        assert_operator_in_pipeline(make, data, resume=i == 0)
