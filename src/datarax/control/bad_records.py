"""`BadRecordPolicy`: what the host plane does with a record it cannot read.

A record is *bad* when reading, decoding or a host operator raises for it, or when
it does not match the source's fields, shapes and dtypes. With ``"raise"`` (the
default) the first bad record stops iteration with an error naming it. With
``"skip"`` the record keeps its place in the batch but is marked invalid: its row
repeats the first good record of its batch and ``batch.valid`` is ``False`` there,
so shapes never change (no recompilation), the stream stays a pure function of the
pipeline and position, and the number of workers changes nothing. Skipped record ids
are logged, counted in ``iterator.metrics()`` and kept in the iterator state.

Example:
    >>> BadRecordPolicy("skip", max_skipped=10).limit(1000)
    10
    >>> BadRecordPolicy("skip", max_fraction=0.01).limit(1000)
    10
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from datarax.core.config import Config, check_int, require_number
from datarax.core.errors import ConfigError


@dataclass(frozen=True)
class BadRecordPolicy(Config):
    """Raise at the first bad record, or skip bad records within a budget per epoch.

    Args:
        on_error: ``"raise"`` or ``"skip"``.
        max_skipped: With ``"skip"``: most records skipped in one epoch (``None``: no
            count limit).
        max_fraction: With ``"skip"``: most records skipped in one epoch, as a
            fraction of the epoch's records (``None``: no fraction limit). When both
            are given the smaller limit applies; when neither, any number may be
            skipped.
    """

    on_error: Literal["raise", "skip"] = "raise"
    max_skipped: int | None = None
    max_fraction: float | None = None

    def validate(self) -> None:
        if self.on_error not in ("raise", "skip"):
            raise ConfigError(
                "unknown policy",
                where="BadRecordPolicy.on_error",
                expected="'raise' or 'skip'",
                found=repr(self.on_error),
            )
        max_skipped = check_int(
            self.max_skipped,
            where="BadRecordPolicy.max_skipped",
            minimum=0,
            allow_none=True,
            message="invalid budget",
        )
        object.__setattr__(self, "max_skipped", max_skipped)
        require_number(self, "max_fraction", minimum=0.0, maximum=1.0, allow_none=True)
        if self.on_error == "raise" and (
            self.max_skipped is not None or self.max_fraction is not None
        ):
            raise ConfigError(
                "a budget needs the skip policy",
                where="BadRecordPolicy",
                expected="on_error='skip' with max_skipped or max_fraction",
                found="on_error='raise'",
            )

    @property
    def skips(self) -> bool:
        """Whether bad records are skipped."""
        return self.on_error == "skip"

    def limit(self, records_per_epoch: int) -> int | None:
        """Most records that may be skipped in an epoch of ``records_per_epoch``."""
        limits = []
        if self.max_skipped is not None:
            limits.append(self.max_skipped)
        if self.max_fraction is not None:
            # The fraction as written (0.29 of 100 is 29; in binary floating point, 28.99...).
            fraction = Fraction(repr(float(self.max_fraction)))
            limits.append(math.floor(fraction * records_per_epoch))
        return min(limits) if limits else None


def as_policy(value: BadRecordPolicy | str) -> BadRecordPolicy:
    """``value`` as a policy (``"raise"`` and ``"skip"`` are accepted)."""
    if isinstance(value, BadRecordPolicy):
        return value
    if value in ("raise", "skip"):
        return BadRecordPolicy(on_error=value)  # type: ignore[arg-type]
    raise ConfigError(
        "unknown bad-record policy",
        where="from_source(bad_records=...)",
        expected="'raise', 'skip' or a BadRecordPolicy",
        found=repr(value),
    )
