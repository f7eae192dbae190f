"""Occlusion: `PixelDropout`, `ChannelDropout`, `PatchDropout`, `Cutout`, `RandomErasing`.

Each sets part of every image (pixels, channels, grid patches or one box) to a fill
value, chosen per record from the record's key: the decision numbers of a record
(its probability, count or box) come from the uniform of its first random word and
from uniforms drawn with :func:`~datarax.operators.image.noise.record_key`. Masks
are built for the whole batch at once; the kept values pass gradients through.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import require_bool
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.image.base import ImageOperator, ImageOperatorConfig, as_pair, uniform
from datarax.operators.image.noise import record_key, value_peak
from datarax.operators.magnitude import check_magnitude, draw

__all__ = [
    "ChannelDropout",
    "ChannelDropoutConfig",
    "Cutout",
    "CutoutConfig",
    "PatchDropout",
    "PatchDropoutConfig",
    "PixelDropout",
    "PixelDropoutConfig",
    "RandomErasing",
    "RandomErasingConfig",
]


def _require_number(config: Any, field: str) -> None:
    value = getattr(config, field)
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(
            f"{field} must be a number",
            where=f"{type(config).__name__}.{field}",
            expected="a finite int or float",
            found=repr(value),
        )


def _fill(value: float, dtype: jnp.dtype, where: str) -> jax.Array:
    """``value`` as a scalar of ``dtype``; a value the dtype cannot hold is an error."""
    cast = np.asarray(value).astype(dtype)
    if cast != value:
        raise SchemaError(
            "fill value not representable in the image dtype",
            where=where,
            expected=f"a {dtype} value",
            found=repr(value),
        )
    return jnp.asarray(cast)


def _pixel_mask(mask: jax.Array, images: jax.Array) -> jax.Array:
    """A ``(B, H, W)`` mask broadcast against ``(B, H, W[, C])`` images."""
    return mask[..., None] if images.ndim == 4 and mask.ndim == 3 else mask


class _OcclusionOperator(ImageOperator):
    """Shared plumbing: the error location and the fill value of the config."""

    differentiable_in: tuple[str, ...] = ("input",)

    def _where(self) -> str:
        return f"{self.name}, field '{self.config.field}'"

    def _filled(self, images: jax.Array, mask: jax.Array) -> jax.Array:
        fill = _fill(self.config.fill, images.dtype, self._where())  # type: ignore[attr-defined]
        return jnp.where(_pixel_mask(mask, images), fill, images)


# ----------------------------------------------------------------------- PixelDropout


@dataclass(frozen=True)
class PixelDropoutConfig(ImageOperatorConfig):
    """Args:
    probability: Chance that a pixel is dropped: a number in ``[0, 1]`` or a range
        drawn per record.
    per_channel: Drop each channel of a pixel on its own instead of whole pixels.
    fill: Value of dropped pixels.
    """

    probability: float | tuple[float, float] = 0.01
    per_channel: bool = False
    fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        check_magnitude(
            self.probability, where="PixelDropoutConfig.probability", minimum=0.0, maximum=1.0
        )
        require_bool(self, "per_channel")
        _require_number(self, "fill")


class PixelDropout(_OcclusionOperator):
    """Sets each pixel to ``fill`` with the record's ``probability``.

    Pixel ``(i, j)`` of a record is dropped when
    ``jax.random.uniform(record_key(words), (H, W))[i, j] < probability`` (shape
    ``(H, W, C)`` with ``per_channel``).

    Example:
        >>> from flax import nnx
        >>> drop = PixelDropout(PixelDropoutConfig(probability=0.1), rngs=nnx.Rngs(0))
    """

    config_type = PixelDropoutConfig
    config: PixelDropoutConfig
    stochastic_default = True
    reference: str = "per-pixel uniforms recomputed from the record keys (NumPy)"

    def probabilities(self, words: jax.Array) -> jax.Array:
        """Each record's drop probability ``(B,)``."""
        span = check_magnitude(self.config.probability, where="PixelDropoutConfig.probability")
        return draw(span, uniform(words[:, 0]))

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        assert words is not None  # stochastic: always given its words
        per_channel = self.config.per_channel and images.ndim == 4
        shape = images.shape[1:] if per_channel else images.shape[1:3]
        u = jax.vmap(lambda key: jax.random.uniform(key, shape))(record_key(words))
        p = self.probabilities(words).reshape((-1,) + (1,) * len(shape))
        return self._filled(images, u < p)


# --------------------------------------------------------------------- ChannelDropout


@dataclass(frozen=True)
class ChannelDropoutConfig(ImageOperatorConfig):
    """Args:
    count: How many channels each record loses: an int, or a ``(low, high)`` range
        of ints drawn uniformly per record (both ends included).
    fill: Value of dropped channels.
    """

    count: int | tuple[int, int] = 1
    fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        as_pair(self.count, "ChannelDropoutConfig.count")
        low, high = _int_span(self.count)
        if low > high:
            raise ConfigError(
                "count range must have low <= high",
                where="ChannelDropoutConfig.count",
                expected="(low, high) with low <= high",
                found=repr(self.count),
            )
        _require_number(self, "fill")


def _int_span(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class ChannelDropout(_OcclusionOperator):
    """Sets ``count`` whole channels of each record to ``fill`` (channels chosen at random).

    A record's count is ``low + floor(u * (high - low + 1))`` for the uniform of its
    first word; its channels are ranked by ``jax.random.uniform(record_key(words),
    (C,))`` and the ``count`` lowest-ranked are dropped. Images need a channel axis
    with more channels than ``high``, so every record keeps one.

    Example:
        >>> from flax import nnx
        >>> drop = ChannelDropout(ChannelDropoutConfig(count=(1, 2)), rngs=nnx.Rngs(0))
    """

    config_type = ChannelDropoutConfig
    config: ChannelDropoutConfig
    reference: str = "albumentations.ChannelDropout semantics, ranks recomputed from the keys"

    @classmethod
    def is_stochastic(cls, config: ImageOperatorConfig) -> bool:
        # Even a fixed count picks its channels at random.
        return True

    def counts(self, words: jax.Array) -> jax.Array:
        """How many channels each record loses ``(B,)`` int32."""
        low, high = _int_span(self.config.count)
        return low + jnp.floor(uniform(words[:, 0]) * (high - low + 1)).astype(jnp.int32)

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        assert words is not None  # stochastic: always given its words
        _, high = _int_span(self.config.count)
        channels = images.shape[-1] if images.ndim == 4 else 1
        if images.ndim != 4 or channels <= high:
            raise SchemaError(
                "channel dropout needs more channels than it drops",
                where=self._where(),
                expected=f"(H, W, C) images with C > {high}",
                found=f"shape {tuple(images.shape[1:])}",
            )
        u = jax.vmap(lambda key: jax.random.uniform(key, (channels,)))(record_key(words))
        ranks = jnp.argsort(jnp.argsort(u, axis=1), axis=1)
        dropped = ranks < self.counts(words)[:, None]  # (B, C)
        return self._filled(images, dropped[:, None, None, :])


# ----------------------------------------------------------------------- PatchDropout


@dataclass(frozen=True)
class PatchDropoutConfig(ImageOperatorConfig):
    """Args:
    patch_size: Patch ``(height, width)`` (or one int): the image is cut into a grid
        of such patches (the last row and column may be smaller).
    fraction: Fraction of the patches dropped per record, fixed or a range drawn
        per record; ``round(fraction * patches)`` are dropped exactly.
    fill: Value of dropped patches.
    """

    patch_size: int | tuple[int, int] = 4
    fraction: float | tuple[float, float] = 0.25
    fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        size = as_pair(self.patch_size, "PatchDropoutConfig.patch_size")
        if min(size) <= 0:
            raise ConfigError(
                "patch size must be positive",
                where="PatchDropoutConfig.patch_size",
                expected="sizes > 0",
                found=repr(self.patch_size),
            )
        check_magnitude(self.fraction, where="PatchDropoutConfig.fraction", minimum=0, maximum=1)
        _require_number(self, "fill")


class PatchDropout(_OcclusionOperator):
    """Sets an exact number of grid patches of each record to ``fill``.

    With ``n`` patches a record drops ``floor(fraction * n + 0.5)`` of them, those
    ranked lowest by ``jax.random.uniform(record_key(words), (n,))`` (patches in
    row-major grid order), so every subset of that size is equally likely.

    Example:
        >>> from flax import nnx
        >>> drop = PatchDropout(PatchDropoutConfig(patch_size=8, fraction=0.5), rngs=nnx.Rngs(0))
    """

    config_type = PatchDropoutConfig
    config: PatchDropoutConfig
    reference: str = "patch ranks recomputed from the record keys (NumPy)"

    @classmethod
    def is_stochastic(cls, config: ImageOperatorConfig) -> bool:
        return True  # which patches are dropped is random even for a fixed fraction

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patches per column and per row for images of ``height`` x ``width``."""
        p_h, p_w = as_pair(self.config.patch_size, "patch_size")
        return -(-height // p_h), -(-width // p_w)

    def counts(self, words: jax.Array, patches: int) -> jax.Array:
        """How many patches each record loses ``(B,)`` int32."""
        span = check_magnitude(self.config.fraction, where="PatchDropoutConfig.fraction")
        fraction = draw(span, uniform(words[:, 0]))
        return jnp.floor(fraction * patches + 0.5).astype(jnp.int32)

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        assert words is not None  # stochastic: always given its words
        height, width = images.shape[1:3]
        g_h, g_w = self.grid(height, width)
        n = g_h * g_w
        u = jax.vmap(lambda key: jax.random.uniform(key, (n,)))(record_key(words))
        ranks = jnp.argsort(jnp.argsort(u, axis=1), axis=1)
        dropped = (ranks < self.counts(words, n)[:, None]).reshape(-1, g_h, g_w)
        p_h, p_w = as_pair(self.config.patch_size, "patch_size")
        rows = np.arange(height) // p_h
        cols = np.arange(width) // p_w
        mask = dropped[:, rows[:, None], cols[None, :]]  # (B, H, W)
        return self._filled(images, mask)


# ----------------------------------------------------------------------------- Cutout


@dataclass(frozen=True)
class CutoutConfig(ImageOperatorConfig):
    """Args:
    size: Box ``(height, width)`` (or one int for a square).
    probability: Chance that a record gets its box.
    fill: Value of the box.
    """

    size: int | tuple[int, int] = 8
    probability: float = 1.0
    fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        size = as_pair(self.size, "CutoutConfig.size")
        if min(size) <= 0:
            raise ConfigError(
                "box size must be positive",
                where="CutoutConfig.size",
                expected="sizes > 0",
                found=repr(self.size),
            )
        _check_probability(self, "probability")
        _require_number(self, "fill")


def _check_probability(config: Any, field: str) -> None:
    value = getattr(config, field)
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not valid or not 0.0 <= value <= 1.0:
        raise ConfigError(
            "probability out of range",
            where=f"{type(config).__name__}.{field}",
            expected="a number in [0, 1]",
            found=repr(value),
        )


class Cutout(_OcclusionOperator):
    """Fills one box of fixed size per record, centred anywhere, clipped at the border.

    The centre ``(cy, cx)`` is uniform over the pixels; the box covers rows
    ``cy - h // 2 .. cy - h // 2 + h - 1`` (and likewise columns), clipped to the
    image, so boxes near the border are smaller (as in DeVries & Taylor's Cutout).
    Draws: ``u = jax.random.uniform(record_key(words), (3,))``; the record is cut
    when ``u[0] < probability``, ``cy = floor(u[1] * H)``, ``cx = floor(u[2] * W)``.

    Example:
        >>> from flax import nnx
        >>> cut = Cutout(CutoutConfig(size=16), rngs=nnx.Rngs(0))
    """

    config_type = CutoutConfig
    config: CutoutConfig
    stochastic_default = True
    reference: str = "Cutout (DeVries & Taylor 2017), boxes recomputed from the record keys"

    def boxes(self, words: jax.Array, height: int, width: int) -> jax.Array:
        """``(B, 4)`` int32 ``(top, left, bottom, right)``, bottom/right exclusive, clipped.

        Records that are not cut get an empty box.
        """
        h, w = as_pair(self.config.size, "size")
        u = jax.vmap(lambda key: jax.random.uniform(key, (3,)))(record_key(words))
        cy = jnp.floor(u[:, 1] * height).astype(jnp.int32)
        cx = jnp.floor(u[:, 2] * width).astype(jnp.int32)
        top, left = cy - h // 2, cx - w // 2
        box = jnp.stack(
            [
                jnp.clip(top, 0, height),
                jnp.clip(left, 0, width),
                jnp.clip(top + h, 0, height),
                jnp.clip(left + w, 0, width),
            ],
            axis=1,
        )
        cut = u[:, 0] < self.config.probability
        return jnp.where(cut[:, None], box, 0)

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        assert words is not None  # stochastic: always given its words
        height, width = images.shape[1:3]
        return self._filled(images, box_mask(self.boxes(words, height, width), height, width))


def box_mask(boxes: jax.Array, height: int, width: int) -> jax.Array:
    """``(B, H, W)`` bool: inside each record's ``(top, left, bottom, right)`` box."""
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    top, left, bottom, right = (boxes[:, i, None, None] for i in range(4))
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


# ---------------------------------------------------------------------- RandomErasing

_ATTEMPTS = 10  # as torchvision: boxes tried before the record is left unchanged


@dataclass(frozen=True)
class RandomErasingConfig(ImageOperatorConfig):
    """Args (torchvision ``RandomErasing``):
    probability: Chance that a record is erased (torchvision ``p``).
    scale: Range of the erased area as a fraction of the image area.
    ratio: Range of the box's aspect ratio (height / width), drawn log-uniformly.
    value: The fill: a number, one number per channel, or ``"random"`` (standard
        normal values for float images, uniform integers in ``[0, max]`` for
        integer images).
    """

    probability: float = 0.5
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float | tuple[float, ...] | str = 0.0

    def validate(self) -> None:
        super().validate()
        _check_probability(self, "probability")
        check_magnitude(self.scale, where="RandomErasingConfig.scale", minimum=0.0, maximum=1.0)
        low, _ = check_magnitude(self.ratio, where="RandomErasingConfig.ratio", minimum=0.0)
        if low <= 0:
            raise ConfigError(
                "ratio must be positive",
                where="RandomErasingConfig.ratio",
                expected="(low, high) with 0 < low <= high",
                found=repr(self.ratio),
            )
        value = self.value
        numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
        per_channel = (
            isinstance(value, (tuple, list))
            and len(value) > 0
            and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
        )
        if not (numeric or per_channel or value == "random"):
            raise ConfigError(
                "unknown erasing value",
                where="RandomErasingConfig.value",
                expected="a number, a tuple of numbers (one per channel) or 'random'",
                found=repr(value),
            )
        if per_channel:
            object.__setattr__(self, "value", tuple(float(v) for v in value))  # type: ignore[union-attr]


class RandomErasing(_OcclusionOperator):
    """Erases one random box per record with torchvision's ``RandomErasing`` rule.

    For a record that is erased (``uniform(words[0]) < probability``), up to 10
    boxes are tried: area ``A * U(scale)``, aspect ``exp(U(log ratio))``,
    ``h = round(sqrt(area * aspect))``, ``w = round(sqrt(area / aspect))``
    (rounded half to even, as Python's ``round``); the first with ``h < H`` and
    ``w < W`` is placed at ``top = floor(u * (H - h + 1))``,
    ``left = floor(u' * (W - w + 1))``. When none fits the record is unchanged.
    Draws: ``jax.random.uniform(k, (10, 4))`` for the boxes and, for
    ``value="random"``, the values from ``k'``, where
    ``k, k' = jax.random.split(record_key(words))``.

    Example:
        >>> from flax import nnx
        >>> erase = RandomErasing(RandomErasingConfig(probability=0.5), rngs=nnx.Rngs(0))
    """

    config_type = RandomErasingConfig
    config: RandomErasingConfig
    stochastic_default = True
    reference: str = "torchvision.transforms.RandomErasing (algorithm re-implemented in NumPy)"

    def boxes(self, words: jax.Array, height: int, width: int) -> jax.Array:
        """``(B, 4)`` int32 ``(top, left, bottom, right)`` (exclusive); empty when not erased."""
        keys = jax.vmap(jax.random.split)(record_key(words))
        u = jax.vmap(lambda key: jax.random.uniform(key, (_ATTEMPTS, 4)))(keys[:, 0])
        scale_lo, scale_hi = self.config.scale
        log_lo, log_hi = math.log(self.config.ratio[0]), math.log(self.config.ratio[1])
        area = height * width * (scale_lo + u[..., 0] * (scale_hi - scale_lo))
        aspect = jnp.exp(log_lo + u[..., 1] * (log_hi - log_lo))
        h = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
        w = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
        fits = (h < height) & (w < width)
        top = jnp.floor(u[..., 2] * (height - h + 1)).astype(jnp.int32)
        left = jnp.floor(u[..., 3] * (width - w + 1)).astype(jnp.int32)
        first = jnp.argmax(fits, axis=1)  # the first attempt that fits (0 when none does)

        def pick(values: jax.Array) -> jax.Array:
            return jnp.take_along_axis(values, first[:, None], axis=1)[:, 0]

        t, lft = pick(top), pick(left)
        box = jnp.stack([t, lft, t + pick(h), lft + pick(w)], axis=1)
        erased = (uniform(words[:, 0]) < self.config.probability) & jnp.any(fits, axis=1)
        return jnp.where(erased[:, None], box, 0)

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        assert words is not None  # stochastic: always given its words
        height, width = images.shape[1:3]
        mask = _pixel_mask(box_mask(self.boxes(words, height, width), height, width), images)
        return jnp.where(mask, self._values(images, words), images)

    def _values(self, images: jax.Array, words: jax.Array) -> jax.Array:
        """What erased pixels become: broadcastable to ``images``."""
        value = self.config.value
        dtype = images.dtype
        if value == "random":
            keys = jax.vmap(jax.random.split)(record_key(words))[:, 1]
            shape = images.shape[1:]
            if jnp.issubdtype(dtype, jnp.integer):
                peak = int(value_peak(dtype))
                draws = jax.vmap(lambda k: jax.random.randint(k, shape, 0, peak + 1))(keys)
                return draws.astype(dtype)
            return jax.vmap(lambda k: jax.random.normal(k, shape, dtype))(keys)
        if isinstance(value, tuple):
            channels = images.shape[-1] if images.ndim == 4 else 1
            if len(value) not in (1, channels):
                raise SchemaError(
                    "one erasing value per channel",
                    where=self._where(),
                    expected=f"1 or {channels} values for images of shape {images.shape[1:]}",
                    found=f"{len(value)} values",
                )
            fills = [_fill(v, dtype, self._where()) for v in value]
            return jnp.stack(fills) if images.ndim == 4 else fills[0]
        return _fill(float(value), dtype, self._where())
