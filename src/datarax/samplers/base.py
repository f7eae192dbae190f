"""`Sampler`: decides which record sits at each position of each epoch.

A sampler is stateless: ``indices(epoch, start, stop)`` returns the record ids at
positions ``[start, stop)`` of ``epoch`` as one vectorised computation, so the
stream is a pure function of (config, epoch, position) and resuming needs no
replay.
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.errors import ConfigError
from datarax.core.module import DataraxModule


class Sampler(DataraxModule, abc.ABC):
    """Base class: ``len(sampler)`` records per epoch, addressed by position."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of positions in one epoch."""

    @property
    def lookahead(self) -> int:
        """Positions from any position that hold the lowest record id still to come.

        Streams are read in order: before reading from a position, a streaming
        source starts at the lowest id among the next ``lookahead`` positions.
        Orders that only permute records within windows keep this small; others
        return their length.
        """
        return len(self)

    @property
    def records_addressed(self) -> int | None:
        """The record ids this sampler gives lie in ``[0, records_addressed)``.

        ``None`` when the sampler cannot say; a pipeline then checks the ids it
        computes instead of checking the sampler against the source when it is built.
        """
        return None

    @abc.abstractmethod
    def indices(self, epoch: int, start: int, stop: int) -> np.ndarray:
        """Record ids (``int64``) at positions ``[start, stop)`` of ``epoch``."""

    def indices_jax(self, epoch: int, positions: jax.Array) -> jax.Array:
        """Record ids at ``positions`` of ``epoch`` with ``jax.numpy`` (``int32``)."""
        return jnp.asarray(self.indices(epoch, 0, len(self)), jnp.int32)[positions]

    def epoch_order(self, epoch: int) -> np.ndarray:
        """All record ids of ``epoch`` in order."""
        return self.indices(epoch, 0, len(self))

    def fingerprint(self) -> dict:
        """What determines this sampler's stream (compared when restoring state)."""
        return {"type": type(self).__name__, **self.config.to_dict()}

    def _check_range(self, epoch: int, start: int, stop: int) -> None:
        if epoch < 0 or not 0 <= start <= stop <= len(self):
            raise ConfigError(
                "positions out of range",
                where=self.name,
                expected=f"epoch >= 0 and 0 <= start <= stop <= {len(self)}",
                found=f"epoch={epoch}, start={start}, stop={stop}",
            )
