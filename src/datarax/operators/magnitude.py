"""Magnitudes of operators: a fixed value or a per-record range, optionally learnable.

An operator's strength (a brightness factor, an angle, a noise level) is given in
its config either as one number, applied to every record, or as a pair
``(low, high)``, drawn uniformly per record from the record's own key. With
``learnable=True`` the value (or both ends of the range) is an ``nnx.Param`` of the
operator, so a loss differentiates through it:
``low + u * (high - low)`` is differentiable in ``low`` and ``high``.

Example:
    >>> import jax.numpy as jnp
    >>> span = check_magnitude((0.5, 1.5), where="BrightnessConfig.factor")
    >>> span
    (0.5, 1.5)
    >>> m = magnitude_of(span, learnable=False)
    >>> draw(m, jnp.array([0.0, 0.5, 1.0])).tolist()
    [0.5, 1.0, 1.5]
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.errors import ConfigError

Span = tuple[float, float]
Magnitude = Span | nnx.Param


def check_magnitude(
    value: Any,
    *,
    where: str,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Span:
    """``value`` (a number or a ``(low, high)`` pair) as a ``(low, high)`` span.

    A single number ``v`` is the span ``(v, v)``. Raises :class:`ConfigError` naming
    ``where`` for anything else, for ``low > high`` and for values outside
    ``[minimum, maximum]``.
    """
    if _is_number(value):
        span = (float(value), float(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_number, value)):
        span = (float(value[0]), float(value[1]))
    else:
        raise ConfigError(
            "must be a number or a (low, high) pair",
            where=where,
            expected="e.g. 0.5 or (0.5, 1.5)",
            found=repr(value),
        )
    low, high = span
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(
            "must be a finite range with low <= high",
            where=where,
            expected="finite numbers, low <= high",
            found=repr(value),
        )
    lo_ok = minimum is None or low >= minimum
    hi_ok = maximum is None or high <= maximum
    if not (lo_ok and hi_ok):
        lowest = "-inf" if minimum is None else minimum
        highest = "inf" if maximum is None else maximum
        raise ConfigError(
            "out of range",
            where=where,
            expected=f"values in [{lowest}, {highest}]",
            found=repr(value),
        )
    return span


def is_range(value: Any) -> bool:
    """Whether a config value is a genuine ``(low, high)`` range (``low < high``)."""
    return isinstance(value, (tuple, list)) and len(value) == 2 and value[0] != value[1]


def magnitude_of(span: Span, *, learnable: bool) -> Magnitude:
    """The operator attribute for ``span``: an ``nnx.Param`` of ``[low, high]`` when
    ``learnable``, else the span itself (a constant of the compiled function)."""
    if learnable:
        return nnx.Param(jnp.asarray(span, jnp.float32))
    return (float(span[0]), float(span[1]))


def bounds(magnitude: Magnitude) -> tuple[jax.Array | float, jax.Array | float]:
    """``(low, high)`` of a magnitude, as traced values when it is a parameter."""
    if isinstance(magnitude, nnx.Param):
        value = magnitude[...]
        return value[0], value[1]
    return magnitude


def draw(magnitude: Magnitude, u: jax.Array) -> jax.Array:
    """One value per record: ``low + u * (high - low)`` for uniforms ``u`` in [0, 1).

    A fixed magnitude (``low == high``) gives ``low`` for every record, whatever
    ``u`` is; gradients reach both ends of a learnable range.
    """
    low, high = bounds(magnitude)
    return (low + u.astype(jnp.float32) * (high - low)).astype(jnp.float32)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, jax.Array))
