"""A whole run: choose the (scenario, system) pairs, run each, and gather one results document.

Example:
    >>> [s.name for s in select_systems(PROFILES["ci_cpu"], ["torch"])]
    ['torch']
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import time
from collections.abc import Callable, Sequence
from typing import Any

from datarax.benchmarking.adapters import SYSTEMS, System
from datarax.benchmarking.errors import BenchmarkError
from datarax.benchmarking.machine import machine_info
from datarax.benchmarking.profiles import PROFILES, Profile
from datarax.benchmarking.results import SCHEMA
from datarax.benchmarking.runner import RunSpec, run_pairs, sized
from datarax.benchmarking.scenarios import SCENARIOS

#: Version of the benchmark tool (bumped when results stop being comparable).
TOOL_VERSION = "1.0"


def select_systems(profile: Profile, frameworks: Sequence[str] | None) -> list[System]:
    """The systems of ``profile`` for ``frameworks`` (names of frameworks or of systems).

    Naming a framework that is not installed raises
    :class:`~datarax.benchmarking.errors.MissingFrameworkError`; with no names, every
    system of the profile is kept (those not installed are reported as skipped).
    """
    if not frameworks:
        return [SYSTEMS[name] for name in profile.systems]
    chosen: list[System] = []
    for name in frameworks:
        matches = [SYSTEMS[s] for s in profile.systems if name in (s, SYSTEMS[s].framework)] or (
            [SYSTEMS[name]] if name in SYSTEMS else []
        )
        if not matches:
            raise BenchmarkError(
                "unknown framework",
                where="datarax-bench --frameworks",
                expected="one of " + ", ".join(sorted({s.framework for s in SYSTEMS.values()})),
                found=repr(name),
            )
        for system in matches:
            system.require()
            if system not in chosen:
                chosen.append(system)
    return chosen


def select_scenarios(names: Sequence[str] | None) -> list[str]:
    """Scenario names in table order (all of them by default)."""
    if not names:
        return list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise BenchmarkError(
            "unknown scenario",
            where="datarax-bench --scenarios",
            expected="some of " + ", ".join(SCENARIOS),
            found=", ".join(unknown),
        )
    return [n for n in SCENARIOS if n in names]


def plan(
    profile: Profile, systems: list[System], scenarios: list[str], repetitions: int
) -> list[RunSpec]:
    """One spec per (scenario, system) pair that has a row, scenario by scenario."""
    specs = []
    for name in scenarios:
        scenario = sized(SCENARIOS[name], profile)
        for system in systems:
            if system.runs(scenario):
                specs.append(
                    RunSpec(
                        name, system.name, scenario.records, scenario.epochs_per_pass, repetitions
                    )
                )
    return specs


def run_suite(
    profile_name: str,
    *,
    platform: str = "cpu",
    repetitions: int = 5,
    frameworks: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every pair of the selection and return the results document.

    Args:
        profile_name: ``"ci_cpu"``, ``"full"`` (or ``"smoke"``).
        platform: ``"cpu"`` or ``"gpu"``: where the children's JAX runs.
        repetitions: Timed passes per pair, after one cold pass.
        frameworks: Frameworks or systems to run (default: the profile's).
        scenarios: Scenarios to run (default: all).
        on_start: Called with the number of pairs before the first runs.
        on_done: Called with each pair's result row as it finishes.
    """
    if profile_name not in PROFILES:
        listed = [p.name for p in PROFILES.values() if p.listed]
        raise BenchmarkError(
            "unknown profile",
            where="datarax-bench --profile",
            expected=" or ".join(listed),
            found=repr(profile_name),
        )
    if repetitions < 1:
        raise BenchmarkError(
            "too few repetitions",
            where="datarax-bench --repetitions",
            expected="at least 1",
            found=repetitions,
        )
    profile = PROFILES[profile_name]
    systems = select_systems(profile, frameworks)
    names = select_scenarios(scenarios)
    machine = machine_info(platform)
    specs = plan(profile, systems, names, repetitions)
    if on_start is not None:
        on_start(len(specs))
    start = time.perf_counter()
    rows = run_pairs(specs, platform, profile.timeout_s, on_done)
    return {
        "schema": SCHEMA,
        "tool_version": TOOL_VERSION,
        "datarax_version": _version("datarax"),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "profile": profile.name,
        "platform": platform,
        "repetitions": repetitions,
        "wall_s": time.perf_counter() - start,
        "machine": machine,
        "frameworks": _frameworks(systems),
        "systems": [s.name for s in systems],
        "scenarios": {name: _describe(sized(SCENARIOS[name], profile)) for name in names},
        "results": rows,
    }


def _frameworks(systems: list[System]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for system in systems:
        if system.framework in out:
            continue
        versions = {k: v for k, v in system.versions().items() if v is not None}
        reason = system.missing()
        out[system.framework] = {
            "version": next(iter(versions.values()), None),
            "distributions": versions,
            "available": reason is None,
            "reason": reason,
        }
    return out


def _describe(scenario: Any) -> dict[str, Any]:
    out = {
        "title": scenario.title,
        "records": scenario.records,
        "batch_size": scenario.batch_size,
        "epochs_per_pass": scenario.epochs_per_pass,
        "shuffle": scenario.shuffle,
        "elements_per_pass": scenario.records * scenario.epochs_per_pass,
    }
    if scenario.family == "training":  # loader scenarios keep their description as it was
        steps = scenario.steps_per_epoch * scenario.epochs_per_pass
        out.update(
            family="training",
            model=scenario.model,
            workload=scenario.work,
            steps_per_pass=steps,
            elements_per_pass=steps * scenario.batch_size,
        )
    return out


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
