"""`MaskedLM`: BERT's masked-language-model corruption, per record on the device.

Each token is selected with ``probability`` (15%); a selected token is replaced by
``mask_id`` (80% of them), by a random token (10%) or kept (10%), and its label is
the original id; every other label is ``ignore_index`` (-100, what
``optax``/PyTorch cross-entropy losses skip). Special tokens (padding, [CLS], [SEP],
[MASK]) and positions past a record's length are never selected.

The draws come from the record's key (pipeline seed, stream, epoch, record id):
``3 * length`` uniforms per record, ``u = uniforms(...).reshape(batch, 3, length)``:
``u[:, 0]`` selects (``u < probability``), ``u[:, 1]`` chooses what happens
(``< mask_fraction``: mask; ``< mask_fraction + random_fraction``: random; else keep)
and ``u[:, 2]`` draws the random token, ``floor(u * vocab_size)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import Config, require_positive
from datarax.core.errors import ConfigError
from datarax.operators.base import Fields, Operator
from datarax.operators.text.fields import (
    per_record_lengths,
    require_field_name,
    require_token_id,
    token_rows,
)


@dataclass(frozen=True)
class MaskedLMConfig(Config):
    """Args:
    vocab_size: Random replacements are drawn from ``[0, vocab_size)``.
    mask_id: The ``[MASK]`` token.
    special_ids: Tokens never selected (padding, ``[CLS]``, ``[SEP]``, ...);
        ``mask_id`` is never selected either.
    probability: Chance that a token is selected.
    mask_fraction, random_fraction: Of the selected tokens, the share replaced by
        ``mask_id`` and by a random token (the rest are kept).
    field: The token field (integers, ``(length,)`` per record), overwritten.
    labels_field: Where the labels go (``int32``, the shape of the tokens).
    length_field: Optional per-record length: positions at or past it are never
        selected.
    ignore_index: The label of tokens not selected.
    stream_name: Random stream (default ``"MaskedLM"``).
    """

    vocab_size: int = 30522
    mask_id: int = 103
    special_ids: tuple[int, ...] = (0,)
    probability: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1
    field: str = "tokens"
    labels_field: str = "labels"
    length_field: str | None = None
    ignore_index: int = -100
    stream_name: str | None = None

    def validate(self) -> None:
        require_positive(self, "vocab_size")
        require_token_id(self, "mask_id")
        require_token_id(self, "ignore_index")
        ids = self.special_ids
        if not isinstance(ids, (tuple, list)) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise ConfigError(
                "must be token ids",
                where="MaskedLMConfig.special_ids",
                expected="a tuple of ints",
                found=repr(ids),
            )
        object.__setattr__(self, "special_ids", tuple(ids))
        for name in ("probability", "mask_fraction", "random_fraction"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (0.0 <= value <= 1.0)
            ):
                raise ConfigError(
                    "must be a probability",
                    where=f"MaskedLMConfig.{name}",
                    expected="a number in [0, 1]",
                    found=repr(value),
                )
        if self.mask_fraction + self.random_fraction > 1.0:
            raise ConfigError(
                "fractions add up to more than 1",
                where="MaskedLMConfig",
                expected="mask_fraction + random_fraction <= 1",
                found=f"{self.mask_fraction} + {self.random_fraction}",
            )
        require_field_name(self, "field")
        require_field_name(self, "labels_field")
        require_field_name(self, "length_field", allow_none=True)
        if self.labels_field == self.field:
            raise ConfigError(
                "labels would overwrite the tokens",
                where="MaskedLMConfig.labels_field",
                expected=f"another name than field '{self.field}'",
                found=repr(self.labels_field),
            )


class MaskedLM(Operator):
    """BERT-style masking of a token field, with labels for the masked-LM loss.

    Example:
        >>> from flax import nnx
        >>> mlm = MaskedLM(MaskedLMConfig(vocab_size=1000, mask_id=4, special_ids=(0, 1, 2)),
        ...                rngs=nnx.Rngs(0))
    """

    differentiable_in: tuple[str, ...] = ()
    reference = "BERT masking (Devlin et al., 2019), recomputed in NumPy from the same uniforms"
    config_type = MaskedLMConfig
    config: MaskedLMConfig

    def __init__(
        self, config: MaskedLMConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        self.require_config(config)
        super().__init__(
            config,
            stochastic=self.is_stochastic(config),
            stream_name=config.stream_name or "MaskedLM",
            rngs=rngs,
            name=name,
        )

    @classmethod
    def is_stochastic(cls, config: MaskedLMConfig) -> bool:
        """Stochastic unless nothing is ever selected (``probability == 0``)."""
        return config.probability > 0

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        config = self.config
        tokens = token_rows(data, config.field, self.name)
        maskable = self.maskable(data, tokens)
        if not self.stochastic:
            labels = jnp.full(tokens.shape, config.ignore_index, jnp.int32)
            return {**data, config.labels_field: labels}, states
        batch, length = tokens.shape
        u = self.uniforms(record_ids, epoch, seed, 3 * length).reshape(batch, 3, length)
        masked, labels = mask_tokens(tokens, maskable, u, config)
        return {**data, config.field: masked, config.labels_field: labels}, states

    def maskable(self, data: Fields, tokens: jax.Array) -> jax.Array:
        """Which tokens may be selected: not special, before the record's length."""
        config = self.config
        special = jnp.asarray((*config.special_ids, config.mask_id), tokens.dtype)
        ok = ~jnp.isin(tokens, special)
        if config.length_field is not None:
            lengths = per_record_lengths(data, config.length_field, self.name)
            ok &= jnp.arange(tokens.shape[1]) < lengths[:, None]
        return ok


def mask_tokens(
    tokens: jax.Array, maskable: jax.Array, u: jax.Array, config: MaskedLMConfig
) -> tuple[jax.Array, jax.Array]:
    """Masked tokens and labels from uniforms ``u`` of shape ``(batch, 3, length)``."""
    selected = maskable & (u[:, 0] < config.probability)
    action = u[:, 1]
    random_ids = jnp.minimum(
        jnp.floor(u[:, 2] * jnp.float32(config.vocab_size)), config.vocab_size - 1
    ).astype(tokens.dtype)
    replace_mask = selected & (action < config.mask_fraction)
    replace_random = (
        selected & ~replace_mask & (action < config.mask_fraction + config.random_fraction)
    )
    masked = jnp.where(replace_mask, jnp.asarray(config.mask_id, tokens.dtype), tokens)
    masked = jnp.where(replace_random, random_ids, masked)
    labels = jnp.where(selected, tokens.astype(jnp.int32), jnp.int32(config.ignore_index))
    return masked, labels
