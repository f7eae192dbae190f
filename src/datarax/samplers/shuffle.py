"""`ShuffleSampler`: a fresh pseudo-random permutation of all records every epoch."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from datarax.core.config import Config, require_positive, require_seed
from datarax.core.rng import mix64
from datarax.samplers.base import Sampler
from datarax.samplers.feistel import FeistelPermutation

_SHUFFLE_STREAM = 0x5348554646  # "SHUFF": keeps shuffle keys apart from other seed uses


@dataclass(frozen=True)
class ShuffleSamplerConfig(Config):
    """Args: num_records: records per epoch; seed: any int."""

    num_records: int = 1
    seed: int = 0

    def validate(self) -> None:
        require_positive(self, "num_records")
        require_seed(self)


class ShuffleSampler(Sampler):
    """Epoch ``e`` is the Feistel permutation keyed by ``mix64(seed, e)``.

    Every epoch is a permutation of all records (no record repeats or leaks into the
    next epoch), neighbouring seeds and epochs give unrelated orders, and memory is
    O(1) in the number of records.

    Example:
        >>> s = ShuffleSampler(ShuffleSamplerConfig(num_records=8, seed=0))
        >>> sorted(s.epoch_order(0).tolist())
        [0, 1, 2, 3, 4, 5, 6, 7]
    """

    config_type = ShuffleSamplerConfig
    config: ShuffleSamplerConfig

    def __init__(self, config: ShuffleSamplerConfig, *, name: str | None = None) -> None:
        super().__init__(config, name=name)
        self._last_permutation: tuple[int, FeistelPermutation] | None = None

    def __len__(self) -> int:
        return self.config.num_records

    @property
    def records_addressed(self) -> int:
        return self.config.num_records

    def permutation(self, epoch: int) -> FeistelPermutation:
        """The permutation used for ``epoch`` (the last one is kept: it is small)."""
        cached = self._last_permutation
        if cached is not None and cached[0] == epoch:
            return cached[1]
        permutation = FeistelPermutation(
            self.config.num_records, mix64(_SHUFFLE_STREAM, self.config.seed, epoch)
        )
        self._last_permutation = (epoch, permutation)  # one assignment: safe across threads
        return permutation

    def indices(self, epoch: int, start: int, stop: int) -> np.ndarray:
        self._check_range(epoch, start, stop)
        return self.permutation(epoch)(np.arange(start, stop, dtype=np.int64))

    def indices_jax(self, epoch: int, positions: jax.Array) -> jax.Array:
        return self.permutation(epoch).jax(positions)
