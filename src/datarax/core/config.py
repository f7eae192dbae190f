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
from dataclasses import dataclass
from typing import Any

from datarax.core.errors import ConfigError


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


def require_int(config: Config, field: str) -> None:
    """Check that ``config.field`` is an int (``bool`` is refused)."""
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"{field} must be an int",
            where=f"{type(config).__name__}.{field}",
            expected="an int",
            found=repr(value),
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


def require_positive(config: Config, field: str, *, allow_none: bool = False) -> None:
    """Check that ``config.field`` is a positive int (or ``None`` when allowed)."""
    value = getattr(config, field)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            "must be a positive integer",
            where=f"{type(config).__name__}.{field}",
            expected="an int > 0" + (" or None" if allow_none else ""),
            found=repr(value),
        )
