"""`RandomFlip`: mirror each image with a probability, independently per record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from datarax.core.config import require_number
from datarax.core.errors import ConfigError
from datarax.operators.image.base import uniform
from datarax.operators.image.sampling import SamplingStep, axis_aligned, window
from datarax.operators.image.spatial import GeometricConfig, IndexMap, SpatialOperator


@dataclass(frozen=True)
class RandomFlipConfig(GeometricConfig):
    """Args:
    direction: ``"horizontal"`` (mirror the width axis) or ``"vertical"``.
    probability: Chance that a record is flipped.
    """

    direction: Literal["horizontal", "vertical"] = "horizontal"
    probability: float = 0.5

    def validate(self) -> None:
        super().validate()
        if self.direction not in ("horizontal", "vertical"):
            raise ConfigError(
                "unknown direction",
                where="RandomFlipConfig.direction",
                expected="'horizontal' or 'vertical'",
                found=repr(self.direction),
            )
        require_number(self, "probability", minimum=0.0, maximum=1.0)


class RandomFlip(SpatialOperator):
    """Flips each record with ``probability``, decided by the record's own key.

    Alone it is a select between each image and its mirror; after another
    geometric operator on the same field (a crop, say) it joins that operator's
    gather.

    Example:
        >>> from flax import nnx
        >>> flip = RandomFlip(RandomFlipConfig(probability=0.5), rngs=nnx.Rngs(0))
    """

    config_type = RandomFlipConfig
    config: RandomFlipConfig
    stochastic_default = True
    differentiable_in: tuple[str, ...] = ("input",)
    reference: str = "numpy.flip"

    def flips(self, words: jax.Array | None) -> jax.Array:
        """Which records are flipped, from their random words."""
        assert words is not None  # stochastic: always given its words
        return uniform(words[:, 0]) < self.config.probability

    def index_map(self, height: int, width: int, words: jax.Array | None) -> IndexMap:
        flip = self.flips(words)
        rows = jnp.broadcast_to(jnp.arange(height, dtype=jnp.int32), (flip.shape[0], height))
        cols = jnp.broadcast_to(jnp.arange(width, dtype=jnp.int32), (flip.shape[0], width))
        if self.config.direction == "horizontal":
            cols = jnp.where(flip[:, None], width - 1 - cols, cols)
        else:
            rows = jnp.where(flip[:, None], height - 1 - rows, rows)
        return IndexMap(rows=rows, cols=cols, height=height, width=width)

    def sampling_steps(
        self, height: int, width: int, words: jax.Array | None
    ) -> tuple[SamplingStep, ...]:
        flip = self.flips(words)
        sign, offset = jnp.where(flip, -1.0, 1.0), jnp.where(flip, 1.0, 0.0)
        batch = flip.shape[0]
        if self.config.direction == "horizontal":
            matrix = axis_aligned(1.0, 0.0, sign, offset * width, batch)
        else:
            matrix = axis_aligned(sign, offset * height, 1.0, 0.0, batch)
        return (
            SamplingStep(
                matrix=matrix,
                in_size=(height, width),
                out_size=(height, width),
                window=window(0.0, height, 0.0, width, batch),
            ),
        )

    def move(self, values: jax.Array, draws: jax.Array | None, *, mask: bool) -> jax.Array:
        axis = 2 if self.config.direction == "horizontal" else 1
        flip = self.flips(draws).reshape((-1,) + (1,) * (values.ndim - 1))
        return jnp.where(flip, jnp.flip(values, axis=axis), values)
