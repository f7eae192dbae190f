"""`EpochAwareSampler`: walks a sampler across epochs as one resumable stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from datarax.core.config import Config, require_positive
from datarax.core.errors import StateError
from datarax.core.module import DataraxModule
from datarax.samplers.base import Sampler


@dataclass(frozen=True)
class EpochAwareSamplerConfig(Config):
    """Args: num_epochs: epochs to run (``None`` = forever)."""

    num_epochs: int | None = 1

    def validate(self) -> None:
        require_positive(self, "num_epochs", allow_none=True)


class EpochAwareSampler(DataraxModule):
    """Iterates ``(epoch, record id)`` over ``num_epochs`` epochs of a base sampler.

    Its state is two integers, so it resumes exactly anywhere, including mid-epoch.

    Example:
        >>> from datarax.samplers import SequentialSampler, SequentialSamplerConfig
        >>> base = SequentialSampler(SequentialSamplerConfig(num_records=3))
        >>> s = EpochAwareSampler(EpochAwareSamplerConfig(num_epochs=2), base)
        >>> [r for _, r in s]
        [0, 1, 2, 0, 1, 2]
    """

    config_type = EpochAwareSamplerConfig
    config: EpochAwareSamplerConfig

    def __init__(
        self, config: EpochAwareSamplerConfig, sampler: Sampler, *, name: str | None = None
    ) -> None:
        super().__init__(config, name=name)
        self.sampler = sampler
        self.epoch = 0
        self.position = 0

    def next_indices(self, count: int) -> tuple[int, np.ndarray]:
        """Up to ``count`` record ids from the current epoch, and that epoch.

        Returns an empty array once all epochs are done. Never crosses an epoch
        boundary, so callers see epoch ends explicitly.
        """
        if self._finished():
            return self.epoch, np.empty(0, np.int64)
        stop = min(self.position + count, len(self.sampler))
        ids = self.sampler.indices(self.epoch, self.position, stop)
        epoch = self.epoch
        self.position = stop
        if self.position == len(self.sampler):
            self.epoch, self.position = self.epoch + 1, 0
        return epoch, ids

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # The state advances record by record, so get_state() mid-iteration is exact.
        n = len(self.sampler)
        while not self._finished():
            ids = self.sampler.indices(self.epoch, self.position, min(n, self.position + 4096))
            for record in ids.tolist():
                epoch = self.epoch
                self.position += 1
                if self.position == n:
                    self.epoch, self.position = self.epoch + 1, 0
                yield epoch, record

    def get_state(self) -> dict[str, int]:
        """``{"epoch": e, "position": p}``."""
        return {"epoch": self.epoch, "position": self.position}

    def set_state(self, state: dict[str, int]) -> None:
        """Continue from a state returned by :meth:`get_state`."""
        try:
            epoch, position = int(state["epoch"]), int(state["position"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(
                "malformed sampler state",
                where=self.name,
                expected="{'epoch': int, 'position': int}",
                found=repr(state),
            ) from exc
        if epoch < 0 or not 0 <= position < len(self.sampler):
            raise StateError(
                "sampler state out of range",
                where=self.name,
                expected=f"epoch >= 0 and 0 <= position < {len(self.sampler)}",
                found=f"epoch={epoch}, position={position}",
            )
        self.epoch, self.position = epoch, position

    def _finished(self) -> bool:
        return self.config.num_epochs is not None and self.epoch >= self.config.num_epochs
