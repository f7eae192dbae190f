"""`CausalLMShift`: next-token targets for causal language modelling, padding and segment aware.

The inputs stay as they are; ``targets[t]`` is the token at ``t + 1``, the token the
model must predict after reading up to ``t``. Where there is no next token of the
same sequence the target is ``ignore_index`` (-100) and the weight 0: the last
position, positions at or past a record's length, and (with packed rows) the last
token of every segment, whose next token starts another sequence, as well as the
padding (segment id 0). Shapes do not change (``(length,)`` per record).

Example:
    >>> import jax.numpy as jnp
    >>> shift = CausalLMShift(CausalLMShiftConfig(segment_field="segment_ids"))
    >>> data = {"tokens": jnp.array([[5, 6, 7, 8, 0]]),
    ...         "segment_ids": jnp.array([[1, 1, 2, 2, 0]])}
    >>> out, _ = shift.apply_batch(data, {}, jnp.zeros(1, jnp.int32), jnp.uint32(0), 0)
    >>> out["targets"].tolist(), out["target_weights"].tolist()
    ([[6, -100, 8, -100, -100]], [[1.0, 0.0, 1.0, 0.0, 0.0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from datarax.core.config import Config
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.base import Fields, Operator
from datarax.operators.text.fields import (
    per_record_lengths,
    require_field_name,
    require_token_id,
    token_rows,
)


@dataclass(frozen=True)
class CausalLMShiftConfig(Config):
    """Args:
    field: The token field (integers, ``(length,)`` per record), left as it is.
    targets_field: Where the next-token targets go (``int32``).
    weights_field: Where the loss weights go (``float32``, 1 where the target is
        real); ``None`` writes none.
    segment_field: Optional segment ids (packed rows): a target never crosses into
        another segment, and segment 0 is padding.
    length_field: Optional per-record length: positions from ``length - 1`` on have
        no target.
    ignore_index: The target where there is none.
    """

    field: str = "tokens"
    targets_field: str = "targets"
    weights_field: str | None = "target_weights"
    segment_field: str | None = None
    length_field: str | None = None
    ignore_index: int = -100

    def validate(self) -> None:
        for name in ("field", "targets_field"):
            require_field_name(self, name)
        for name in ("weights_field", "segment_field", "length_field"):
            require_field_name(self, name, allow_none=True)
        require_token_id(self, "ignore_index")
        outputs = [self.field, self.targets_field, self.weights_field]
        if len(set(outputs)) != 3:
            raise ConfigError(
                "fields must have distinct names",
                where="CausalLMShiftConfig",
                expected="distinct field, targets_field and weights_field",
                found=repr(outputs),
            )


class CausalLMShift(Operator):
    """Adds next-token targets (and loss weights) to a batch of token sequences."""

    differentiable_in: tuple[str, ...] = ()
    reference = "next-token shift (NumPy loop over tokens and segments)"
    config_type = CausalLMShiftConfig
    config: CausalLMShiftConfig

    def __init__(self, config: CausalLMShiftConfig, *, name: str | None = None) -> None:
        self.require_config(config)
        super().__init__(config, stochastic=False, stream_name=None, rngs=None, name=name)

    @classmethod
    def is_stochastic(cls, config: CausalLMShiftConfig) -> bool:
        """Never: the shift is deterministic."""
        return False

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        config = self.config
        tokens = token_rows(data, config.field, self.name).astype(jnp.int32)
        batch, length = tokens.shape
        following = jnp.concatenate([tokens[:, 1:], jnp.zeros((batch, 1), jnp.int32)], axis=1)
        has_next = jnp.broadcast_to(jnp.arange(length) < length - 1, (batch, length))
        if config.segment_field is not None:
            segments = token_rows(data, config.segment_field, self.name)
            if segments.shape != tokens.shape:
                raise SchemaError(
                    "segment ids must match the tokens",
                    where=f"{self.name}, field '{config.segment_field}'",
                    expected=f"shape {tuple(tokens.shape[1:])} per record",
                    found=f"shape {tuple(segments.shape[1:])}",
                )
            next_segments = jnp.concatenate([segments[:, 1:], segments[:, :1] * 0], axis=1)
            has_next &= (segments == next_segments) & (segments != 0)
        if config.length_field is not None:
            lengths = per_record_lengths(data, config.length_field, self.name)
            has_next &= jnp.arange(length) < lengths[:, None] - 1
        targets = jnp.where(has_next, following, jnp.int32(config.ignore_index))
        out = {**data, config.targets_field: targets}
        if config.weights_field is not None:
            out[config.weights_field] = has_next.astype(jnp.float32)
        return out, states
