"""Noise and blur: `GaussianNoise`, `SaltAndPepper`, `GaussianBlur`.

Value conventions: float images are assumed in ``[0, 1]``, integer images in
``[0, max of the dtype]`` (``[0, 255]`` for ``uint8``). Magnitudes that are
intensities (a noise level) are fractions of that range, so one config suits both.
Integer images keep their dtype: results are rounded (half to even) and clipped.

Per-record randomness comes from the record's key only: the magnitude (a
``sigma``, an ``amount``) from the uniform of its first random word, and arrays of
random numbers (one per pixel) from :func:`record_key` of its words.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import require_bool
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.image.base import ImageOperator, ImageOperatorConfig, as_pair, uniform
from datarax.operators.magnitude import (
    Magnitude,
    check_magnitude,
    draw,
    is_range,
    magnitude_of,
)

__all__ = [
    "GaussianBlur",
    "GaussianBlurConfig",
    "GaussianNoise",
    "GaussianNoiseConfig",
    "SaltAndPepper",
    "SaltAndPepperConfig",
    "gaussian_kernel",
    "record_key",
    "value_peak",
]


def record_key(words: jax.Array) -> jax.Array:
    """The Threefry keys ``(B,)`` whose data are the records' random words ``(B, 2)``.

    With JAX's default PRNG these are exactly the records' keys; arrays of random
    numbers per record (noise, per-pixel masks) are drawn from them.
    """
    return jax.random.wrap_key_data(words.astype(jnp.uint32), impl="threefry2x32")


def value_peak(dtype: jnp.dtype) -> float:
    """The largest value of an image of ``dtype``: 1.0 for floats, the dtype's max for ints."""
    if jnp.issubdtype(dtype, jnp.integer):
        return float(jnp.iinfo(dtype).max)
    return 1.0


def compute_dtype(dtype: jnp.dtype) -> jnp.dtype:
    """The float dtype image arithmetic runs in (``float32``, or ``float64`` for it)."""
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.promote_types(dtype, jnp.float32)
    return jnp.dtype(jnp.float32)


def back_to(values: jax.Array, dtype: jnp.dtype, *, clip: bool) -> jax.Array:
    """Float results as ``dtype``: integers rounded and clipped to ``[0, peak]``."""
    if jnp.issubdtype(dtype, jnp.integer):
        return jnp.clip(jnp.round(values), 0, value_peak(dtype)).astype(dtype)
    if clip:
        values = jnp.clip(values, 0.0, 1.0)
    return values.astype(dtype)


def _magnitude_uniforms(words: jax.Array | None, batch: int) -> jax.Array:
    """Uniforms for a per-record magnitude (zeros when the operator is deterministic)."""
    return jnp.zeros(batch, jnp.float32) if words is None else uniform(words[:, 0])


def _check_float_or_int(images: jax.Array, where: str) -> None:
    dtype = images.dtype
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise SchemaError(
            "images must be numbers",
            where=where,
            expected="a floating or integer dtype",
            found=str(dtype),
        )


# ---------------------------------------------------------------------- GaussianNoise


@dataclass(frozen=True)
class GaussianNoiseConfig(ImageOperatorConfig):
    """Args:
    sigma: Standard deviation of the noise, as a fraction of the value range
        (``1`` for float images, ``255`` for ``uint8``): a number, or a
        ``(low, high)`` range drawn per record.
    clip: Clip float results to ``[0, 1]`` (integer results are always clipped).
    learnable: Hold ``sigma`` in an ``nnx.Param``.
    """

    sigma: float | tuple[float, float] = 0.1
    clip: bool = True
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        check_magnitude(self.sigma, where="GaussianNoiseConfig.sigma", minimum=0.0)
        require_bool(self, "clip")
        require_bool(self, "learnable")


class GaussianNoise(ImageOperator):
    """Adds ``sigma * peak * n`` to each image, with ``n`` standard normal per value.

    ``n`` is ``jax.random.normal(record_key(words), image_shape)`` for each record;
    ``sigma`` is fixed or drawn per record. The result is differentiable in the
    input and in ``sigma`` (reparametrised: the draws do not depend on ``sigma``),
    except where clipping is active.

    Example:
        >>> from flax import nnx
        >>> noise = GaussianNoise(GaussianNoiseConfig(sigma=(0.0, 0.1)), rngs=nnx.Rngs(0))
    """

    config_type = GaussianNoiseConfig
    config: GaussianNoiseConfig
    stochastic_default = True
    differentiable_in: tuple[str, ...] = ("input", "sigma")
    reference: str = "image + sigma * normal draws recomputed from the record keys (NumPy)"

    def __init__(
        self, config: GaussianNoiseConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        span = check_magnitude(config.sigma, where="GaussianNoiseConfig.sigma")
        self.sigma: Magnitude = magnitude_of(span, learnable=config.learnable)

    def sigmas(self, words: jax.Array) -> jax.Array:
        """Each record's ``sigma`` ``(B,)`` (a fraction of the value range)."""
        return draw(self.sigma, uniform(words[:, 0]))

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        assert words is not None  # stochastic: always given its words
        _check_float_or_int(images, f"{self.name}, field '{self.config.field}'")
        dtype = compute_dtype(images.dtype)
        shape = images.shape[1:]
        noise = jax.vmap(lambda key: jax.random.normal(key, shape, dtype))(record_key(words))
        scale = (self.sigmas(words) * value_peak(images.dtype)).astype(dtype)
        noisy = images.astype(dtype) + scale.reshape((-1,) + (1,) * len(shape)) * noise
        return back_to(noisy, images.dtype, clip=self.config.clip)


# ---------------------------------------------------------------------- SaltAndPepper


@dataclass(frozen=True)
class SaltAndPepperConfig(ImageOperatorConfig):
    """Args:
    amount: Fraction of pixels replaced: a number in ``[0, 1]`` or a range drawn
        per record.
    salt_ratio: Fraction of the replaced pixels set to the peak value (salt); the
        others are set to 0 (pepper).
    per_channel: Decide each channel of a pixel on its own (as
        ``skimage.util.random_noise(mode="s&p")`` does) instead of whole pixels.
    """

    amount: float | tuple[float, float] = 0.05
    salt_ratio: float = 0.5
    per_channel: bool = False

    def validate(self) -> None:
        super().validate()
        check_magnitude(self.amount, where="SaltAndPepperConfig.amount", minimum=0.0, maximum=1.0)
        ratio = self.salt_ratio
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 <= ratio <= 1:
            raise ConfigError(
                "salt_ratio must be a fraction",
                where="SaltAndPepperConfig.salt_ratio",
                expected="a number in [0, 1]",
                found=repr(ratio),
            )
        require_bool(self, "per_channel")


class SaltAndPepper(ImageOperator):
    """Replaces a random ``amount`` of pixels by salt (peak value) or pepper (0).

    Per pixel ``u = jax.random.uniform(record_key(words), (H, W))`` (``(H, W, C)``
    with ``per_channel``): salt where ``u < amount * salt_ratio``, pepper where
    ``amount * salt_ratio <= u < amount``, unchanged elsewhere.

    Example:
        >>> from flax import nnx
        >>> sp = SaltAndPepper(SaltAndPepperConfig(amount=0.1), rngs=nnx.Rngs(0))
    """

    config_type = SaltAndPepperConfig
    config: SaltAndPepperConfig
    stochastic_default = True
    differentiable_in: tuple[str, ...] = ("input",)
    reference: str = "per-pixel uniforms recomputed from the record keys (NumPy)"

    def amounts(self, words: jax.Array) -> jax.Array:
        """Each record's fraction of replaced pixels ``(B,)``."""
        span = check_magnitude(self.config.amount, where="SaltAndPepperConfig.amount")
        return draw(span, uniform(words[:, 0]))

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        assert words is not None  # stochastic: always given its words
        _check_float_or_int(images, f"{self.name}, field '{self.config.field}'")
        color = images.ndim == 4
        shape = images.shape[1:] if (color and self.config.per_channel) else images.shape[1:3]
        u = jax.vmap(lambda key: jax.random.uniform(key, shape))(record_key(words))
        if color and not self.config.per_channel:
            u = u[..., None]
        amount = self.amounts(words).reshape((-1,) + (1,) * (u.ndim - 1))
        salt_below = amount * self.config.salt_ratio
        peak = jnp.asarray(value_peak(images.dtype), images.dtype)
        out = jnp.where(u < salt_below, peak, images)
        return jnp.where((u >= salt_below) & (u < amount), jnp.zeros((), images.dtype), out)


# ----------------------------------------------------------------------- GaussianBlur


@dataclass(frozen=True)
class GaussianBlurConfig(ImageOperatorConfig):
    """Args:
    kernel_size: Odd kernel size, one int or ``(height, width)``.
    sigma: Standard deviation in pixels (> 0), fixed or a ``(low, high)`` range
        drawn per record (one sigma per record for both axes).
    learnable: Hold ``sigma`` in an ``nnx.Param``.
    """

    kernel_size: int | tuple[int, int] = 5
    sigma: float | tuple[float, float] = (0.1, 2.0)
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        size = as_pair(self.kernel_size, "GaussianBlurConfig.kernel_size")
        if not all(k > 0 and k % 2 == 1 for k in size):
            raise ConfigError(
                "kernel size must be odd and positive",
                where="GaussianBlurConfig.kernel_size",
                expected="odd ints > 0, e.g. 5 or (3, 7)",
                found=repr(self.kernel_size),
            )
        low, _ = check_magnitude(self.sigma, where="GaussianBlurConfig.sigma", minimum=0.0)
        if low <= 0.0:
            raise ConfigError(
                "sigma must be positive",
                where="GaussianBlurConfig.sigma",
                expected="values > 0",
                found=repr(self.sigma),
            )
        require_bool(self, "learnable")


class GaussianBlur(ImageOperator):
    """Separable Gaussian blur with a reflected border, sigma per record.

    The kernel of radius ``r = (k - 1) // 2`` is ``exp(-x**2 / (2 sigma**2))`` for
    ``x = -r..r``, normalised to sum 1 (as torchvision's ``gaussian_blur``); the
    border is mirrored without repeating the edge pixel (``numpy.pad`` mode
    ``"reflect"``, scipy mode ``"mirror"``). This equals
    ``scipy.ndimage.gaussian_filter(image, sigma, mode="mirror", truncate=r / sigma)``
    per axis. Differentiable in the input and in ``sigma``.

    Example:
        >>> from flax import nnx
        >>> blur = GaussianBlur(GaussianBlurConfig(kernel_size=5, sigma=1.0))
    """

    config_type = GaussianBlurConfig
    config: GaussianBlurConfig
    differentiable_in: tuple[str, ...] = ("input", "sigma")
    reference: str = "scipy.ndimage.gaussian_filter (mode='mirror', truncate=radius/sigma)"

    def __init__(
        self, config: GaussianBlurConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        span = check_magnitude(config.sigma, where="GaussianBlurConfig.sigma")
        self.sigma: Magnitude = magnitude_of(span, learnable=config.learnable)

    @classmethod
    def is_stochastic(cls, config: ImageOperatorConfig) -> bool:
        assert isinstance(config, GaussianBlurConfig)
        return is_range(config.sigma)

    def sigmas(self, words: jax.Array | None, batch: int) -> jax.Array:
        """Each record's sigma ``(B,)``."""
        return draw(self.sigma, _magnitude_uniforms(words, batch))

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        where = f"{self.name}, field '{self.config.field}'"
        _check_float_or_int(images, where)
        k_h, k_w = as_pair(self.config.kernel_size, "kernel_size")
        height, width = images.shape[1:3]
        if k_h // 2 >= height or k_w // 2 >= width:
            raise SchemaError(
                "kernel radius must be smaller than the image for a reflected border",
                where=where,
                expected=f"images larger than ({k_h // 2}, {k_w // 2})",
                found=f"({height}, {width})",
            )
        dtype = compute_dtype(images.dtype)
        sigma = self.sigmas(words, images.shape[0]).astype(dtype)
        out = images.astype(dtype)
        out = _convolve_axis(out, gaussian_kernel(sigma, k_h // 2), axis=1)
        out = _convolve_axis(out, gaussian_kernel(sigma, k_w // 2), axis=2)
        return back_to(out, images.dtype, clip=False)


def gaussian_kernel(sigma: jax.Array, radius: int) -> jax.Array:
    """Normalised Gaussian weights ``(B, 2 * radius + 1)``, one kernel per sigma."""
    x = jnp.arange(-radius, radius + 1, dtype=sigma.dtype)
    weights = jnp.exp(-0.5 * (x[None, :] / sigma[:, None]) ** 2)
    return weights / jnp.sum(weights, axis=1, keepdims=True)


def _convolve_axis(images: jax.Array, kernel: jax.Array, axis: int) -> jax.Array:
    """Per-record 1-D correlation of ``images`` along ``axis`` with a reflected border."""
    radius = (kernel.shape[1] - 1) // 2
    if radius == 0:
        return images * kernel[:, 0].reshape((-1,) + (1,) * (images.ndim - 1))
    pad = [(0, 0)] * images.ndim
    pad[axis] = (radius, radius)
    padded = jnp.pad(images, pad, mode="reflect")
    size = images.shape[axis]
    out = jnp.zeros_like(images)
    for tap in range(kernel.shape[1]):  # a loop over kernel taps, not records
        weight = kernel[:, tap].reshape((-1,) + (1,) * (images.ndim - 1))
        out = out + weight * jax.lax.slice_in_dim(padded, tap, tap + size, axis=axis)
    return out
