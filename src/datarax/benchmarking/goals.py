"""The goals of the training scenarios, checked on one run's results.

A goal compares two figures measured in the same run: a datarax system's steps per
second with the best peer's (the fastest of Grain, tf.data and PyTorch that ran) or
with datarax's per-batch loop, its time to first step with the best peer's, or its
wait ratio with a bound. A goal whose figures are missing (a system skipped or
failed) is reported as *not measured*, never as met.

Example:
    >>> def row(system, steps, first=1.0, wait=0.0):
    ...     return {"scenario": "T256", "framework": system, "status": "ok",
    ...             "steps_per_s": {"median": steps}, "first_step_s": first,
    ...             "wait_ratio": {"median": wait}}
    >>> results = {"results": [row("datarax", 900.0), row("datarax-fused", 1200.0),
    ...                        row("torch", 1000.0), row("grain", 400.0)]}
    >>> [(c.goal.system, c.verdict) for c in check_goals(results) if c.goal.scenario == "T256"]
    [('datarax', 'NOT met'), ('datarax-fused', 'met')]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from datarax.benchmarking.adapters import SYSTEMS

#: What a goal compares: steps per second (at least), time to first step (at most)
#: against another system's, or the wait ratio (below a bound).
Measure = Literal["steps", "first_step", "wait"]
#: The peers a "best peer" is chosen from (with their variants, such as ``torch-2w``).
PEER_FRAMEWORKS = ("grain", "tfdata", "torch")
BEST_PEER = "best peer"


@dataclass(frozen=True)
class Goal:
    """One goal: ``system``'s ``measure`` on ``scenario`` against ``against`` (a system,
    or :data:`BEST_PEER`), as a ratio of at least (steps) or at most (first step)
    ``bound``, or below ``bound`` (wait ratio)."""

    scenario: str
    system: str
    measure: Measure
    bound: float
    against: str = BEST_PEER

    def describe(self) -> str:
        """The goal in words (``T16 datarax-fused steps/s >= 1.8x best peer``)."""
        if self.measure == "steps":
            return f"{self.scenario} {self.system} steps/s >= {self.bound:g}x {self.against}"
        if self.measure == "first_step":
            return (
                f"{self.scenario} {self.system} time to first step <= {self.bound:g}x "
                f"{self.against}'s"
            )
        return f"{self.scenario} {self.system} wait ratio < {self.bound:.0%}"


#: The goals of the training scenarios.
GOALS: tuple[Goal, ...] = (
    Goal("T16", "datarax-fused", "steps", 1.8),
    Goal("T16", "datarax-fused", "steps", 1.5, against="datarax"),
    Goal("T16", "datarax-fused", "first_step", 1.5),
    Goal("T256", "datarax", "steps", 1.0),
    Goal("T256", "datarax-fused", "steps", 1.0),
    Goal("TCNN", "datarax", "steps", 1.0),
    Goal("TCNN", "datarax", "wait", 0.05),
)


@dataclass(frozen=True)
class GoalCheck:
    """A goal's outcome: the measured ``value`` (a ratio, or the wait ratio), the
    system it was compared with, and ``verdict``: ``met``, ``NOT met`` or
    ``not measured``."""

    goal: Goal
    value: float | None
    compared_with: str | None
    verdict: str

    def describe(self) -> str:
        """One line: the goal, what was measured, the verdict."""
        if self.value is None:
            return f"{self.goal.describe()}: {self.verdict}"
        if self.goal.measure == "wait":
            measured = f"{self.value:.1%}"
        else:
            measured = f"{self.value:.2f}x {self.compared_with}"
        return f"{self.goal.describe()}: {measured}, {self.verdict}"


def check_goals(results: dict[str, Any], goals: tuple[Goal, ...] = GOALS) -> list[GoalCheck]:
    """Each goal whose scenario is in ``results`` (or, without a ``scenarios`` entry,
    which has a row there), checked on the run's figures."""
    rows = {(r["scenario"], r["framework"]): r for r in results["results"] if r["status"] == "ok"}
    present = set(results.get("scenarios") or {r["scenario"] for r in results["results"]})
    return [_check(goal, rows) for goal in goals if goal.scenario in present]


def format_goals(checks: list[GoalCheck]) -> list[str]:
    """Markdown list items, one per goal check."""
    return [f"- {check.describe()}" for check in checks]


def best_peer(rows: dict[tuple[str, str], dict[str, Any]], scenario: str) -> str | None:
    """The peer with the most steps per second on ``scenario`` (``None``: none ran)."""
    peers = [
        name
        for (s, name), row in rows.items()
        if s == scenario
        and name in SYSTEMS
        and SYSTEMS[name].framework in PEER_FRAMEWORKS
        and "steps_per_s" in row
    ]
    if not peers:
        return None
    return max(peers, key=lambda name: rows[(scenario, name)]["steps_per_s"]["median"])


def _check(goal: Goal, rows: dict[tuple[str, str], dict[str, Any]]) -> GoalCheck:
    ours = rows.get((goal.scenario, goal.system))
    if ours is None or "steps_per_s" not in ours:
        return GoalCheck(goal, None, None, "not measured")
    if goal.measure == "wait":
        value = float(ours["wait_ratio"]["median"])
        return GoalCheck(goal, value, None, "met" if value < goal.bound else "NOT met")
    other = best_peer(rows, goal.scenario) if goal.against == BEST_PEER else goal.against
    theirs = rows.get((goal.scenario, other)) if other is not None else None
    if theirs is None or "steps_per_s" not in theirs:
        return GoalCheck(goal, None, None, "not measured")
    if goal.measure == "steps":
        value = ours["steps_per_s"]["median"] / theirs["steps_per_s"]["median"]
        met = value >= goal.bound
    else:
        value = ours["first_step_s"] / theirs["first_step_s"]
        met = value <= goal.bound
    return GoalCheck(goal, value, other, "met" if met else "NOT met")
