"""Compare two runs: which (scenario, system) pairs got slower beyond a noise threshold.

A pair regresses when the new median is below the old median by more than ``threshold``
(a fraction: 0.10 = 10 %), or when it ran in the old run and failed in the new one.
Pairs skipped in either run, or present in only one, are listed but never regress.
The goals of the new run's training scenarios (:mod:`datarax.benchmarking.goals`) are
listed after the table; a goal not met is reported, not counted as a regression.

Example:
    >>> old = {"results": [{"scenario": "W1", "framework": "datarax", "status": "ok",
    ...                     "elements_per_s": {"median": 100.0, "min": 90.0, "max": 110.0}}]}
    >>> new = {"results": [{"scenario": "W1", "framework": "datarax", "status": "ok",
    ...                     "elements_per_s": {"median": 80.0, "min": 75.0, "max": 85.0}}]}
    >>> [(c.scenario, c.framework, c.verdict) for c in compare(old, new, 0.10)]
    [('W1', 'datarax', 'regression')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from datarax.benchmarking.goals import GoalCheck, format_goals
from datarax.benchmarking.results import format_rate
from datarax.core.errors import ConfigError


@dataclass(frozen=True)
class Change:
    """One pair's comparison: medians (``None`` when it did not run) and the verdict."""

    scenario: str
    framework: str
    old: float | None
    new: float | None
    verdict: str  # "ok", "faster", "regression", "failed", "not compared"

    @property
    def regressed(self) -> bool:
        """Whether this pair fails the guard."""
        return self.verdict in ("regression", "failed")

    @property
    def change(self) -> float | None:
        """New median over old median, minus one (``None`` if one is missing)."""
        if self.old is None or self.new is None or self.old == 0:
            return None
        return self.new / self.old - 1.0


def check_threshold(threshold: Any, where: str = "compare(threshold=...)") -> float:
    """``threshold`` when it is a finite fraction in ``[0, 1)`` (NaN would pass everything)."""
    valid = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    if not (valid and math.isfinite(threshold) and 0.0 <= threshold < 1.0):
        raise ConfigError(
            "invalid noise threshold",
            where=where,
            expected="a fraction in [0, 1)",
            found=repr(threshold),
        )
    return float(threshold)


def compare(old: dict[str, Any], new: dict[str, Any], threshold: float = 0.10) -> list[Change]:
    """Every pair of ``old`` and ``new`` with its verdict, in the old run's order."""
    check_threshold(threshold)
    old_rows = _by_key(old)
    new_rows = _by_key(new)
    keys = list(old_rows) + [k for k in new_rows if k not in old_rows]
    return [_change(k, old_rows.get(k), new_rows.get(k), threshold) for k in keys]


def format_changes(
    changes: list[Change], threshold: float, goals: list[GoalCheck] | None = None
) -> str:
    """The comparison as a Markdown table, the new run's ``goals`` checked (see
    :func:`~datarax.benchmarking.goals.check_goals`), then one line saying what regressed."""
    lines = [
        "| scenario | system | old median | new median | change | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in changes:
        old = format_rate(c.old) if c.old is not None else "-"
        new = format_rate(c.new) if c.new is not None else "-"
        change = f"{c.change:+.1%}" if c.change is not None else "-"
        lines.append(f"| {c.scenario} | {c.framework} | {old} | {new} | {change} | {c.verdict} |")
    if goals:
        lines += ["", "Goals of the new run:", *format_goals(goals)]
    bad = [c for c in changes if c.regressed]
    lines.append("")
    if bad:
        names = ", ".join(f"{c.scenario}/{c.framework}" for c in bad)
        lines.append(f"{len(bad)} regression(s) beyond {threshold:.0%}: {names}")
    else:
        lines.append(f"no regression beyond {threshold:.0%}")
    return "\n".join(lines)


def _by_key(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["scenario"], r["framework"]): r for r in results["results"]}


def _median(row: dict[str, Any] | None) -> float | None:
    if row is None or row["status"] != "ok":
        return None
    return float(row["elements_per_s"]["median"])


def _change(
    key: tuple[str, str], old: dict[str, Any] | None, new: dict[str, Any] | None, threshold: float
) -> Change:
    old_rate, new_rate = _median(old), _median(new)
    if old_rate is not None and new is not None and new["status"] == "failed":
        verdict = "failed"
    elif old_rate is None or new_rate is None:
        verdict = "not compared"
    elif new_rate < old_rate * (1.0 - threshold):
        verdict = "regression"
    elif new_rate > old_rate * (1.0 + threshold):
        verdict = "faster"
    else:
        verdict = "ok"
    return Change(key[0], key[1], old_rate, new_rate, verdict)
