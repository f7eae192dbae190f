"""`Gain`: scale waveforms by a gain in decibels, fixed or drawn per record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import require_bool
from datarax.operators.audio.base import (
    AudioOperator,
    AudioOperatorConfig,
    RecordContext,
    compute_dtype,
)
from datarax.operators.magnitude import check_magnitude, draw, is_range, magnitude_of


@dataclass(frozen=True)
class GainConfig(AudioOperatorConfig):
    """Args:
    gain_db: Gain in dB: one number, or a ``(low, high)`` range drawn uniformly
        per record. The waveform is multiplied by ``10 ** (gain_db / 20)``.
    learnable: Make the gain (both ends of a range) an ``nnx.Param``.
    """

    gain_db: float | tuple[float, float] = 0.0
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        check_magnitude(self.gain_db, where="GainConfig.gain_db")
        require_bool(self, "learnable")


class Gain(AudioOperator):
    """Multiplies each record by ``10 ** (gain_db / 20)`` (no clipping).

    Example:
        >>> import jax.numpy as jnp
        >>> op = Gain(GainConfig(gain_db=20.0))
        >>> out, _ = op.apply_batch({"audio": jnp.full((1, 3), 0.01)}, {},
        ...                         jnp.arange(1), jnp.uint32(0), 0)
        >>> [round(v, 6) for v in out["audio"][0].tolist()]
        [0.1, 0.1, 0.1]
    """

    config_type = GainConfig
    config: GainConfig
    differentiable_in = ("input", "gain_db")
    reference = "librosa.db_to_amplitude (x * 10 ** (dB / 20))"

    def __init__(
        self, config: GainConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        span = check_magnitude(config.gain_db, where="GainConfig.gain_db")
        self.gain_db = magnitude_of(span, learnable=config.learnable)

    @classmethod
    def is_stochastic(cls, config: Any) -> bool:
        return is_range(config.gain_db)

    def gains_db(self, context: RecordContext) -> jax.Array:
        """The gain of each record in dB, shape ``(B,)``."""
        count = context.record_ids.shape[0]
        if self.stochastic:
            u = self.uniforms(context.record_ids, context.epoch, context.seed, 1)[:, 0]
        else:
            u = jnp.zeros((count,), jnp.float32)
        return draw(self.gain_db, u)

    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        dtype = compute_dtype(signals.dtype)
        scale = jnp.power(10.0, self.gains_db(context).astype(dtype) / 20.0)
        scale = scale.reshape((-1,) + (1,) * (signals.ndim - 1))
        return (signals.astype(dtype) * scale).astype(signals.dtype)
