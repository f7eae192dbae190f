"""`TimeShift`: move waveforms in time, circularly or with zero fill."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp

from datarax.core.config import check_choice
from datarax.core.errors import ConfigError
from datarax.operators.audio.base import (
    AudioOperator,
    AudioOperatorConfig,
    RecordContext,
)
from datarax.operators.magnitude import check_magnitude, is_range


@dataclass(frozen=True)
class TimeShiftConfig(AudioOperatorConfig):
    """Args:
    shift: How far to move each record later in time (negative: earlier): one
        value or a ``(low, high)`` range drawn uniformly per record.
    unit: ``"samples"`` (ints; a range draws each int in ``[low, high]`` with
        equal chance) or ``"fraction"`` of the record's length (in ``[-1, 1]``,
        rounded to the nearest sample).
    mode: ``"circular"`` (what leaves one end enters the other, as ``np.roll``)
        or ``"zero"`` (vacated samples are 0).
    """

    shift: float | tuple[float, float] = 0
    unit: Literal["samples", "fraction"] = "samples"
    mode: Literal["circular", "zero"] = "circular"

    def validate(self) -> None:
        super().validate()
        check_choice(self.unit, ("samples", "fraction"), where="TimeShiftConfig.unit")
        check_choice(self.mode, ("circular", "zero"), where="TimeShiftConfig.mode")
        if self.unit == "fraction":
            check_magnitude(self.shift, where="TimeShiftConfig.shift", minimum=-1.0, maximum=1.0)
            return
        check_magnitude(self.shift, where="TimeShiftConfig.shift")
        values = self.shift if isinstance(self.shift, (tuple, list)) else (self.shift,)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ConfigError(
                "shift in samples must be ints",
                where="TimeShiftConfig.shift",
                expected="an int or a (low, high) pair of ints",
                found=repr(self.shift),
            )


class TimeShift(AudioOperator):
    """Shifts each record by a whole number of samples along time (the last axis).

    Output sample ``t`` is input sample ``t - s`` (``s`` the record's shift),
    taken modulo the length in ``"circular"`` mode and 0 outside the record in
    ``"zero"`` mode. Differentiable in the input; the shift is discrete.

    Example:
        >>> import jax.numpy as jnp
        >>> op = TimeShift(TimeShiftConfig(shift=1, mode="zero"))
        >>> out, _ = op.apply_batch({"audio": jnp.array([[1.0, 2.0, 3.0]])}, {},
        ...                         jnp.arange(1), jnp.uint32(0), 0)
        >>> out["audio"].tolist()
        [[0.0, 1.0, 2.0]]
    """

    config_type = TimeShiftConfig
    config: TimeShiftConfig
    differentiable_in = ("input",)
    reference = "numpy.roll (circular) and a zero-filled slice (zero)"

    @classmethod
    def is_stochastic(cls, config: Any) -> bool:
        return is_range(config.shift)

    def shifts(self, length: int, context: RecordContext) -> jax.Array:
        """Each record's shift in samples, ``int32`` of shape ``(B,)``."""
        low, high = check_magnitude(self.config.shift, where="TimeShiftConfig.shift")
        count = context.record_ids.shape[0]
        if self.stochastic:
            u = self.uniforms(context.record_ids, context.epoch, context.seed, 1)[:, 0]
        else:
            u = jnp.zeros((count,), jnp.float32)
        if self.config.unit == "samples":
            drawn = jnp.floor(low + u * (high - low + 1.0))
            return jnp.minimum(drawn, high).astype(jnp.int32)
        return jnp.round((low + u * (high - low)) * length).astype(jnp.int32)

    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        length = signals.shape[-1]
        shift = self.shifts(length, context)
        source = jnp.arange(length, dtype=jnp.int32)[None, :] - shift[:, None]  # (B, T)
        if self.config.mode == "circular":
            index, valid = jnp.mod(source, length), None
        else:
            valid = (source >= 0) & (source < length)
            index = jnp.clip(source, 0, length - 1)
        lead = (1,) * (signals.ndim - 2)
        index = index.reshape(index.shape[:1] + lead + index.shape[1:])
        out = jnp.take_along_axis(signals, jnp.broadcast_to(index, signals.shape), axis=-1)
        if valid is not None:
            valid = valid.reshape(index.shape)
            out = jnp.where(valid, out, jnp.zeros((), signals.dtype))
        return out
