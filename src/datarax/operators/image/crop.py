"""`RandomCrop`: a random window of each image, from the image padded with a fill value."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.image.base import as_pair
from datarax.operators.image.sampling import SamplingStep, axis_aligned, window
from datarax.operators.image.spatial import GeometricConfig, IndexMap, SpatialOperator


@dataclass(frozen=True)
class RandomCropConfig(GeometricConfig):
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


class RandomCrop(SpatialOperator):
    """Crops each record at its own random offset (uniform over all valid windows).

    The crop is one gather with ``fill`` for the padded border, so no padded copy of
    the batch is ever made; a following ``RandomFlip`` joins the same gather.

    Example:
        >>> from flax import nnx
        >>> crop = RandomCrop(RandomCropConfig(size=24, padding=4), rngs=nnx.Rngs(0))
    """

    config_type = RandomCropConfig
    config: RandomCropConfig
    stochastic_default = True
    differentiable_in: tuple[str, ...] = ("input",)
    reference: str = "NumPy: a window of numpy.pad(image, padding, constant fill)"

    def index_map(self, height: int, width: int, words: jax.Array | None) -> IndexMap:
        top, left = self.offsets(height, width, words)
        out_h, out_w = as_pair(self.config.size, "size")
        pad_y, pad_x = as_pair(self.config.padding, "padding")
        return IndexMap(
            rows=top[:, None] + jnp.arange(out_h, dtype=jnp.int32),
            cols=left[:, None] + jnp.arange(out_w, dtype=jnp.int32),
            height=height,
            width=width,
            fill=self.config.fill if (pad_y or pad_x) else None,
        )

    def sampling_steps(
        self, height: int, width: int, words: jax.Array | None
    ) -> tuple[SamplingStep, ...]:
        top, left = self.offsets(height, width, words)
        out_h, out_w = as_pair(self.config.size, "size")
        pad_y, pad_x = as_pair(self.config.padding, "padding")
        batch = top.shape[0]
        return (
            SamplingStep(
                matrix=axis_aligned(1.0, top, 1.0, left, batch),
                in_size=(height, width),
                out_size=(out_h, out_w),
                outside="fill" if (pad_y or pad_x) else None,
                fill=self.config.fill,
                mask_fill=self.config.also_fill,
                window=window(top, top + out_h, left, left + out_w, batch),
            ),
        )

    def offsets(
        self, height: int, width: int, words: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        """Each record's window ``(top, left)`` in input pixels (negative in the padding)."""
        assert words is not None  # stochastic: always given its words
        out_h, out_w = as_pair(self.config.size, "size")
        pad_y, pad_x = as_pair(self.config.padding, "padding")
        span_y, span_x = height + 2 * pad_y - out_h + 1, width + 2 * pad_x - out_w + 1
        if span_y <= 0 or span_x <= 0:
            raise SchemaError(
                "crop larger than the padded image",
                where=self._where(),
                expected=f"padded size >= ({out_h}, {out_w})",
                found=f"({height + 2 * pad_y}, {width + 2 * pad_x})",
            )
        w = words[:, 0]
        top = (w % span_y).astype(jnp.int32) - pad_y
        left = ((w >> 16) % span_x).astype(jnp.int32) - pad_x
        return top, left
