"""Tone operators: sharpness, solarize, posterize, invert, autocontrast, equalize.

Each works per channel on RGB or one-channel images, ``uint8`` (Pillow's results)
or float in [0, 1]. With ``probability < 1`` a record is changed only when its own
coin says so (as torchvision's ``RandomSolarize``, ``RandomEqualize``, ...).

Example:
    >>> import jax.numpy as jnp
    >>> op = Solarize(SolarizeConfig(threshold=0.5))
    >>> op.transform_images(jnp.array([[[100, 200]]], jnp.uint8), None).tolist()
    [[[100, 55]]]
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import require_bool
from datarax.core.errors import ConfigError
from datarax.operators.image.color_base import (
    PixelOperator,
    PixelOperatorConfig,
    checked_magnitude,
    learnable_magnitude,
)
from datarax.operators.image.color_space import blend, smooth3x3

__all__ = [
    "AutoContrast",
    "AutoContrastConfig",
    "Equalize",
    "EqualizeConfig",
    "Invert",
    "InvertConfig",
    "Posterize",
    "PosterizeConfig",
    "Sharpness",
    "SharpnessConfig",
    "Solarize",
    "SolarizeConfig",
    "equalize",
]


# ------------------------------------------------------------------ sharpness


@dataclass(frozen=True)
class SharpnessConfig(PixelOperatorConfig):
    """Args:
    factor: 0 gives the smoothed image, 1 the image, 2 a sharpened one; or a
        ``(low, high)`` range drawn per record. Non-negative.
    learnable: Make the factor an ``nnx.Param``.
    """

    factor: float | tuple[float, float] = 1.0
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        checked_magnitude(self, "factor", minimum=0.0)
        require_bool(self, "learnable")


class Sharpness(PixelOperator):
    """Blends each image with its 3x3 smoothed version, as ``PIL.ImageEnhance.Sharpness``.

    The smoothing kernel is Pillow's ``SMOOTH`` (``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13``);
    the one-pixel border is left unchanged. On float images the smoothed image is not
    rounded.

    Example:
        >>> op = Sharpness(SharpnessConfig(factor=2.0))
    """

    config_type = SharpnessConfig
    config: SharpnessConfig
    differentiable_in = ("input", "factor")
    reference = "PIL.ImageEnhance.Sharpness"
    magnitude_fields = ("factor",)

    def __init__(
        self, config: SharpnessConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        self.factor = learnable_magnitude(config, "factor", minimum=0.0)

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        factor = self.value(self.factor, u, 0, images.shape[0])
        return blend(smooth3x3(images), images, factor)


# ------------------------------------------------------------------ solarize


@dataclass(frozen=True)
class SolarizeConfig(PixelOperatorConfig):
    """Args:
    threshold: Values at or above it are inverted, as a fraction of the full scale
        in [0, 1] (for ``uint8``, Pillow's level threshold ``t`` is ``t / 255``);
        or a ``(low, high)`` range drawn per record.
    """

    threshold: float | tuple[float, float] = 0.5

    def validate(self) -> None:
        super().validate()
        checked_magnitude(self, "threshold", minimum=0.0, maximum=1.0)


class Solarize(PixelOperator):
    """Inverts values at or above a threshold, as ``PIL.ImageOps.solarize``.

    ``uint8`` levels from ``ceil(255 * threshold)`` up are inverted (a threshold
    within 1/1000 of a level above an integer level counts as that level, so that
    ``t / 255`` selects exactly the levels ``>= t`` whatever the float rounding).
    Differentiable in the image (almost everywhere), not in the threshold.

    Example:
        >>> op = Solarize(SolarizeConfig(threshold=(0.4, 0.9)), rngs=nnx.Rngs(0))
    """

    config_type = SolarizeConfig
    config: SolarizeConfig
    differentiable_in = ("input",)
    reference = "PIL.ImageOps.solarize"
    magnitude_fields = ("threshold",)

    def __init__(
        self, config: SolarizeConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        self.threshold = checked_magnitude(config, "threshold", minimum=0.0, maximum=1.0)

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        threshold = self.value(self.threshold, u, 0, images.shape[0]).reshape((-1, 1, 1, 1))
        if images.dtype == jnp.uint8:
            # The lowest inverted level; the 1e-3 absorbs float32 rounding of t / 255 * 255.
            lowest = jnp.ceil(threshold * 255.0 - 1e-3)
            return jnp.where(images.astype(jnp.float32) >= lowest, 255 - images, images)
        return jnp.where(images >= threshold, 1.0 - images, images)


# ------------------------------------------------------------------ posterize


@dataclass(frozen=True)
class PosterizeConfig(PixelOperatorConfig):
    """Args:
    bits: Bits kept per channel, 1..8; or a ``(low, high)`` pair of ints, each
        record drawing one of ``low..high`` (both included) uniformly.
    """

    bits: int | tuple[int, int] = 4

    def validate(self) -> None:
        super().validate()
        value = self.bits
        pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
        ints = len(pair) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
        if not ints or not 1 <= pair[0] <= pair[1] <= 8:
            raise ConfigError(
                "bits out of range",
                where="PosterizeConfig.bits",
                expected="an int in 1..8 or a pair (low, high) with 1 <= low <= high <= 8",
                found=repr(value),
            )

    def span(self) -> tuple[int, int]:
        """``(low, high)`` bits."""
        value = self.bits
        return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class Posterize(PixelOperator):
    """Keeps the top ``bits`` bits of each 8-bit level, as ``PIL.ImageOps.posterize``.

    Float images are quantised to 256 levels (``round(x * 255)``), posterized, and
    divided by 255 again. Not differentiable (piecewise constant).

    Example:
        >>> op = Posterize(PosterizeConfig(bits=(2, 6)), rngs=nnx.Rngs(0))
    """

    config_type = PosterizeConfig
    config: PosterizeConfig
    reference = "PIL.ImageOps.posterize"
    magnitude_fields = ("bits",)

    def bits(self, batch: int, u: jax.Array | None) -> jax.Array:
        """The ``(B,)`` int32 bits kept per record."""
        low, high = self.config.span()
        if u is None or low == high:
            return jnp.full((batch,), low, jnp.int32)
        drawn = low + jnp.floor(u[:, 0] * (high - low + 1)).astype(jnp.int32)
        return jnp.minimum(drawn, high)

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        drop = (8 - self.bits(images.shape[0], u)).reshape((-1, 1, 1, 1))
        mask = (jnp.int32(0xFF) >> drop) << drop
        levels = _levels(images)
        kept = (levels & mask).astype(jnp.uint8)
        return kept if images.dtype == jnp.uint8 else kept.astype(jnp.float32) / 255.0


# ------------------------------------------------------------------ invert


@dataclass(frozen=True)
class InvertConfig(PixelOperatorConfig):
    """Invert every value (``255 - x`` or ``1 - x``); see ``probability``."""


class Invert(PixelOperator):
    """``255 - x`` for ``uint8``, ``1 - x`` for float, as ``PIL.ImageOps.invert``.

    Example:
        >>> op = Invert(InvertConfig(probability=0.5), rngs=nnx.Rngs(0))
    """

    config_type = InvertConfig
    differentiable_in = ("input",)
    reference = "PIL.ImageOps.invert"

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        top = jnp.asarray(255 if images.dtype == jnp.uint8 else 1.0, images.dtype)
        return top - images


# ------------------------------------------------------------------ autocontrast


@dataclass(frozen=True)
class AutoContrastConfig(PixelOperatorConfig):
    """Stretch each channel of each image to the full range; see ``probability``."""


class AutoContrast(PixelOperator):
    """Maps each channel's minimum to 0 and maximum to full scale, per record.

    As ``PIL.ImageOps.autocontrast`` with ``cutoff=0``: ``uint8`` levels become
    ``floor(255 * (x - lo) / (hi - lo))`` in exact integer arithmetic (Pillow computes
    the same in double precision and is one level lower where that lands a hair
    below an integer); a constant channel is left as it is. Float images get
    ``(x - lo) / (hi - lo)``, differentiable almost everywhere.

    Example:
        >>> op = AutoContrast(AutoContrastConfig())
    """

    config_type = AutoContrastConfig
    differentiable_in = ("input",)
    reference = "PIL.ImageOps.autocontrast (cutoff=0)"

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        low = jnp.min(images, axis=(1, 2), keepdims=True)
        high = jnp.max(images, axis=(1, 2), keepdims=True)
        spread = high > low
        if images.dtype == jnp.uint8:
            lo, hi = low.astype(jnp.int32), high.astype(jnp.int32)
            span = jnp.where(spread, hi - lo, 1)
            stretched = (255 * (images.astype(jnp.int32) - lo)) // span
            return jnp.where(spread, stretched, images).astype(jnp.uint8)
        span = jnp.where(spread, high - low, 1.0)
        return jnp.where(spread, (images - low) / span, images)


# ------------------------------------------------------------------ equalize


@dataclass(frozen=True)
class EqualizeConfig(PixelOperatorConfig):
    """Equalise each channel's histogram, per record; see ``probability``."""


class Equalize(PixelOperator):
    """Histogram equalisation per channel, as ``PIL.ImageOps.equalize``.

    Histograms of the whole batch are one ``bincount`` over (record, channel,
    level); each record's lookup table follows Pillow's rule. Float images are
    quantised to 256 levels (``round(x * 255)``) and the result divided by 255.
    Not differentiable (piecewise constant).

    Example:
        >>> op = Equalize(EqualizeConfig(probability=0.5), rngs=nnx.Rngs(0))
    """

    config_type = EqualizeConfig
    reference = "PIL.ImageOps.equalize"

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        out = equalize(_levels(images))
        return out.astype(jnp.uint8) if images.dtype == jnp.uint8 else out / 255.0


def equalize(levels: jax.Array) -> jax.Array:
    """Equalised ``(B, H, W, C)`` int32 levels in 0..255 (Pillow's lookup-table rule).

    Per record and channel, with histogram ``h``: ``step = (sum(h) - h[last]) // 255``
    (``last`` the highest level present), and level ``i`` maps to
    ``(step // 2 + sum(h[:i])) // step``, clipped to 255; a channel with one level
    or ``step == 0`` is unchanged.
    """
    batch, height, width, channels = levels.shape
    per_channel = jnp.moveaxis(levels, -1, 1).reshape(batch, channels, height * width)
    bins = (jnp.arange(batch * channels, dtype=jnp.int32) * 256).reshape(batch, channels, 1)
    counts = jnp.bincount((per_channel + bins).ravel(), length=batch * channels * 256)
    hist = counts.reshape(batch, channels, 256)
    present = hist > 0
    last = 255 - jnp.argmax(present[..., ::-1], axis=-1)
    last_count = jnp.take_along_axis(hist, last[..., None], axis=-1)[..., 0]
    step = (height * width - last_count) // 255
    below = jnp.cumsum(hist, axis=-1) - hist
    safe_step = jnp.maximum(step, 1)[..., None]
    table = jnp.minimum((safe_step // 2 + below) // safe_step, 255)
    keep = (jnp.sum(present, axis=-1) <= 1) | (step == 0)
    table = jnp.where(keep[..., None], jnp.arange(256, dtype=table.dtype), table)
    mapped = jnp.take_along_axis(table, per_channel, axis=-1)
    return jnp.moveaxis(mapped.reshape(batch, channels, height, width), 1, -1)


def _levels(images: jax.Array) -> jax.Array:
    # 8-bit levels as int32: uint8 as they are, float rounded from [0, 1].
    if images.dtype == jnp.uint8:
        return images.astype(jnp.int32)
    return jnp.clip(jnp.round(images * 255.0), 0, 255).astype(jnp.int32)
