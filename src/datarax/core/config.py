"""Frozen, self-validating configuration dataclasses.

Every component is built as ``Thing(ThingConfig(...), ...)``. A config is a frozen
dataclass: once built it never changes, and it validates itself in
``__post_init__`` so a bad value fails where it is written, not deep in a run.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class ResizeConfig(Config):
    ...     size: int = 32
    ...     def validate(self) -> None:
    ...         require_positive(self, "size")
    >>> ResizeConfig(size=0)
    Traceback (most recent call last):
    ...
    datarax.core.errors.ConfigError: ResizeConfig.size: must be a positive integer; \
expected an int > 0, found 0
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np

from datarax.core.errors import ConfigError, DataraxError


@dataclass(frozen=True)
class Config:
    """Base of all configs: frozen, validated on construction, JSON-describable."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` when a field holds an invalid value."""

    def to_dict(self) -> dict[str, Any]:
        """The config's fields as a plain dict (used for fingerprints and display)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@overload
def check_int(
    value: Any,
    *,
    where: str,
    minimum: int | None = None,
    allow_none: Literal[False] = False,
    error: type[DataraxError] = ConfigError,
    message: str | None = None,
) -> int: ...


@overload
def check_int(
    value: Any,
    *,
    where: str,
    minimum: int | None = None,
    allow_none: bool,
    error: type[DataraxError] = ConfigError,
    message: str | None = None,
) -> int | None: ...


def check_int(
    value: Any,
    *,
    where: str,
    minimum: int | None = None,
    allow_none: bool = False,
    error: type[DataraxError] = ConfigError,
    message: str | None = None,
) -> int | None:
    """Return ``value`` when it is an int ``>= minimum`` (``bool`` is refused), else raise.

    The one integer check of the library: configs, nodes and options all use it, so
    every bad count reads the same. NumPy integers are accepted and returned as
    ``int``.

    Args:
        value: What the user passed.
        where: The config field or argument, as shown in the error.
        minimum: The smallest value allowed (``None``: any int).
        allow_none: Accept ``None`` (returned as is).
        error: The :class:`DataraxError` subclass raised.
        message: The error's first words (default: what the value must be).

    Example:
        >>> check_int(3, where="Thing.size", minimum=1)
        3
        >>> check_int(0, where="Thing.size", minimum=1)
        Traceback (most recent call last):
        ...
        datarax.core.errors.ConfigError: Thing.size: must be a positive integer; \
expected an int > 0, found 0
    """
    if value is None and allow_none:
        return None
    if isinstance(value, np.integer):
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (minimum is not None and value < minimum)
    ):
        wanted = {None: "an int", 1: "an int > 0"}.get(minimum, f"an int >= {minimum}")
        default = {None: "must be an int", 0: "must be a non-negative integer"}
        raise error(
            message or default.get(minimum, "must be a positive integer"),
            where=where,
            expected=wanted + (" or None" if allow_none else ""),
            found=repr(value),
        )
    return value


def require_int(config: Config, field: str, *, minimum: int | None = None) -> None:
    """Check that ``config.field`` is an int (``bool`` is refused), ``>= minimum`` if given."""
    value = check_int(
        getattr(config, field),
        where=f"{type(config).__name__}.{field}",
        minimum=minimum,
        message=f"{field} must be an int" if minimum is None else None,
    )
    object.__setattr__(config, field, value)


#: Seeds are 64-bit: every int in ``[0, SEED_LIMIT)`` gives its own stream.
SEED_LIMIT = 2**64


def check_seed(value: Any, *, where: str, error: type[DataraxError] = ConfigError) -> int:
    """A seed: an int in ``[0, 2**64)`` (NumPy ints accepted), else a clear error.

    Seeds are hashed as 64-bit integers, so a larger or negative int would silently
    give the stream of another seed; floats and strings are refused rather than
    truncated or parsed.

    Example:
        >>> check_seed(7, where="from_source(seed=...)")
        7
        >>> check_seed(2**64, where="from_source(seed=...)")
        Traceback (most recent call last):
        ...
        datarax.core.errors.ConfigError: from_source(seed=...): seed out of range; \
expected an int in [0, 2**64), found 18446744073709551616
    """
    seed = check_int(value, where=where, error=error, message="seed must be an int")
    if not 0 <= seed < SEED_LIMIT:
        raise error(
            "seed out of range", where=where, expected="an int in [0, 2**64)", found=repr(seed)
        )
    return seed


def require_seed(config: Config, field: str = "seed") -> None:
    """Check that ``config.field`` is a seed (see :func:`check_seed`)."""
    seed = check_seed(getattr(config, field), where=f"{type(config).__name__}.{field}")
    object.__setattr__(config, field, seed)


def check_bool(value: Any, *, where: str, error: type[DataraxError] = ConfigError) -> bool:
    """``value`` when it is a bool (NumPy bools accepted): ``"False"`` is not one."""
    if isinstance(value, np.bool_):
        value = bool(value)
    if not isinstance(value, bool):
        raise error("must be a bool", where=where, expected="True or False", found=repr(value))
    return value


def require_bool(config: Config, field: str) -> None:
    """Check that ``config.field`` is a bool (see :func:`check_bool`)."""
    value = check_bool(getattr(config, field), where=f"{type(config).__name__}.{field}")
    object.__setattr__(config, field, value)


def check_choice(value: Any, choices: tuple[Any, ...], *, where: str, what: str = "option") -> Any:
    """``value`` when it is one of ``choices``, else a :class:`ConfigError` ("unknown <what>").

    Example:
        >>> check_choice("hann", ("hann", "hamming"), where="STFTConfig.window")
        'hann'
    """
    if isinstance(value, bool) or value not in choices:
        raise ConfigError(
            f"unknown {what}",
            where=where,
            expected=" or ".join(repr(c) for c in choices),
            found=repr(value),
        )
    return value


def require_choice(config: Config, field: str, choices: tuple[Any, ...]) -> None:
    """Check that ``config.field`` is one of ``choices`` ("unknown <field>" otherwise)."""
    check_choice(
        getattr(config, field),
        choices,
        where=f"{type(config).__name__}.{field}",
        what=field.replace("_", " "),
    )


def require_names(config: Config, field: str) -> None:
    """Check that ``config.field`` is ``None`` or distinct non-empty names; store them as a tuple.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class PickConfig(Config):
        ...     columns: tuple[str, ...] | None = None
        ...     def validate(self) -> None:
        ...         require_names(self, "columns")
        >>> PickConfig(columns=["image", "label"]).columns
        ('image', 'label')
    """
    names = getattr(config, field)
    if names is None:
        return
    if (
        isinstance(names, (str, bytes))
        or not isinstance(names, (tuple, list))
        or not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise ConfigError(
            "must be distinct names",
            where=f"{type(config).__name__}.{field}",
            expected="a non-empty tuple or list of distinct str, or None",
            found=repr(names),
        )
    object.__setattr__(config, field, tuple(names))  # hashable, whatever was passed


def check_number(
    value: Any,
    *,
    where: str,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    allow_none: bool = False,
    error: type[DataraxError] = ConfigError,
) -> float | None:
    """``value`` as a float when it is a finite real number in ``[minimum, maximum]``.

    NumPy numbers are accepted; ``bool``, NaN and infinities are refused.
    ``positive=True`` also refuses 0 and below.

    Example:
        >>> check_number(0.5, where="RandomFlipConfig.probability", minimum=0, maximum=1)
        0.5
        >>> check_number(None, where="RandomFlipConfig.probability", minimum=0, maximum=1)
        Traceback (most recent call last):
        ...
        datarax.core.errors.ConfigError: RandomFlipConfig.probability: must be a number; \
expected a finite number in [0, 1], found None
    """
    if value is None and allow_none:
        return None
    high = "inf" if maximum is None else f"{maximum:g}"
    if positive and (minimum is None or minimum <= 0):
        expected = "a finite number > 0" if maximum is None else f"a finite number in (0, {high}]"
    elif minimum is None and maximum is None:
        expected = "a finite number"
    else:
        low = "-inf" if minimum is None else f"{minimum:g}"
        expected = f"a finite number in [{low}, {high}]"
    expected += " or None" if allow_none else ""
    real = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if not real or not math.isfinite(float(value)):
        raise error("must be a number", where=where, expected=expected, found=repr(value))
    number = float(value)
    low_out = (minimum is not None and number < minimum) or (positive and number <= 0)
    if low_out or (maximum is not None and number > maximum):
        raise error("out of range", where=where, expected=expected, found=repr(value))
    return number


def require_number(
    config: Config,
    field: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    allow_none: bool = False,
) -> None:
    """Check that ``config.field`` is a number (see :func:`check_number`)."""
    check_number(
        getattr(config, field),
        where=f"{type(config).__name__}.{field}",
        minimum=minimum,
        maximum=maximum,
        positive=positive,
        allow_none=allow_none,
    )


def require_positive(config: Config, field: str, *, allow_none: bool = False) -> None:
    """Check that ``config.field`` is a positive int (or ``None`` when allowed)."""
    value = check_int(
        getattr(config, field),
        where=f"{type(config).__name__}.{field}",
        minimum=1,
        allow_none=allow_none,
    )
    object.__setattr__(config, field, value)
