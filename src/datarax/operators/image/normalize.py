"""`Normalize`: cast to float and standardise per channel."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.errors import ConfigError
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
        std = np.atleast_1d(np.asarray(self.std, dtype=np.float64))
        if std.ndim != 1 or np.any(std <= 0):
            raise ConfigError("std must be positive", where="NormalizeConfig.std",
                              expected="values > 0", found=repr(self.std))
        if np.atleast_1d(np.asarray(self.mean)).ndim != 1:
            raise ConfigError("mean must be a number or a sequence", where="NormalizeConfig.mean",
                              expected="e.g. 0.5 or (0.5, 0.5, 0.5)", found=repr(self.mean))
        if not np.issubdtype(np.dtype(self.dtype), np.floating):
            raise ConfigError("dtype must be floating", where="NormalizeConfig.dtype",
                              expected="e.g. 'float32' or 'bfloat16'", found=repr(self.dtype))


class Normalize(ImageOperator):
    """Deterministic per-channel standardisation.

    Example:
        >>> import jax.numpy as jnp
        >>> op = Normalize(NormalizeConfig(mean=(1.0, 2.0), std=(2.0, 4.0)))
        >>> op.transform_images(jnp.array([[[[3, 6]]]], jnp.uint8), None).tolist()
        [[[[1.0, 1.0]]]]
    """

    config_type = NormalizeConfig

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        dtype = jnp.dtype(self.config.dtype)
        mean = np.asarray(self.config.mean, np.float32)
        inv_std = (1.0 / np.asarray(self.config.std, np.float64)).astype(np.float32)
        return ((images.astype(jnp.float32) - mean) * inv_std).astype(dtype)
