"""`SequentialSampler`: records in source order, every epoch."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import Config, require_positive
from datarax.samplers.base import Sampler


@dataclass(frozen=True)
class SequentialSamplerConfig(Config):
    """Args: num_records: records per epoch."""

    num_records: int = 1

    def validate(self) -> None:
        require_positive(self, "num_records")


class SequentialSampler(Sampler):
    """Positions map to themselves.

    Example:
        >>> SequentialSampler(SequentialSamplerConfig(num_records=5)).indices(3, 1, 4)
        array([1, 2, 3])
    """

    config_type = SequentialSamplerConfig
    config: SequentialSamplerConfig

    def __len__(self) -> int:
        return self.config.num_records

    @property
    def records_addressed(self) -> int:
        return self.config.num_records

    @property
    def lookahead(self) -> int:
        return 1

    def indices(self, epoch: int, start: int, stop: int) -> np.ndarray:
        self._check_range(epoch, start, stop)
        return np.arange(start, stop, dtype=np.int64)

    def indices_jax(self, epoch: int, positions: jax.Array) -> jax.Array:
        return jnp.asarray(positions, jnp.int32)
