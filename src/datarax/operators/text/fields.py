"""Checks shared by the text operators: field names in configs, token fields in batches."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from datarax.core.config import Config
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.base import field_of


def require_field_name(config: Config, field: str, *, allow_none: bool = False) -> None:
    """Check that ``config.field`` is a non-empty string (or ``None`` when allowed)."""
    value = getattr(config, field)
    if value is None and allow_none:
        return
    if not isinstance(value, str) or not value:
        raise ConfigError(
            "must be a field name",
            where=f"{type(config).__name__}.{field}",
            expected="a non-empty string" + (" or None" if allow_none else ""),
            found=repr(value),
        )


def require_token_id(config: Config, field: str) -> None:
    """Check that ``config.field`` is an int that fits in ``int32``."""
    value = getattr(config, field)
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise ConfigError(
            "must be a token id",
            where=f"{type(config).__name__}.{field}",
            expected="an int in the int32 range",
            found=repr(value),
        )
    object.__setattr__(config, field, value)


def token_rows(data: dict[str, Any], field: str, where: str) -> jax.Array:
    """A batch of token sequences ``(batch, length)`` of integers, checked."""
    tokens = field_of(data, field, where)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise SchemaError(
            "tokens must be a 1-D integer sequence per record",
            where=f"{where}, field '{field}'",
            expected="an integer array of shape (length,) per record",
            found=f"{tokens.dtype}{tuple(tokens.shape[1:])}",
        )
    return tokens


def per_record_lengths(data: dict[str, Any], field: str, where: str) -> jax.Array:
    """A batch of sequence lengths (one integer scalar per record), checked."""
    lengths = field_of(data, field, where)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise SchemaError(
            "lengths must be one integer per record",
            where=f"{where}, field '{field}'",
            expected="an integer scalar per record",
            found=f"{lengths.dtype}{tuple(lengths.shape[1:])}",
        )
    return lengths
