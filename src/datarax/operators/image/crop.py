"""`RandomCrop`: a random window of each image, from the image padded with a fill value."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.image.base import ImageOperator, ImageOperatorConfig, as_pair


@dataclass(frozen=True)
class RandomCropConfig(ImageOperatorConfig):
    """Args:
    size: Output ``(height, width)`` (or one int for a square).
    padding: Pixels of ``fill`` added on each side before cropping (int or (y, x)).
    fill: Value of the padding.
    """

    size: int | tuple[int, int] = 32
    padding: int | tuple[int, int] = 0
    fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        size = as_pair(self.size, "RandomCropConfig.size")
        if min(size) <= 0:
            raise ConfigError(
                "crop size must be positive",
                where="RandomCropConfig.size",
                expected="sizes > 0",
                found=repr(self.size),
            )
        as_pair(self.padding, "RandomCropConfig.padding")
        if not isinstance(self.fill, (int, float)) or isinstance(self.fill, bool):
            raise ConfigError(
                "fill must be a number",
                where="RandomCropConfig.fill",
                expected="an int or float",
                found=repr(self.fill),
            )


class RandomCrop(ImageOperator):
    """Crops each record at its own random offset (uniform over all valid windows).

    The crop is one gather with fill for the padded border, so no padded copy of the
    batch is ever made.

    Example:
        >>> from flax import nnx
        >>> crop = RandomCrop(RandomCropConfig(size=24, padding=4), rngs=nnx.Rngs(0))
    """

    config_type = RandomCropConfig
    config: RandomCropConfig
    stochastic_default = True

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        assert words is not None  # stochastic: apply_batch always passes words
        height, width = images.shape[1:3]
        out_h, out_w = as_pair(self.config.size, "size")
        pad_y, pad_x = as_pair(self.config.padding, "padding")
        span_y, span_x = height + 2 * pad_y - out_h + 1, width + 2 * pad_x - out_w + 1
        if span_y <= 0 or span_x <= 0:
            raise SchemaError(
                "crop larger than the padded image",
                where=f"{self.name}, field '{self.config.field}'",
                expected=f"padded size >= ({out_h}, {out_w})",
                found=f"({height + 2 * pad_y}, {width + 2 * pad_x})",
            )
        w = words[:, 0]
        top = (w % span_y).astype(jnp.int32) - pad_y
        left = ((w >> 16) % span_x).astype(jnp.int32) - pad_x
        rows = top[:, None] + jnp.arange(out_h)
        cols = left[:, None] + jnp.arange(out_w)
        inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[
            :, None, :
        ]
        batch = jnp.arange(images.shape[0])[:, None, None]
        window = images[
            batch,
            jnp.clip(rows, 0, height - 1)[:, :, None],
            jnp.clip(cols, 0, width - 1)[:, None, :],
        ]
        if images.ndim == 4:
            inside = inside[..., None]
        fill = np.asarray(self.config.fill).astype(images.dtype)
        if fill != self.config.fill:
            raise SchemaError(
                "fill value not representable in the image dtype",
                where=f"{self.name}, field '{self.config.field}'",
                expected=f"a {images.dtype} value",
                found=repr(self.config.fill),
            )
        return jnp.where(inside, window, fill)
