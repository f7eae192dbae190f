"""`PixelOperator`: the base of operators that change pixel values, not positions.

Colour and tone operators (brightness, contrast, hue, solarize, equalize, ...) share
one frame: images are ``uint8`` or floating, channels-last with 1 or 3 channels (or
``(H, W)`` per record); each record's magnitudes are drawn from its own uniforms;
with ``probability < 1`` a record is changed only when its own coin says so.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from datarax.core.config import require_bool
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.base import uniforms_from_words
from datarax.operators.image.base import ImageOperator, ImageOperatorConfig
from datarax.operators.magnitude import Magnitude, check_magnitude, draw, is_range, magnitude_of


@dataclass(frozen=True)
class PixelOperatorConfig(ImageOperatorConfig):
    """Args:
    probability: Chance that a record is changed; the others pass unchanged. Below 1
        the operator is stochastic (each record decides with its own key).
    """

    probability: float = 1.0

    def validate(self) -> None:
        super().validate()
        value = self.probability
        if not _is_real(value) or not 0.0 <= value <= 1.0:
            raise ConfigError(
                "probability out of range",
                where=f"{type(self).__name__}.probability",
                expected="a number in [0, 1]",
                found=repr(value),
            )


class PixelOperator(ImageOperator):
    """Base of colour and tone operators.

    Subclasses implement :meth:`adjust` on ``(B, H, W, C)`` images that are ``uint8``
    or ``float32`` (other float dtypes are computed in float32 and cast back;
    ``(B, H, W)`` batches get a channel axis for the call). They name the config
    fields holding magnitudes in ``magnitude_fields`` (a record draws one uniform for
    each) and may ask for ``extra_uniforms`` more.

    Class attributes:
        differentiable_in: What gradients flow to (``"input"`` and magnitude names).
        reference: The implementation the operator is checked against.
        requires_rgb: Whether images must have 3 channels.
    """

    config: PixelOperatorConfig
    differentiable_in: ClassVar[tuple[str, ...]] = ()
    reference: ClassVar[str] = ""
    requires_rgb: ClassVar[bool] = False
    magnitude_fields: ClassVar[tuple[str, ...]] = ()
    extra_uniforms: ClassVar[int] = 0

    @classmethod
    def is_stochastic(cls, config: ImageOperatorConfig) -> bool:
        assert isinstance(config, PixelOperatorConfig)
        ranged = any(is_range(getattr(config, name)) for name in cls.magnitude_fields)
        return ranged or config.probability < 1.0

    @property
    def uniform_count(self) -> int:
        """Uniforms per record: one per magnitude, the extras, and the probability coin."""
        return len(self.magnitude_fields) + self.extra_uniforms + 1

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        u = None if words is None else uniforms_from_words(words, self.uniform_count)

        def change(work: jax.Array) -> jax.Array:
            out = self.adjust(work, None if u is None else u[:, :-1])
            if self.config.probability < 1.0:
                assert u is not None  # stochastic whenever probability < 1
                changed = (u[:, -1] < self.config.probability).reshape((-1, 1, 1, 1))
                out = jnp.where(changed, out, work)
            return out

        return self.on_pixels(images, change)

    def on_pixels(self, images: jax.Array, change: Callable[[jax.Array], jax.Array]) -> jax.Array:
        """``change`` of the images as this operator computes them, cast back.

        The images are checked, ``(B, H, W)`` ones get a channel axis, and dtypes
        other than ``uint8`` and ``float32`` are computed in float32.
        """
        self.check_pixels(images)
        batch = images[..., None] if images.ndim == 3 else images
        exact = batch.dtype in (jnp.dtype(jnp.uint8), jnp.dtype(jnp.float32))
        work = batch if exact else batch.astype(jnp.float32)
        out = change(work).astype(images.dtype)
        return out[..., 0] if images.ndim == 3 else out

    def adjust(self, images: jax.Array, u: jax.Array | None) -> jax.Array:
        """Change a batch of ``(B, H, W, C)`` images; ``u`` is ``(B, n)`` uniforms or ``None``.

        Column ``i`` of ``u`` belongs to ``magnitude_fields[i]``; the extras follow.
        """
        raise NotImplementedError

    def value(
        self, magnitude: Magnitude, u: jax.Array | None, column: int, batch: int
    ) -> jax.Array:
        """The ``(B,)`` float32 values of ``magnitude`` for a batch, from column ``column``."""
        spread = jnp.zeros((batch,), jnp.float32) if u is None else u[:, column]
        return draw(magnitude, spread)

    def check_pixels(self, images: jax.Array) -> None:
        """Raise :class:`SchemaError` unless the images have a dtype and channels we handle."""
        where = f"{self.name}, field '{self.config.field}'"
        if images.dtype != jnp.uint8 and not jnp.issubdtype(images.dtype, jnp.floating):
            raise SchemaError(
                "images must be uint8 or floating",
                where=where,
                expected="uint8 (0..255) or float in [0, 1]",
                found=str(images.dtype),
            )
        channels = 1 if images.ndim == 3 else images.shape[-1]
        allowed = (3,) if self.requires_rgb else (1, 3)
        if channels not in allowed:
            wanted = "3 channels (RGB)" if self.requires_rgb else "1 or 3 channels"
            raise SchemaError(
                "wrong number of channels",
                where=where,
                expected=f"{wanted}, channels last",
                found=f"images of shape {tuple(images.shape[1:])}",
            )


def checked_magnitude(
    config: Any, field: str, *, minimum: float | None = None, maximum: float | None = None
) -> tuple[float, float]:
    """``config.field`` as a ``(low, high)`` span; :class:`ConfigError` names the field."""
    return check_magnitude(
        getattr(config, field),
        where=f"{type(config).__name__}.{field}",
        minimum=minimum,
        maximum=maximum,
    )


def learnable_magnitude(config: Any, field: str, **limits: float) -> Magnitude:
    """The operator attribute for magnitude ``config.field`` (a Param when learnable)."""
    return magnitude_of(
        checked_magnitude(config, field, **limits), learnable=getattr(config, "learnable", False)
    )


def require_learnable_flag(config: Any) -> None:
    """Check ``config.learnable`` is a bool."""
    require_bool(config, "learnable")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
