"""`WindowShuffleSampler`: shuffles another sampler's order within windows.

For sources read in order (streams, files without an index) a global permutation
would need random access. A window shuffle permutes each run of ``buffer_size``
consecutive positions with its own Feistel permutation, so reading a window of the
input is enough to emit it. Every epoch shifts the window boundaries by a
pseudo-random phase, so records meet different neighbours in every epoch. The
order is a pure function of (seed, epoch, position): resuming needs no buffered
records, only the position.

Example:
    >>> import numpy as np
    >>> from datarax.samplers import SequentialSampler, SequentialSamplerConfig
    >>> base = SequentialSampler(SequentialSamplerConfig(num_records=10))
    >>> s = WindowShuffleSampler(WindowShuffleConfig(buffer_size=4, seed=1), base=base)
    >>> order = s.indices(0, 0, 10)
    >>> sorted(order.tolist()) == list(range(10))
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datarax.core.config import Config, require_positive, require_seed
from datarax.core.rng import mix64
from datarax.samplers.base import Sampler
from datarax.samplers.feistel import FeistelPermutation

_WINDOW_STREAM = 0x57494E444F57  # "WINDOW"


@dataclass(frozen=True)
class WindowShuffleConfig(Config):
    """Args: buffer_size: positions per window; seed: any int."""

    buffer_size: int = 1024
    seed: int = 0

    def validate(self) -> None:
        require_positive(self, "buffer_size")
        require_seed(self)


class WindowShuffleSampler(Sampler):
    """``base``'s order, permuted within windows of ``buffer_size`` positions.

    Args:
        config: Window size and seed.
        base: The order being shuffled.
    """

    config_type = WindowShuffleConfig
    config: WindowShuffleConfig

    def __init__(
        self, config: WindowShuffleConfig, *, base: Sampler, name: str | None = None
    ) -> None:
        self.require_config(config)
        super().__init__(config, name=name)
        self.base = base

    @property
    def lookahead(self) -> int:
        """One window: the rest of the current window holds the lowest id still to come."""
        return min(self.config.buffer_size * self.base.lookahead, len(self))

    def __len__(self) -> int:
        return len(self.base)

    @property
    def records_addressed(self) -> int | None:
        return self.base.records_addressed

    def phase(self, epoch: int) -> int:
        """How far this epoch's window boundaries are shifted back."""
        size = self.config.buffer_size
        if size >= len(self):
            return 0
        return mix64(_WINDOW_STREAM, self.config.seed, epoch, -1) % size

    def window(self, epoch: int, k: int) -> tuple[int, int]:
        """Positions ``[start, stop)`` of window ``k`` of ``epoch``."""
        size, phase = self.config.buffer_size, self.phase(epoch)
        return max(0, k * size - phase), min(len(self), (k + 1) * size - phase)

    def indices(self, epoch: int, start: int, stop: int) -> np.ndarray:
        self._check_range(epoch, start, stop)
        out = np.empty(stop - start, np.int64)
        if stop == start:
            return out
        size, phase = self.config.buffer_size, self.phase(epoch)
        for k in range((start + phase) // size, (stop - 1 + phase) // size + 1):
            w_start, w_stop = self.window(epoch, k)
            perm = FeistelPermutation(
                w_stop - w_start, mix64(_WINDOW_STREAM, self.config.seed, epoch, k)
            )
            lo, hi = max(start, w_start), min(stop, w_stop)
            source_ids = self.base.indices(epoch, w_start, w_stop)
            out[lo - start : hi - start] = source_ids[perm(np.arange(lo - w_start, hi - w_start))]
        return out

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "base": self.base.fingerprint()}
