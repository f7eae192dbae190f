"""`RangeSampler`: a strided slice of the records, optionally shuffled per epoch."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import Config, require_bool, require_int, require_seed
from datarax.core.errors import ConfigError
from datarax.core.rng import mix64
from datarax.samplers.base import Sampler
from datarax.samplers.feistel import FeistelPermutation

_RANGE_STREAM = 0x52414E4745  # "RANGE"


@dataclass(frozen=True)
class RangeSamplerConfig(Config):
    """Records ``range(start, stop, step)``; with ``shuffle`` a new order each epoch."""

    start: int = 0
    stop: int = 1
    step: int = 1
    shuffle: bool = False
    seed: int = 0

    def validate(self) -> None:
        for name in ("start", "stop", "step"):
            require_int(self, name)
        require_bool(self, "shuffle")
        require_seed(self)
        if self.step <= 0 or self.start < 0 or len(range(self.start, self.stop, self.step)) == 0:
            raise ConfigError(
                "empty or invalid range",
                where="RangeSamplerConfig",
                expected="0 <= start < stop and step > 0",
                found=f"start={self.start}, stop={self.stop}, step={self.step}",
            )


class RangeSampler(Sampler):
    """Positions map to ``start + step * i`` (permuted per epoch when ``shuffle``).

    Example:
        >>> RangeSampler(RangeSamplerConfig(start=10, stop=20, step=3)).epoch_order(0)
        array([10, 13, 16, 19])
    """

    config_type = RangeSamplerConfig
    config: RangeSamplerConfig

    def __len__(self) -> int:
        c = self.config
        return len(range(c.start, c.stop, c.step))

    @property
    def records_addressed(self) -> int:
        c = self.config
        return range(c.start, c.stop, c.step)[-1] + 1

    def _positions(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        if not self.config.shuffle:
            return positions
        return FeistelPermutation(len(self), mix64(_RANGE_STREAM, self.config.seed, epoch))(
            positions
        )

    def indices(self, epoch: int, start: int, stop: int) -> np.ndarray:
        self._check_range(epoch, start, stop)
        pos = self._positions(epoch, np.arange(start, stop, dtype=np.int64))
        return self.config.start + self.config.step * pos

    def indices_jax(self, epoch: int, positions: jax.Array) -> jax.Array:
        pos = jnp.asarray(positions, jnp.int32)
        if self.config.shuffle:
            perm = FeistelPermutation(len(self), mix64(_RANGE_STREAM, self.config.seed, epoch))
            pos = perm.jax(pos)
        return self.config.start + self.config.step * pos
