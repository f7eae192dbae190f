"""`MixNoise`: add noise to waveforms at a signal-to-noise ratio in decibels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import require_bool
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.audio.base import (
    AudioOperator,
    AudioOperatorConfig,
    RecordContext,
    compute_dtype,
)
from datarax.operators.magnitude import check_magnitude, draw, is_range, magnitude_of

#: Powers below this count as silence (no division by zero for silent noise).
_TINY_POWER = 1e-20


@dataclass(frozen=True)
class MixNoiseConfig(AudioOperatorConfig):
    """Args:
    snr_db: Signal-to-noise ratio in dB: one number or a ``(low, high)`` range
        drawn uniformly per record.
    noise_field: ``None`` for white Gaussian noise drawn from the record's own
        key, or the name of a field holding one noise clip per record, of the
        same shape as the waveform.
    learnable: Make the SNR (both ends of a range) an ``nnx.Param``.
    """

    snr_db: float | tuple[float, float] = 20.0
    noise_field: str | None = None
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        check_magnitude(self.snr_db, where="MixNoiseConfig.snr_db")
        require_bool(self, "learnable")
        if self.noise_field is not None and (
            not isinstance(self.noise_field, str) or not self.noise_field
        ):
            raise ConfigError(
                "must be a field name or None",
                where="MixNoiseConfig.noise_field",
                expected="a non-empty string or None (white noise)",
                found=repr(self.noise_field),
            )


class MixNoise(AudioOperator):
    """``x + g * n`` with ``g`` chosen so that ``10 log10(P(x) / P(g n)) = snr_db``.

    Powers ``P`` are mean squares over the whole record (all channels and
    samples). A silent record stays silent; silent noise adds nothing.

    Example:
        >>> from flax import nnx
        >>> op = MixNoise(MixNoiseConfig(snr_db=(5.0, 20.0)), rngs=nnx.Rngs(0))
    """

    config_type = MixNoiseConfig
    config: MixNoiseConfig
    differentiable_in = ("input", "snr_db", "noise")
    reference = "NumPy: measured SNR 10 log10(P(x) / P(y - x)) equals snr_db"

    def __init__(
        self, config: MixNoiseConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        span = check_magnitude(config.snr_db, where="MixNoiseConfig.snr_db")
        self.snr_db = magnitude_of(span, learnable=config.learnable)

    @classmethod
    def is_stochastic(cls, config: Any) -> bool:
        return config.noise_field is None or is_range(config.snr_db)

    def noise_of(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        """The unscaled noise of each record, shaped like ``signals``."""
        dtype = compute_dtype(signals.dtype)
        if self.config.noise_field is None:
            keys = self.keys_for(context.record_ids, context.epoch, context.seed)
            shape = signals.shape[1:]
            return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), shape, dtype))(
                keys
            )
        noise = self.field_of(context.data, self.config.noise_field, "waveform")
        if noise.shape != signals.shape:
            raise SchemaError(
                "noise must have the waveform's shape",
                where=f"{self.name}, field '{self.config.noise_field}'",
                expected=f"shape {tuple(signals.shape[1:])} per record",
                found=f"shape {tuple(noise.shape[1:])}",
            )
        return noise.astype(dtype)

    def snrs_db(self, context: RecordContext) -> jax.Array:
        """The SNR of each record in dB, shape ``(B,)``."""
        if is_range(self.config.snr_db):
            keys = self.keys_for(context.record_ids, context.epoch, context.seed)
            u = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 0)))(keys)
        else:
            u = jnp.zeros(context.record_ids.shape, jnp.float32)
        return draw(self.snr_db, u)

    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        dtype = compute_dtype(signals.dtype)
        x = signals.astype(dtype)
        noise = self.noise_of(signals, context)
        axes = tuple(range(1, x.ndim))
        signal_power = jnp.mean(jnp.square(x), axis=axes)
        noise_power = jnp.mean(jnp.square(noise), axis=axes)
        target = signal_power * jnp.power(10.0, -self.snrs_db(context).astype(dtype) / 10.0)
        scale = _safe_sqrt_ratio(target, noise_power)
        mixed = x + noise * scale.reshape((-1,) + (1,) * (x.ndim - 1))
        return mixed.astype(signals.dtype)


def _safe_sqrt_ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``sqrt(numerator / denominator)``, 0 (with finite gradients) where either is ~0."""
    ok = (numerator > _TINY_POWER) & (denominator > _TINY_POWER)
    ratio = jnp.where(ok, numerator, 1.0) / jnp.where(ok, denominator, 1.0)
    return jnp.where(ok, jnp.sqrt(ratio), 0.0)
