"""`Normalize`: cast to float and standardise per channel."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import check_number
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.image.base import ImageOperator, ImageOperatorConfig


@dataclass(frozen=True)
class NormalizeConfig(ImageOperatorConfig):
    """``(image - mean) / std`` per channel, computed in ``dtype``.

    Args:
        mean, std: One value, or one per channel.
        dtype: Output dtype (a floating type).
    """

    mean: float | tuple[float, ...] = 0.0
    std: float | tuple[float, ...] = 1.0
    dtype: str = "float32"

    def validate(self) -> None:
        super().validate()
        for name in ("mean", "std"):
            value = getattr(self, name)
            values = value if isinstance(value, (tuple, list)) else (value,)
            if not values:
                raise ConfigError(
                    f"{name} must be a number or a sequence",
                    where=f"NormalizeConfig.{name}",
                    expected="e.g. 0.5 or (0.5, 0.5, 0.5)",
                    found=repr(value),
                )
            for v in values:
                check_number(v, where=f"NormalizeConfig.{name}")
        std = np.atleast_1d(np.asarray(self.std, dtype=np.float64))
        if std.ndim != 1 or not np.all(std > 0):
            raise ConfigError(
                "std must be positive",
                where="NormalizeConfig.std",
                expected="values > 0",
                found=repr(self.std),
            )
        mean = np.atleast_1d(np.asarray(self.mean, dtype=np.float64))
        if mean.ndim != 1 or not np.all(np.isfinite(mean)):
            raise ConfigError(
                "mean must be a number or a sequence",
                where="NormalizeConfig.mean",
                expected="e.g. 0.5 or (0.5, 0.5, 0.5)",
                found=repr(self.mean),
            )
        if len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise ConfigError(
                "mean and std have different lengths",
                where="NormalizeConfig",
                expected="equal lengths (one per channel) or a single value",
                found=f"{len(mean)} means and {len(std)} stds",
            )
        try:
            floating = jnp.issubdtype(jnp.dtype(self.dtype), jnp.floating)
        except TypeError:
            floating = False
        if not floating:
            raise ConfigError(
                "dtype must be floating",
                where="NormalizeConfig.dtype",
                expected="e.g. 'float32' or 'bfloat16'",
                found=repr(self.dtype),
            )


class Normalize(ImageOperator):
    """Deterministic per-channel standardisation.

    Example:
        >>> import jax.numpy as jnp
        >>> op = Normalize(NormalizeConfig(mean=(1.0, 2.0), std=(2.0, 4.0)))
        >>> op.transform_images(jnp.array([[[[3, 6]]]], jnp.uint8), None).tolist()
        [[[[1.0, 1.0]]]]
    """

    config_type = NormalizeConfig
    config: NormalizeConfig
    differentiable_in = ("input",)
    reference = "NumPy: (x - mean) / std per channel"

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        channels = 1 if images.ndim == 3 else images.shape[-1]
        for name in ("mean", "std"):
            count = np.size(getattr(self.config, name))
            if count not in (1, channels):
                raise SchemaError(
                    f"one {name} per channel",
                    where=f"{self.name}, field '{self.config.field}'",
                    expected=f"1 or {channels} values for images of shape {images.shape[1:]}",
                    found=f"{count} values",
                )
        dtype = jnp.dtype(self.config.dtype)
        mean = np.asarray(self.config.mean, np.float32)
        inv_std = (1.0 / np.asarray(self.config.std, np.float64)).astype(np.float32)
        return ((images.astype(jnp.float32) - mean) * inv_std).astype(dtype)
