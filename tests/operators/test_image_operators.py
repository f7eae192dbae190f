"""Image operators (Normalize, RandomCrop, RandomFlip) against NumPy references.

RandomCrop and RandomFlip are checked as black boxes: every output record must be
SOME window of the NumPy-padded input (found by brute force over all offsets),
possibly mirrored along the right axis, and the offsets / flip decisions must be
spread as documented and depend only on (record id, epoch, seed).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from numpy.lib.stride_tricks import sliding_window_view

from datarax import from_source
from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.dag.nodes import OperatorNode
from datarax.operators.image import (
    ImageOperator,
    ImageOperatorConfig,
    Normalize,
    NormalizeConfig,
    RandomCrop,
    RandomCropConfig,
    RandomFlip,
    RandomFlipConfig,
)
from datarax.sources import MemorySource, MemorySourceConfig

# --------------------------------------------------------------------------- helpers


@functools.partial(jax.jit, static_argnums=(0, 5))
def _run_ops(graphdef, state, data, record_ids, epoch, seed):
    # Operators are passed as (graphdef, state) like the pipeline's compiled function
    # does, so operators built alike share one compilation (eager per-record key
    # derivation would recompile for every new batch size and be much slower).
    for op in nnx.merge(graphdef, state):
        data, _ = op.apply_batch(data, {}, record_ids, epoch, seed)
    return data


def apply_ops(ops, data, ids, *, epoch=0, seed=0):
    """``op.apply_batch`` of each of ``ops`` in turn, compiled; returns the data dict."""
    graphdef, state = nnx.split(tuple(ops))
    return _run_ops(graphdef, state, data, jnp.asarray(ids, jnp.int32), jnp.uint32(epoch), seed)


def apply(op, images, ids=None, *, epoch=0, seed=0, field="image"):
    """Run ``op.apply_batch`` on one batch of images; returns the images as NumPy."""
    images = jnp.asarray(images)
    ids = np.arange(images.shape[0]) if ids is None else np.asarray(ids)
    return np.asarray(apply_ops([op], {field: images}, ids, epoch=epoch, seed=seed)[field])


def continuous_images(shape, seed=0):
    """Float images in [0.1, 1): no two windows (or mirrors) of them are equal."""
    return np.random.default_rng(seed).uniform(0.1, 1.0, shape).astype(np.float32)


def pad_images(images, padding, fill):
    """``np.pad`` of a batch (B, H, W[, C]) by (pad_y, pad_x) on each side with ``fill``."""
    pad_y, pad_x = (padding, padding) if isinstance(padding, int) else padding
    widths = [(0, 0), (pad_y, pad_y), (pad_x, pad_x)] + [(0, 0)] * (images.ndim - 3)
    return np.pad(images, widths, constant_values=fill)


def window_matches(padded, out, atol=0.0):
    """Bool ``(B, span_y, span_x)``: does ``out[b]`` equal window (dy, dx) of ``padded[b]``?"""
    h, w = out.shape[1:3]
    windows = sliding_window_view(padded, (h, w), axis=(1, 2))  # (B, sy, sx, [C,] h, w)
    if padded.ndim == 4:
        windows = np.moveaxis(windows, 3, -1)  # (B, sy, sx, h, w, C)
    target = out[:, None, None]
    equal = (windows == target) if atol == 0.0 else np.abs(windows - target) <= atol
    return np.all(equal, axis=tuple(range(3, windows.ndim)))


def crop_offsets(padded, out, *, unique=True):
    """The (dy, dx) window of ``padded`` each output record equals; asserts it exists."""
    matches = window_matches(padded, out)
    counts = matches.sum(axis=(1, 2))
    assert np.all(counts >= 1), f"records {np.flatnonzero(counts == 0)} match no window"
    if unique:
        assert np.all(counts == 1), "continuous data should match exactly one window"
    flat = matches.reshape(len(out), -1).argmax(axis=1)
    return np.stack(np.unravel_index(flat, matches.shape[1:]), axis=1)


def flip_decisions(op, ids, *, epoch=0, seed=0):
    """Which records ``op`` (a RandomFlip) mirrors, read from a two-pixel image."""
    n = len(ids)
    if op.config.direction == "horizontal":
        images = np.broadcast_to(np.array([[0.0, 1.0]], np.float32), (n, 1, 2))
    else:
        images = np.broadcast_to(np.array([[0.0], [1.0]], np.float32), (n, 2, 1))
    out = apply(op, images, ids, epoch=epoch, seed=seed)
    flipped = out.reshape(n, 2)[:, 0] == 1.0
    assert np.all(out.reshape(n, 2).sum(axis=1) == 1.0)  # a permutation of the two pixels
    return flipped


def crop(size, padding=0, fill=0.0, seed=0, **kw):
    return RandomCrop(
        RandomCropConfig(size=size, padding=padding, fill=fill, **kw), rngs=nnx.Rngs(seed)
    )


def flip(direction="horizontal", probability=0.5, seed=0, **kw):
    return RandomFlip(
        RandomFlipConfig(direction=direction, probability=probability, **kw), rngs=nnx.Rngs(seed)
    )


def memory_source(data):
    return MemorySource(MemorySourceConfig(), data=data)


# ------------------------------------------------------------------------- Normalize

MEAN3, STD3 = (120.5, 110.25, 100.75), (60.0, 55.5, 50.25)


@pytest.mark.parametrize("in_dtype", [np.uint8, np.float32])
@pytest.mark.parametrize(
    "mean, std",
    [(0.0, 1.0), (127.5, 64.0), (MEAN3, STD3), ((1.0, -2.0, 0.5), 3.0)],
    ids=["identity", "scalar", "per-channel", "mixed"],
)
def test_normalize_matches_numpy(in_dtype, mean, std):
    x = np.random.default_rng(1).integers(0, 256, (5, 4, 6, 3)).astype(in_dtype)
    if in_dtype == np.float32:
        x = x + np.float32(0.25)
    out = apply(Normalize(NormalizeConfig(mean=mean, std=std)), x)
    expected = (x.astype(np.float64) - np.asarray(mean)) / np.asarray(std)
    assert out.dtype == np.float32
    assert out.shape == x.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_normalize_grayscale_scalar():
    x = np.random.default_rng(2).integers(0, 256, (3, 5, 7)).astype(np.uint8)
    out = apply(Normalize(NormalizeConfig(mean=100.0, std=25.0)), x)
    assert out.dtype == np.float32 and out.shape == (3, 5, 7)
    np.testing.assert_allclose(out, (x.astype(np.float64) - 100.0) / 25.0, rtol=1e-6, atol=1e-6)


def test_normalize_float16_output():
    x = np.random.default_rng(3).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    out = apply(Normalize(NormalizeConfig(mean=MEAN3, std=STD3, dtype="float16")), x)
    assert out.dtype == np.float16
    expected = (x.astype(np.float64) - np.asarray(MEAN3)) / np.asarray(STD3)
    np.testing.assert_allclose(out.astype(np.float64), expected, rtol=2e-3, atol=2e-3)


def _bfloat16_config(**kw):
    return NormalizeConfig(**kw, dtype="bfloat16")


def test_normalize_bfloat16_output_values():
    x = np.random.default_rng(4).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    out = Normalize(_bfloat16_config(mean=MEAN3, std=STD3)).apply_batch(
        {"image": jnp.asarray(x)}, {}, jnp.arange(2), jnp.uint32(0), 0
    )[0]["image"]
    assert out.dtype == jnp.bfloat16
    expected = (x.astype(np.float64) - np.asarray(MEAN3)) / np.asarray(STD3)
    # bfloat16 keeps 8 significant bits: relative error <= 2**-8.
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=2**-8, atol=1e-2)


def test_normalize_config_accepts_bfloat16():
    config = NormalizeConfig(mean=0.5, std=0.25, dtype="bfloat16")
    out = apply(Normalize(config), np.ones((1, 2, 2, 1), np.float32))
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(out.astype(np.float32), 2.0)


def test_normalize_changes_only_its_field_and_needs_no_rngs():
    op = Normalize(NormalizeConfig(field="pixels", mean=2.0, std=4.0))
    assert not op.stochastic
    data = {
        "pixels": jnp.full((2, 3, 3), 10, jnp.uint8),
        "image": jnp.ones((2, 3, 3)),
        "label": jnp.arange(2),
    }
    states = {"s": jnp.zeros(2)}
    out, out_states = op.apply_batch(data, states, jnp.arange(2), jnp.uint32(0), 0)
    np.testing.assert_array_equal(out["pixels"], np.full((2, 3, 3), 2.0, np.float32))
    assert out["image"] is data["image"] and out["label"] is data["label"]
    assert out_states is states


@pytest.mark.parametrize("std", [0.0, -1.0, (1.0, 0.0, 2.0), (1.0, -3.0)])
def test_normalize_config_rejects_non_positive_std(std):
    with pytest.raises(ConfigError, match=r"NormalizeConfig\.std") as exc:
        NormalizeConfig(std=std)
    assert "positive" in str(exc.value)


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool", "int8"])
def test_normalize_config_rejects_non_float_dtype(dtype):
    with pytest.raises(ConfigError, match=r"NormalizeConfig\.dtype") as exc:
        NormalizeConfig(dtype=dtype)
    assert repr(dtype) in str(exc.value)


def test_normalize_config_rejects_nan_std():
    with pytest.raises(ConfigError, match=r"NormalizeConfig\.std"):
        NormalizeConfig(std=float("nan"))


def test_normalize_config_unknown_dtype_is_a_config_error():
    with pytest.raises(ConfigError, match=r"NormalizeConfig\.dtype"):
        NormalizeConfig(dtype="not-a-dtype")


# ------------------------------------------------------------------------ RandomCrop


@pytest.mark.parametrize(
    "shape, size, padding, fill",
    [
        ((24, 8, 8, 3), 8, 2, 0.0),  # square, CIFAR-like
        ((24, 8, 8), 8, 2, -1.5),  # grayscale, non-zero fill
        ((24, 8, 10, 2), (5, 7), (1, 2), 0.0),  # non-square size and padding
        ((24, 8, 6, 3), (5, 6), 0, 0.0),  # no padding, full width: random rows only
        ((24, 6, 6, 1), 8, 2, 3.0),  # crop larger than the image, padding fits
    ],
    ids=["square", "grayscale", "non-square", "no-padding", "larger-than-image"],
)
def test_crop_is_a_window_of_the_padded_image(shape, size, padding, fill):
    x = continuous_images(shape, seed=5)
    ids = np.arange(1000, 1000 + shape[0]) * 3
    out = apply(crop(size, padding, fill), x, ids, epoch=2, seed=9)
    out_h, out_w = (size, size) if isinstance(size, int) else size
    assert out.shape == (shape[0], out_h, out_w, *shape[3:])
    assert out.dtype == x.dtype
    crop_offsets(pad_images(x, padding, fill), out)


def test_crop_uint8_with_fill():
    x = np.random.default_rng(6).integers(10, 250, (32, 6, 6, 3)).astype(np.uint8)
    out = apply(crop(6, 2, fill=7.0), x)
    assert out.dtype == np.uint8
    offsets = crop_offsets(pad_images(x, 2, 7), out, unique=False)
    assert len({tuple(o) for o in offsets}) > 5


def test_crop_without_padding_at_full_size_is_identity():
    x = continuous_images((4, 5, 6, 3))
    np.testing.assert_array_equal(apply(crop((5, 6)), x), x)


@pytest.mark.parametrize("padding, span", [(2, (5, 5)), ((1, 3), (3, 7))])
def test_crop_offsets_cover_all_positions_uniformly(padding, span):
    n = 4000
    x = continuous_images((n, 6, 6), seed=7)
    out = apply(crop(6, padding), x, np.arange(n))
    offsets = crop_offsets(pad_images(x, padding, 0.0), out)
    counts = np.zeros(span, np.int64)
    np.add.at(counts, (offsets[:, 0], offsets[:, 1]), 1)
    cells = counts.size
    assert counts.min() > 0, f"offsets never drawn:\n{counts}"
    expected = n / cells
    chi2 = ((counts - expected) ** 2 / expected).sum()
    # df = cells - 1 (24 or 20); mean df, sd sqrt(2 df) < 7: 4 df is a ~10-sigma bound.
    assert chi2 < 4 * (cells - 1), f"chi2={chi2:.1f}\n{counts}"
    # each axis on its own, too
    for axis in (0, 1):
        marginal = counts.sum(axis=1 - axis)
        assert np.all(np.abs(marginal / n - 1 / len(marginal)) < 0.04), marginal


def test_crop_depends_on_record_id_not_batch_position_or_size():
    op = crop(6, 2)
    ids = np.arange(60) * 37 + 5
    x = continuous_images((60, 6, 6, 2), seed=8)
    full = apply(op, x, ids, epoch=1, seed=3)

    order = np.random.default_rng(0).permutation(60)[:17]
    part = apply(op, x[order], ids[order], epoch=1, seed=3)
    np.testing.assert_array_equal(part, full[order])

    for i in (0, 13, 59):  # batch of one
        np.testing.assert_array_equal(
            apply(op, x[i : i + 1], ids[i : i + 1], epoch=1, seed=3), full[i : i + 1]
        )


def test_crop_changes_with_epoch_and_seed_but_not_between_equal_operators():
    n, x = 400, continuous_images((400, 6, 6), seed=9)
    padded = pad_images(x, 2, 0.0)

    def offsets(op, epoch, seed):
        return crop_offsets(padded, apply(op, x, np.arange(n), epoch=epoch, seed=seed))

    op = crop(6, 2, seed=0)
    base = offsets(op, 0, 0)
    np.testing.assert_array_equal(offsets(op, 0, 0), base)  # deterministic
    np.testing.assert_array_equal(offsets(crop(6, 2, seed=0), 0, 0), base)  # same rngs seed
    # 25 offsets: two independent draws agree for ~4% of records.
    for other in (offsets(op, 1, 0), offsets(op, 0, 1), offsets(crop(6, 2, seed=1), 0, 0)):
        same = np.mean(np.all(other == base, axis=1))
        assert same < 0.15, same


def test_crop_larger_than_padded_image_raises_schema_error():
    op = crop(9, 0)
    with pytest.raises(SchemaError, match="crop larger than the padded image") as exc:
        apply(op, continuous_images((2, 8, 8, 3)))
    assert "(9, 9)" in str(exc.value.expected) and "(8, 8)" in str(exc.value.found)

    with pytest.raises(SchemaError, match="crop larger than the padded image") as exc:
        apply(crop((5, 13), (1, 2)), continuous_images((2, 4, 8)))
    assert exc.value.expected == "padded size >= (5, 13)"
    assert exc.value.found == "(6, 12)"


def test_crop_too_large_fails_when_the_pipeline_is_built():
    source = memory_source({"image": np.zeros((10, 8, 8, 3), np.uint8)})
    base = from_source(source, 4)
    with pytest.raises(SchemaError, match="crop larger than the padded image") as exc:
        base >> OperatorNode(crop(12, 1))  # padded 10x10 < 12x12
    assert "(12, 12)" in str(exc.value) and "(10, 10)" in str(exc.value)
    pipeline = base >> OperatorNode(crop(10, 1))  # exactly fits: builds fine
    assert pipeline.output_spec[0]["image"].shape == (10, 10, 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: crop(4, **kw),
        lambda **kw: flip(**kw),
        lambda **kw: Normalize(NormalizeConfig(**kw)),
    ],
    ids=["crop", "flip", "normalize"],
)
def test_missing_field_raises_schema_error_naming_it(make):
    op = make(field="pixels")
    data = {"image": jnp.zeros((2, 6, 6, 3)), "label": jnp.arange(2)}
    with pytest.raises(SchemaError, match="pixels") as exc:
        op.apply_batch(data, {}, jnp.arange(2), jnp.uint32(0), 0)
    assert "image" in str(exc.value)  # lists the fields that do exist
    source = memory_source({"image": np.zeros((4, 6, 6, 3), np.uint8)})
    with pytest.raises(SchemaError, match="pixels"):
        from_source(source, 2) >> OperatorNode(op)


@pytest.mark.parametrize(
    "make",
    [lambda: crop(4), lambda: flip(), lambda: Normalize(NormalizeConfig())],
    ids=["crop", "flip", "normalize"],
)
@pytest.mark.parametrize("record_shape", [(16,), (), (2, 3, 4, 1)])
def test_wrong_rank_per_record_raises_schema_error(make, record_shape):
    images = jnp.zeros((3, *record_shape))
    with pytest.raises(SchemaError, match=r"rank 2 or 3") as exc:
        make().apply_batch({"image": images}, {}, jnp.arange(3), jnp.uint32(0), 0)
    assert str(record_shape) in str(exc.value)


@pytest.mark.parametrize(
    "kw, where",
    [
        ({"size": -1}, "size"),
        ({"size": (4, 4, 4)}, "size"),
        ({"size": (4, -2)}, "size"),
        ({"padding": -1}, "padding"),
        ({"padding": (1, 2, 3)}, "padding"),
        ({"field": ""}, "field"),
    ],
)
def test_crop_config_errors(kw, where):
    with pytest.raises(ConfigError, match=rf"RandomCropConfig\.{where}"):
        RandomCropConfig(**kw)


def test_crop_config_zero_size_is_a_config_error():
    with pytest.raises(ConfigError, match=r"RandomCropConfig\.size"):
        RandomCropConfig(size=(0, 4))


# ------------------------------------------------------------------------ RandomFlip


@pytest.mark.parametrize("direction, axis", [("horizontal", 2), ("vertical", 1)])
@pytest.mark.parametrize("shape", [(64, 5, 7, 3), (64, 5, 7)], ids=["color", "grayscale"])
def test_flip_output_is_input_or_its_mirror(direction, axis, shape):
    x = continuous_images(shape, seed=10)
    out = apply(flip(direction), x, np.arange(64) + 500, epoch=3, seed=1)
    assert out.shape == x.shape and out.dtype == x.dtype
    per_record = tuple(range(1, x.ndim))
    same = np.all(out == x, axis=per_record)
    mirrored = np.all(out == np.flip(x, axis=axis), axis=per_record)
    assert np.all(same ^ mirrored)
    assert 10 < mirrored.sum() < 54


@pytest.mark.parametrize(
    "direction, probability, low, high",
    [
        ("horizontal", 0.5, 0.4, 0.6),
        ("vertical", 0.5, 0.4, 0.6),
        ("horizontal", 0.2, 0.15, 0.25),
        ("horizontal", 0.0, 0.0, 0.0),
        ("horizontal", 1.0, 1.0, 1.0),
        ("vertical", 1.0, 1.0, 1.0),
    ],
)
def test_flip_fraction_matches_probability(direction, probability, low, high):
    flipped = flip_decisions(flip(direction, probability), np.arange(2000), epoch=1, seed=2)
    assert low <= flipped.mean() <= high, flipped.mean()


def test_flip_decisions_depend_only_on_record_epoch_and_seed():
    op = flip()
    ids = np.arange(500) * 11 + 2
    base = flip_decisions(op, ids, epoch=4, seed=6)

    # other batch positions, batch size and image content: same decisions per record
    order = np.random.default_rng(1).permutation(500)[:123]
    x = continuous_images((123, 3, 4), seed=11)
    out = apply(op, x, ids[order], epoch=4, seed=6)
    np.testing.assert_array_equal(np.all(out == np.flip(x, axis=2), axis=(1, 2)), base[order])
    # an operator built alike decides alike
    np.testing.assert_array_equal(flip_decisions(flip(), ids, epoch=4, seed=6), base)

    for other in (
        flip_decisions(op, ids, epoch=5, seed=6),
        flip_decisions(op, ids, epoch=4, seed=7),
        flip_decisions(flip(seed=1), ids, epoch=4, seed=6),
    ):
        assert 0.35 < np.mean(other != base) < 0.65


@pytest.mark.parametrize(
    "kw, where",
    [
        ({"direction": "diagonal"}, "direction"),
        ({"direction": "Horizontal"}, "direction"),
        ({"probability": -0.1}, "probability"),
        ({"probability": 1.01}, "probability"),
        ({"probability": float("nan")}, "probability"),
    ],
)
def test_flip_config_errors(kw, where):
    with pytest.raises(ConfigError, match=rf"RandomFlipConfig\.{where}"):
        RandomFlipConfig(**kw)


# --------------------------------------------------------------- construction errors


@pytest.mark.parametrize(
    "cls, config", [(RandomCrop, RandomCropConfig(size=4)), (RandomFlip, RandomFlipConfig())]
)
def test_stochastic_image_operator_without_rngs_raises(cls, config):
    with pytest.raises(OperatorError, match="rngs"):
        cls(config)


def test_wrong_config_type_raises():
    with pytest.raises(ConfigError, match="RandomCropConfig"):
        RandomCrop(RandomFlipConfig(), rngs=nnx.Rngs(0))
    with pytest.raises(ConfigError, match="NormalizeConfig"):
        Normalize(ImageOperatorConfig())


def test_custom_image_operator_gets_per_record_words():
    class AddWord(ImageOperator):
        config_type = ImageOperatorConfig
        stochastic_default = True

        def transform_images(self, images, words):
            return images + (words[:, 0] % 7).astype(images.dtype)[:, None, None]

    op = AddWord(ImageOperatorConfig(stream_name="noise"), rngs=nnx.Rngs(3))
    ids = jnp.arange(8)
    words = np.asarray(op.random_words(ids, jnp.uint32(0), 0))
    assert words.shape == (8, 2) and words.dtype == np.uint32
    out = apply(op, np.zeros((8, 2, 2), np.float32), ids)
    np.testing.assert_array_equal(out[:, 0, 0], words[:, 0] % 7)


def test_random_words_with_rbg_keys_has_one_row_per_record():
    op = RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))
    assert op.random_words(jnp.arange(4), jnp.uint32(0), 0).shape == (4, 2)
    x = continuous_images((4, 3, 3))
    out = apply(op, x)
    assert out.shape == x.shape


# ------------------------------------------------------------------------- pipeline


def test_pipeline_matches_numpy_reference_record_by_record():
    n, size, padding = 40, (8, 9), (2, 1)
    images = np.random.default_rng(12).integers(0, 256, (n, 10, 12, 3)).astype(np.uint8)
    source = memory_source({"image": images, "label": np.arange(n, dtype=np.int32)})
    normalize = Normalize(NormalizeConfig(mean=MEAN3, std=STD3))
    cropper = crop(size, padding, fill=0.0, seed=1)
    flipper = flip("horizontal", 0.5, seed=2)
    pipeline = (
        from_source(source, 16, shuffle=True, seed=5, num_epochs=2)
        >> OperatorNode(normalize)
        >> OperatorNode(cropper)
        >> OperatorNode(flipper)
    )
    reference = (images.astype(np.float64) - np.asarray(MEAN3)) / np.asarray(STD3)
    padded_all = pad_images(reference, padding, 0.0)

    seen = {0: [], 1: []}
    found = {}  # (epoch, id) -> (dy, dx, flipped)
    for batch in pipeline:
        ids = np.asarray(batch.record_ids)
        out = np.asarray(batch["image"])
        assert out.dtype == np.float32 and out.shape == (len(ids), 8, 9, 3)
        np.testing.assert_array_equal(np.asarray(batch["label"]), ids)
        seen[batch.epoch].extend(ids.tolist())

        padded = padded_all[ids]
        plain = window_matches(padded, out, atol=1e-5)
        mirror = window_matches(padded, np.flip(out, axis=2), atol=1e-5)
        counts = plain.sum(axis=(1, 2)) + mirror.sum(axis=(1, 2))
        assert np.all(counts == 1), f"epoch {batch.epoch}: matches per record {counts}"
        for i, rid in enumerate(ids):
            flipped = not plain[i].any()
            dy, dx = np.argwhere(mirror[i] if flipped else plain[i])[0]
            found[(batch.epoch, int(rid))] = (int(dy), int(dx), flipped)

        # the compiled pipeline equals the operators applied eagerly to the same records
        direct = apply_ops(
            [normalize, cropper, flipper],
            {"image": jnp.asarray(images[ids])},
            ids,
            epoch=batch.epoch,
            seed=5,
        )
        np.testing.assert_allclose(out, np.asarray(direct["image"]), rtol=1e-6, atol=1e-6)

    assert sorted(seen[0]) == sorted(seen[1]) == list(range(n))
    assert seen[0] != seen[1]  # shuffled differently per epoch
    flips = [v[2] for v in found.values()]
    assert 0.25 < np.mean(flips) < 0.75
    assert len({v[:2] for v in found.values()}) >= 8  # 5 x 4 = 20 possible offsets
    changed = np.mean([found[(0, r)] != found[(1, r)] for r in range(n)])
    assert changed > 0.6, changed  # a new epoch re-draws the augmentation


def test_normalize_rejects_per_channel_values_that_do_not_match_the_channels():
    with pytest.raises(ConfigError, match=r"different lengths.*found 3 means and 2 stds"):
        NormalizeConfig(mean=(1.0, 2.0, 3.0), std=(1.0, 2.0))
    op = Normalize(NormalizeConfig(mean=(1.0, 2.0, 3.0), std=1.0))
    with pytest.raises(SchemaError, match=r"one mean per channel.*expected 1 or 1 values.*found 3"):
        op.apply_batch({"image": jnp.zeros((2, 4, 4))}, {}, jnp.arange(2), jnp.uint32(0), 0)


def test_crop_rejects_a_fill_the_image_dtype_cannot_hold():
    op = RandomCrop(RandomCropConfig(size=4, padding=2, fill=-1), rngs=nnx.Rngs(0))
    with pytest.raises(SchemaError, match=r"fill value not representable.*expected a uint8"):
        op.apply_batch(
            {"image": jnp.zeros((2, 4, 4, 1), jnp.uint8)}, {}, jnp.arange(2), jnp.uint32(0), 0
        )
    with pytest.raises(ConfigError, match=r"RandomCropConfig.size"):
        RandomCropConfig(size=True)


@pytest.mark.parametrize(
    "configs",
    [
        [("crop", {"size": (6, 5), "padding": 2}), ("flip", {})],
        [("flip", {"direction": "vertical"}), ("crop", {"size": 7, "padding": (1, 3)})],
        [("crop", {"size": 8, "padding": 2, "fill": 0.0}), ("crop", {"size": 5, "padding": 1})],
        # Different fills cannot share one gather: the first crop is materialised.
        [("crop", {"size": 8, "padding": 2, "fill": 1.0}), ("crop", {"size": 6, "padding": 2})],
        [("flip", {}), ("flip", {"direction": "vertical"}), ("crop", {"size": 4})],
    ],
)
def test_fused_geometric_operators_equal_running_them_one_by_one(configs):
    from datarax.dag.base import OperatorNode, TraceContext, lower_chain

    makers = {
        "crop": lambda i, kw: RandomCrop(RandomCropConfig(**kw), rngs=nnx.Rngs(i)),
        "flip": lambda i, kw: RandomFlip(RandomFlipConfig(**kw), rngs=nnx.Rngs(i)),
    }
    ops = [makers[kind](i, kw) for i, (kind, kw) in enumerate(configs)]
    images = jnp.asarray(np.random.default_rng(0).normal(size=(12, 8, 9, 2)), jnp.float32)
    ids, epoch = jnp.arange(100, 112), jnp.uint32(3)
    ctx = TraceContext.for_rows(ids, epoch, 5)
    fused, _ = lower_chain([OperatorNode(op) for op in ops], ({"image": images}, {}), ctx)
    data = {"image": images}
    for op in ops:
        data, _ = op.apply_batch(data, {}, ids, epoch, 5)
    np.testing.assert_array_equal(fused["image"], data["image"])
    assert ops[0].fusion_group() == ("spatial", "image")
