"""Colour operators: brightness, contrast, saturation, hue, jitter, grayscale, gamma.

Brightness, contrast and saturation blend each image with a degenerate image, as
``PIL.ImageEnhance`` does: black, the mean of the image's luma, and its luma
(grayscale) image. A factor of 1 leaves the image unchanged, 0 gives the degenerate
image, above 1 extrapolates. ``uint8`` images give Pillow's results bit for bit
(blends truncate and clip to [0, 255]); float images (in [0, 1]) use the same
formulas without quantisation and are clipped to [0, 1].

Every factor is a fixed number or a ``(low, high)`` range drawn per record, and can
be learnable (``learnable=True``): the float path is differentiable in the image and
the factor.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> dim = Brightness(BrightnessConfig(factor=0.5))
    >>> dim.transform_images(jnp.full((1, 1, 1, 3), 201, jnp.uint8), None)[0, 0, 0].tolist()
    [100, 100, 100]
    >>> jitter = ColorJitter(ColorJitterConfig(brightness=0.4, hue=0.1), rngs=nnx.Rngs(0))
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import check_int, require_bool
from datarax.core.errors import ConfigError
from datarax.operators.image.base import ImageOperatorConfig
from datarax.operators.image.color_base import (
    PixelOperator,
    PixelOperatorConfig,
    checked_magnitude,
    learnable_magnitude,
)
from datarax.operators.image.color_space import (
    blend,
    from_unit,
    hsv_to_rgb,
    luma,
    per_record,
    rgb_to_hsv,
    to_unit,
)
from datarax.operators.magnitude import Magnitude, Span, check_magnitude, magnitude_of

MagnitudeValue = float | tuple[float, float]

__all__ = [
    "Brightness",
    "BrightnessConfig",
    "ColorJitter",
    "ColorJitterConfig",
    "Contrast",
    "ContrastConfig",
    "Gamma",
    "GammaConfig",
    "Grayscale",
    "GrayscaleConfig",
    "Hue",
    "HueConfig",
    "Saturation",
    "SaturationConfig",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_gamma",
    "adjust_hue",
    "adjust_saturation",
]


# ------------------------------------------------------------------ functional forms


def adjust_brightness(images: jax.Array, factor: jax.Array) -> jax.Array:
    """Blend ``(B, H, W, C)`` images with black: ``factor * image`` (``factor`` is ``(B,)``)."""
    return blend(jnp.zeros_like(images), images, factor)


def adjust_contrast(images: jax.Array, factor: jax.Array) -> jax.Array:
    """Blend images with the mean of their luma (a uniform grey), per record.

    ``uint8``: the mean is rounded to a level, as ``ImageEnhance.Contrast``.
    One-channel images are their own luma.
    """
    gray = luma(images) if images.shape[-1] == 3 else images[..., 0]
    mean = _mean_level(gray)
    degenerate = jnp.broadcast_to(per_record(mean, images.ndim), images.shape)
    return blend(degenerate, images, factor)


def adjust_saturation(images: jax.Array, factor: jax.Array) -> jax.Array:
    """Blend RGB images with their luma image (``ImageEnhance.Color``)."""
    gray = jnp.broadcast_to(luma(images)[..., None], images.shape)
    return blend(gray, images, factor)


def adjust_hue(images: jax.Array, shift: jax.Array) -> jax.Array:
    """Rotate the hue of RGB images by ``shift`` turns (``(B,)``, in [-0.5, 0.5]).

    In HSV, as :mod:`colorsys` and torchvision's tensor ``adjust_hue``; ``uint8``
    images are converted to [0, 1] and rounded back to the nearest level.
    """
    hue, saturation, value = rgb_to_hsv(to_unit(images))
    rotated = hsv_to_rgb(hue + per_record(shift, hue.ndim), saturation, value)
    return from_unit(rotated, images.dtype)


def adjust_gamma(images: jax.Array, gamma: jax.Array, gain: jax.Array) -> jax.Array:
    """``gain * x ** gamma`` on values in [0, 1] (``uint8`` rounded to the nearest level).

    As ``skimage.exposure.adjust_gamma``; results are clipped to the value range.
    """
    x = to_unit(images)
    g = per_record(gamma, x.ndim)
    positive = x > 0
    # x ** gamma with a safe base, so gradients are finite at black pixels.
    powered = jnp.where(positive, jnp.power(jnp.where(positive, x, 1.0), g), (g == 0) * 1.0)
    return from_unit(per_record(gain, x.ndim) * powered, images.dtype)


def _mean_level(gray: jax.Array) -> jax.Array:
    """Mean of ``(B, H, W)`` luma per record; ``uint8``: ``int(mean + 0.5)`` as Pillow."""
    if gray.dtype != jnp.uint8:
        return jnp.mean(gray, axis=(1, 2))
    # exact integer arithmetic: no float rounding at .5
    count = gray.shape[1] * gray.shape[2]
    total = jnp.sum(gray.astype(jnp.uint32), axis=(1, 2))
    quotient = total // count
    remainder = total - quotient * count
    return (quotient + (2 * remainder >= count)).astype(jnp.uint8)


# ------------------------------------------------------------------ factor operators


@dataclass(frozen=True)
class FactorConfig(PixelOperatorConfig):
    """Args:
    factor: The enhancement factor (1 leaves images unchanged), or a ``(low, high)``
        range drawn uniformly per record; non-negative.
    learnable: Make the factor (both ends of a range) an ``nnx.Param``.
    """

    factor: MagnitudeValue = 1.0
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        checked_magnitude(self, "factor", minimum=0.0)
        require_bool(self, "learnable")


class _FactorOperator(PixelOperator):
    """An operator with one non-negative factor."""

    config: FactorConfig
    magnitude_fields = ("factor",)
    differentiable_in = ("input", "factor")

    def __init__(
        self, config: FactorConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        self.factor = learnable_magnitude(config, "factor", minimum=0.0)

    def factors(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        """The ``(B,)`` factors of a batch."""
        return self.value(self.factor, u, 0, images.shape[0])


@dataclass(frozen=True)
class BrightnessConfig(FactorConfig):
    """Args:
    factor: 0 gives black, 1 the image, 2 twice as bright (clipped);
        or a ``(low, high)`` range drawn per record. Non-negative.
    learnable: Make the factor (both ends of a range) an ``nnx.Param``.
    probability: Chance that a record is changed.
    """


class Brightness(_FactorOperator):
    """Scales pixel values by a factor, as ``PIL.ImageEnhance.Brightness``.

    Example:
        >>> from flax import nnx
        >>> op = Brightness(BrightnessConfig(factor=(0.6, 1.4)), rngs=nnx.Rngs(0))
    """

    config_type = BrightnessConfig
    reference = "PIL.ImageEnhance.Brightness"

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        return adjust_brightness(images, self.factors(images, u))


@dataclass(frozen=True)
class ContrastConfig(FactorConfig):
    """Args:
    factor: 0 gives a uniform grey (the mean luma), 1 the image;
        or a ``(low, high)`` range drawn per record. Non-negative.
    learnable: Make the factor (both ends of a range) an ``nnx.Param``.
    probability: Chance that a record is changed.
    """


class Contrast(_FactorOperator):
    """Blends each image with the mean of its luma, as ``PIL.ImageEnhance.Contrast``.

    Works on RGB and one-channel images.

    Example:
        >>> op = Contrast(ContrastConfig(factor=1.5))
    """

    config_type = ContrastConfig
    reference = "PIL.ImageEnhance.Contrast"

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        return adjust_contrast(images, self.factors(images, u))


@dataclass(frozen=True)
class SaturationConfig(FactorConfig):
    """Args:
    factor: 0 gives the grayscale image, 1 the image, above 1 more saturated;
        or a ``(low, high)`` range drawn per record. Non-negative.
    learnable: Make the factor (both ends of a range) an ``nnx.Param``.
    probability: Chance that a record is changed.
    """


class Saturation(_FactorOperator):
    """Blends each RGB image with its luma image, as ``PIL.ImageEnhance.Color``.

    Example:
        >>> op = Saturation(SaturationConfig(factor=0.0))  # grayscale, in 3 channels
    """

    config_type = SaturationConfig
    reference = "PIL.ImageEnhance.Color"
    requires_rgb = True

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        return adjust_saturation(images, self.factors(images, u))


# ------------------------------------------------------------------ hue


@dataclass(frozen=True)
class HueConfig(PixelOperatorConfig):
    """Args:
    shift: Hue rotation in turns, in [-0.5, 0.5] (0 leaves images unchanged), or a
        ``(low, high)`` range drawn per record.
    learnable: Make the shift an ``nnx.Param``.
    """

    shift: MagnitudeValue = 0.0
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        checked_magnitude(self, "shift", minimum=-0.5, maximum=0.5)
        require_bool(self, "learnable")


class Hue(PixelOperator):
    """Rotates the hue of RGB images in HSV space (torchvision's ``adjust_hue``).

    ``uint8`` images are rotated in float and rounded to the nearest level (Pillow's
    own 8-bit HSV round trip quantises hue to 256 steps and is not reproduced).

    Example:
        >>> op = Hue(HueConfig(shift=0.25))
    """

    config_type = HueConfig
    config: HueConfig
    differentiable_in = ("input", "shift")
    reference = "colorsys.rgb_to_hsv / hsv_to_rgb (torchvision adjust_hue on tensors)"
    requires_rgb = True
    magnitude_fields = ("shift",)

    def __init__(
        self, config: HueConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        self.shift = learnable_magnitude(config, "shift", minimum=-0.5, maximum=0.5)

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        return adjust_hue(images, self.value(self.shift, u, 0, images.shape[0]))


# ------------------------------------------------------------------ gamma


@dataclass(frozen=True)
class GammaConfig(PixelOperatorConfig):
    """Args:
    gamma: Exponent (non-negative; below 1 brightens), or a per-record range.
    gain: Multiplier (non-negative), or a per-record range.
    learnable: Make gamma and gain ``nnx.Param``s.
    """

    gamma: MagnitudeValue = 1.0
    gain: MagnitudeValue = 1.0
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        checked_magnitude(self, "gamma", minimum=0.0)
        checked_magnitude(self, "gain", minimum=0.0)
        require_bool(self, "learnable")


class Gamma(PixelOperator):
    """``gain * x ** gamma`` on values in [0, 1], as ``skimage.exposure.adjust_gamma``.

    ``uint8`` images are mapped through ``x / 255`` and rounded to the nearest level;
    results are clipped to the value range.

    Example:
        >>> op = Gamma(GammaConfig(gamma=(0.7, 1.5)), rngs=nnx.Rngs(0))
    """

    config_type = GammaConfig
    config: GammaConfig
    differentiable_in = ("input", "gamma", "gain")
    reference = "skimage.exposure.adjust_gamma"
    magnitude_fields = ("gamma", "gain")

    def __init__(
        self, config: GammaConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        self.gamma = learnable_magnitude(config, "gamma", minimum=0.0)
        self.gain = learnable_magnitude(config, "gain", minimum=0.0)

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        batch = images.shape[0]
        gamma = self.value(self.gamma, u, 0, batch)
        return adjust_gamma(images, gamma, self.value(self.gain, u, 1, batch))


# ------------------------------------------------------------------ grayscale


@dataclass(frozen=True)
class GrayscaleConfig(PixelOperatorConfig):
    """Args:
    output_channels: 1 (``(H, W, 1)`` luma) or 3 (luma repeated, still RGB). With
        ``probability < 1`` it must be 3, so that every record keeps its shape.
    """

    output_channels: int = 1

    def validate(self) -> None:
        super().validate()
        check_int(self.output_channels, where="GrayscaleConfig.output_channels")
        if self.output_channels not in (1, 3):
            raise ConfigError(
                "unsupported number of output channels",
                where="GrayscaleConfig.output_channels",
                expected="1 or 3",
                found=repr(self.output_channels),
            )
        if self.probability < 1.0 and self.output_channels != 3:
            raise ConfigError(
                "a random grayscale must keep 3 channels",
                where="GrayscaleConfig.output_channels",
                expected="3 when probability < 1",
                found=repr(self.output_channels),
            )


class Grayscale(PixelOperator):
    """ITU-R 601-2 luma of RGB images, as Pillow's ``convert("L")`` (bit for bit on uint8).

    Example:
        >>> op = Grayscale(GrayscaleConfig(output_channels=3, probability=0.2), rngs=nnx.Rngs(0))
    """

    config_type = GrayscaleConfig
    config: GrayscaleConfig
    differentiable_in = ("input",)
    reference = 'PIL.Image.convert("L")'
    requires_rgb = True

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        gray = luma(images)[..., None]
        return jnp.repeat(gray, self.config.output_channels, axis=-1)


# ------------------------------------------------------------------ jitter

# The adjustments of ColorJitter, in torchvision's order, with their identity value.
_JITTER = (("brightness", 1.0), ("contrast", 1.0), ("saturation", 1.0), ("hue", 0.0))


@dataclass(frozen=True)
class ColorJitterConfig(PixelOperatorConfig):
    """Ranges of the four adjustments, written as torchvision's ``ColorJitter``.

    Args:
        brightness, contrast, saturation: ``j`` means factors in
            ``[max(0, 1 - j), 1 + j]``; a pair ``(low, high)`` is the range itself
            (non-negative). 0 (or ``(1, 1)``) leaves the adjustment out.
        hue: ``h`` in [0, 0.5] means shifts in ``[-h, h]``; a pair is the range itself
            (within [-0.5, 0.5]). 0 leaves it out.
        learnable: Make both ends of every range ``nnx.Param``s.
    """

    brightness: MagnitudeValue = 0.0
    contrast: MagnitudeValue = 0.0
    saturation: MagnitudeValue = 0.0
    hue: MagnitudeValue = 0.0
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        for name in ("brightness", "contrast", "saturation", "hue"):
            self.span(name)
        require_bool(self, "learnable")

    def span(self, name: str) -> Span:
        """The ``(low, high)`` range of one adjustment."""
        value, where = getattr(self, name), f"ColorJitterConfig.{name}"
        if name == "hue":
            limit = 0.5
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = (-_at_most(value, limit, where), float(value))
            return check_magnitude(value, where=where, minimum=-limit, maximum=limit)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (max(0.0, 1.0 - _at_most(value, None, where)), 1.0 + value)
        return check_magnitude(value, where=where, minimum=0.0)

    def enabled(self) -> tuple[str, ...]:
        """The adjustments whose range is not the identity, in torchvision's order."""
        return tuple(name for name, identity in _JITTER if self.span(name) != (identity,) * 2)


class ColorJitter(PixelOperator):
    """Brightness, contrast, saturation and hue with random factors, in a random order.

    As torchvision's ``ColorJitter``: each record draws its factors and its own
    order of the enabled adjustments (a permutation from its key), then applies
    them one after the other (``uint8`` images are rounded after each step, as PIL
    images are). The order is applied with a vectorised select: each step is one
    blend (with black, the mean grey or the luma image, chosen per record) and, when
    hue is enabled, one hue rotation.

    Example:
        >>> op = ColorJitter(
        ...     ColorJitterConfig(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
        ...     rngs=nnx.Rngs(0))
    """

    config_type = ColorJitterConfig
    config: ColorJitterConfig
    differentiable_in = ("input", "brightness", "contrast", "saturation", "hue")
    reference = "PIL.ImageEnhance (per step) and colorsys hue, in torchvision's ColorJitter order"
    requires_rgb = True
    magnitude_fields = ("brightness", "contrast", "saturation", "hue")
    extra_uniforms = 4  # one sort key per adjustment: their argsort is the order

    def __init__(
        self, config: ColorJitterConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        learnable = config.learnable
        self.brightness = magnitude_of(config.span("brightness"), learnable=learnable)
        self.contrast = magnitude_of(config.span("contrast"), learnable=learnable)
        self.saturation = magnitude_of(config.span("saturation"), learnable=learnable)
        self.hue = magnitude_of(config.span("hue"), learnable=learnable)

    @classmethod
    def is_stochastic(cls, config: ImageOperatorConfig) -> bool:
        assert isinstance(config, ColorJitterConfig)
        enabled = config.enabled()
        ranged = any(config.span(name)[0] != config.span(name)[1] for name in enabled)
        return ranged or len(enabled) > 1 or config.probability < 1.0

    def parameters(self, batch: int, u: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        """Each record's values and order: ``(B, 4)`` factors (brightness, contrast,
        saturation, hue) and ``(B, k)`` indices of the ``k`` enabled adjustments
        (into the same four) in the order they are applied."""
        magnitudes = self._magnitudes()
        values = jnp.stack([self.value(m, u, i, batch) for i, m in enumerate(magnitudes)], axis=1)
        enabled = jnp.asarray(
            [self.magnitude_fields.index(n) for n in self.config.enabled()], jnp.int32
        )
        if u is None or len(enabled) < 2:
            return values, jnp.broadcast_to(enabled, (batch, len(enabled)))
        sort_keys = u[:, 4 : 4 + len(enabled)]
        return values, enabled[jnp.argsort(sort_keys, axis=1)]

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        values, order = self.parameters(images.shape[0], u)
        if order.shape[1] <= 1:
            return images if order.shape[1] == 0 else self._step(images, values, order[:, 0])
        # A loop over the steps (not unrolled): the step is compiled once.
        step = lambda i, out: self._step(out, values, order[:, i])  # noqa: E731
        return jax.lax.fori_loop(0, order.shape[1], step, images)

    def _step(self, images: jax.Array, values: jax.Array, chosen: jax.Array) -> jax.Array:
        # Brightness, contrast and saturation are one blend with a per-record choice of
        # degenerate image (black, mean grey, luma), so a step costs one blend and, when
        # hue is enabled, one hue rotation, selected per record.
        enabled = self.config.enabled()
        which = per_record(chosen, images.ndim)
        out = images
        if set(enabled) - {"hue"}:
            gray = luma(images)[..., None]
            mean = per_record(_mean_level(gray[..., 0]), images.ndim)
            degenerate = jnp.where(which == 0, 0, jnp.where(which == 1, mean, gray))
            factor = jnp.take_along_axis(values, chosen[:, None], axis=1)[:, 0]
            out = blend(
                jnp.broadcast_to(degenerate, images.shape).astype(images.dtype), images, factor
            )
        if "hue" in enabled:
            out = jnp.where(which == 3, adjust_hue(images, values[:, 3]), out)
        return out

    def _magnitudes(self) -> tuple[Magnitude, ...]:
        return (self.brightness, self.contrast, self.saturation, self.hue)


def _at_most(value: float, limit: float | None, where: str) -> float:
    if value < 0 or (limit is not None and value > limit):
        raise ConfigError(
            "jitter amount out of range",
            where=where,
            expected=f"a number in [0, {'inf' if limit is None else limit}] or a (low, high) pair",
            found=repr(value),
        )
    return float(value)
