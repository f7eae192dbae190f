"""`SpecAugment`: mask random bands of frequency and runs of time frames per record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from datarax.core.config import check_number, require_int
from datarax.operators.audio.base import (
    AudioOperator,
    AudioOperatorConfig,
    RecordContext,
)


@dataclass(frozen=True)
class SpecAugmentConfig(AudioOperatorConfig):
    """Args (defaults: the LibriSpeech "LD" policy of Park et al., 2019):
    freq_masks: Frequency masks per record.
    freq_max_width: Widest frequency mask (bins); each mask's width is drawn
        uniformly from ``0 .. min(freq_max_width, F)``.
    time_masks: Time masks per record.
    time_max_width: Widest time mask (frames), drawn likewise up to ``N``.
    mask_value: The value written into masked cells.
    """

    field: str = "spectrogram"
    freq_masks: int = 2
    freq_max_width: int = 27
    time_masks: int = 2
    time_max_width: int = 100
    mask_value: float = 0.0

    def validate(self) -> None:
        super().validate()
        for name in ("freq_masks", "freq_max_width", "time_masks", "time_max_width"):
            require_int(self, name, minimum=0)
        check_number(self.mask_value, where="SpecAugmentConfig.mask_value")


class SpecAugment(AudioOperator):
    """Frequency and time masking of spectrograms ``(F, N)`` / ``(C, F, N)`` per record.

    Each mask has a width ``w`` drawn uniformly from ``0 .. W`` (``W`` the max
    width, capped at the axis length) and a start drawn uniformly from
    ``0 .. size - w``, all from the record's own key; masks may overlap. One
    record's masks are the same for all its channels. Differentiable in the
    input (gradient 0 in masked cells); mask positions are discrete.

    Example:
        >>> from flax import nnx
        >>> op = SpecAugment(SpecAugmentConfig(freq_max_width=8, time_max_width=10),
        ...                  rngs=nnx.Rngs(0))
    """

    config_type = SpecAugmentConfig
    config: SpecAugmentConfig
    input_kind = "spectrogram"
    differentiable_in = ("input",)
    reference = "NumPy: masked cells are whole bands / frame runs of at most the max widths"

    @classmethod
    def is_stochastic(cls, config: Any) -> bool:
        freq = config.freq_masks > 0 and config.freq_max_width > 0
        time = config.time_masks > 0 and config.time_max_width > 0
        return freq or time

    def masks(self, bins: int, frames: int, context: RecordContext) -> tuple[jax.Array, jax.Array]:
        """Boolean ``(B, F)`` masked bins and ``(B, N)`` masked frames."""
        cfg = self.config
        count = context.record_ids.shape[0]
        if not self.stochastic:
            return jnp.zeros((count, bins), bool), jnp.zeros((count, frames), bool)
        n = cfg.freq_masks + cfg.time_masks
        u = self.uniforms(context.record_ids, context.epoch, context.seed, max(2 * n, 3))
        freq = _bands(u[:, : 2 * cfg.freq_masks], bins, cfg.freq_max_width)
        time = _bands(u[:, 2 * cfg.freq_masks : 2 * n], frames, cfg.time_max_width)
        return freq, time

    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        bins, frames = signals.shape[-2:]
        freq, time = self.masks(bins, frames, context)
        masked = freq[:, :, None] | time[:, None, :]  # (B, F, N)
        masked = masked.reshape(masked.shape[:1] + (1,) * (signals.ndim - 3) + masked.shape[1:])
        return jnp.where(masked, jnp.asarray(self.config.mask_value, signals.dtype), signals)


def _bands(u: jax.Array, size: int, max_width: int) -> jax.Array:
    """Union of ``u.shape[1] // 2`` random bands of ``size`` cells, ``(B, size)`` bool.

    Uniforms ``(width, start)`` per band: width ``floor(u * (W + 1))``, start
    ``floor(u * (size - width + 1))``.
    """
    cells = jnp.arange(size)
    masked = jnp.zeros((u.shape[0], size), bool)
    widest = min(max_width, size)
    for band in range(u.shape[1] // 2):  # a few masks: unrolled over masks, not records
        width = jnp.minimum(jnp.floor(u[:, 2 * band] * (widest + 1)), widest).astype(jnp.int32)
        room = size - width + 1
        start = jnp.minimum(jnp.floor(u[:, 2 * band + 1] * room), room - 1).astype(jnp.int32)
        masked |= (cells[None, :] >= start[:, None]) & (cells[None, :] < (start + width)[:, None])
    return masked
