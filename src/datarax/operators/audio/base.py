"""`AudioOperator`: a batched operator on one audio field (channels first, time last).

Waveforms are floating arrays of shape ``(T,)`` (mono) or ``(C, T)`` (``C``
channels) per record, so a batch is ``(B, T)`` or ``(B, C, T)``: the layout of
librosa's multichannel arrays, with time on the last axis. Float waveforms are
taken as they are (nominally in ``[-1, 1]``); no operator clips. Spectrograms
are ``(F, N)`` or ``(C, F, N)`` per record (frequency bins, then frames), as
librosa returns them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp

from datarax.core.config import Config
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.base import ConfiguredOperator, Fields, field_of

__all__ = [
    "AudioOperator",
    "AudioOperatorConfig",
    "RecordContext",
    "compute_dtype",
]

InputKind = Literal["waveform", "spectrogram"]


@dataclass(frozen=True)
class AudioOperatorConfig(Config):
    """Args:
    field: The data field read: waveforms ``(T,)`` / ``(C, T)`` per record (or
        spectrograms ``(F, N)`` / ``(C, F, N)`` for operators on spectrograms).
    output_field: The field written; ``None`` writes back to ``field``.
    stream_name: Random stream of a stochastic operator.
    """

    field: str = "audio"
    output_field: str | None = None
    stream_name: str | None = None

    def validate(self) -> None:
        _check_field_name(self.field, where=f"{type(self).__name__}.field")
        if self.output_field is not None:
            _check_field_name(self.output_field, where=f"{type(self).__name__}.output_field")

    @property
    def target(self) -> str:
        """The field the operator writes."""
        return self.field if self.output_field is None else self.output_field


class RecordContext(NamedTuple):
    """What identifies a batch's records to a stochastic operator, and the batch itself."""

    record_ids: jax.Array
    epoch: jax.Array
    seed: int
    data: Fields


class AudioOperator(ConfiguredOperator):
    """Base of audio operators: whole-batch array code on one field, per-record randomness.

    Subclasses implement :meth:`transform` on the whole batch (``(B, T)`` or
    ``(B, C, T)`` for waveforms); stochastic ones draw from :meth:`uniforms` or
    :meth:`keys_for` with the records of the :class:`RecordContext` they get.

    Example:
        >>> import jax.numpy as jnp
        >>> class Negate(AudioOperator):
        ...     config_type = AudioOperatorConfig
        ...     def transform(self, signals, context):
        ...         return -signals
        >>> out, _ = Negate(AudioOperatorConfig()).apply_batch(
        ...     {"audio": jnp.ones((2, 4))}, {}, jnp.arange(2), jnp.uint32(0), 0)
        >>> out["audio"].tolist()
        [[-1.0, -1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0]]
    """

    #: What the operator reads: ``"waveform"`` or ``"spectrogram"``.
    input_kind: ClassVar[InputKind] = "waveform"
    #: Which inputs and magnitudes gradients flow to (see docs/operators.md).
    differentiable_in: ClassVar[tuple[str, ...]] = ("input",)
    #: What the operator is checked against in its tests.
    reference: ClassVar[str] = ""
    config: AudioOperatorConfig

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        signals = self.input_of(data)
        out = self.transform(signals, RecordContext(record_ids, epoch, seed, data))
        return {**data, self.config.target: out}, states

    @abc.abstractmethod
    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        """Transform the batch ``signals`` of this operator's field."""

    def input_of(self, data: Fields) -> jax.Array:
        """This operator's field of ``data``, checked for presence, rank and dtype."""
        return self.field_of(data, self.config.field, self.input_kind)

    def field_of(self, data: Fields, field: str, kind: InputKind) -> jax.Array:
        """``data[field]``, checked to hold a batch of ``kind`` (waveforms or spectrograms)."""
        values = field_of(data, field, self.name, kind)
        ranks, layout = ((2, 3), "(T,) or (C, T)") if kind == "waveform" else ((3, 4), "(F, N)")
        if kind == "spectrogram":
            layout += " or (C, F, N)"
        if values.ndim not in ranks:
            raise SchemaError(
                f"{kind}s must be {layout} per record",
                where=f"{self.name}, field '{field}'",
                expected=f"rank {ranks[0] - 1} or {ranks[1] - 1} per record",
                found=f"shape {tuple(values.shape[1:])}",
            )
        if not jnp.issubdtype(values.dtype, jnp.floating):
            raise SchemaError(
                f"{kind}s must be floating",
                where=f"{self.name}, field '{field}'",
                expected="a floating dtype (cast integer PCM first, e.g. int16 / 32768)",
                found=str(values.dtype),
            )
        return values


def compute_dtype(dtype: Any) -> jnp.dtype:
    """The dtype arithmetic runs in: ``dtype``, but at least ``float32``."""
    return jnp.promote_types(dtype, jnp.float32)


def _check_field_name(value: Any, *, where: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(
            "must be a field name", where=where, expected="a non-empty string", found=repr(value)
        )
