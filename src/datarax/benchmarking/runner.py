"""Run one (scenario, system) pair in a process of its own, and all pairs of a run.

In the child: the scenario's host arrays are generated, the system builds its pipeline,
one cold pass gives the time to the first materialised batch (compilation included),
then ``repetitions`` timed passes give elements per second (median, min, max), with the
process tree's peak RSS and its CPU utilisation over the timed passes. A training
scenario times the system's training loop instead (steps per second, wait ratio, time to
first step: see :mod:`datarax.benchmarking.training`).

Example:
    >>> import numpy as np
    >>> timing = time_passes(lambda: iter([{"x": np.zeros(4)}] * 3), repetitions=2)
    >>> timing["elements_per_pass"], len(timing["rates"])
    (12, 2)
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from datarax.benchmarking.adapters import SYSTEMS, BuildContext, MakePass, System
from datarax.benchmarking.machine import platform_env
from datarax.benchmarking.monitor import ResourceMonitor
from datarax.benchmarking.profiles import Profile
from datarax.benchmarking.scenarios import SCENARIOS, Scenario, stats_for

#: Characters of a failed child's error output kept in the results.
_REASON_CHARS = 400
#: Lines a child's error output may end with that do not say what went wrong.
_NOT_THE_ERROR = ("For simplicity, JAX has removed its internal frames",)
#: Imported before the clock starts in a training scenario, whatever the system.
_TRAINING_MODULES = ("flax", "optax", "datarax.benchmarking.training")


def sized(scenario: Scenario, profile: Profile) -> Scenario:
    """``scenario`` with the records and epochs of ``profile``."""
    return dataclasses.replace(
        scenario,
        records=profile.records_for(scenario),
        epochs_per_pass=profile.epochs_for(scenario),
    )


def materialise(batch: Mapping[str, Any] | Iterable[Any]) -> int:
    """Make every array of ``batch`` concrete; returns its number of records.

    JAX arrays are waited for (``block_until_ready``); PyTorch and TensorFlow tensors are
    converted to NumPy; anything else goes through ``numpy.asarray``.
    """
    values = list(batch.values()) if isinstance(batch, Mapping) else list(batch)
    count = 0
    for i, value in enumerate(values):
        if hasattr(value, "block_until_ready"):
            value.block_until_ready()
        elif hasattr(value, "numpy"):
            value = value.numpy()
        else:
            value = np.asarray(value)
        if i == 0:
            count = len(value)
    return count


def time_passes(
    make_pass: MakePass,
    repetitions: int,
    *,
    start: float | None = None,
    monitor: ResourceMonitor | None = None,
) -> dict[str, Any]:
    """One cold pass, then ``repetitions`` timed passes of ``make_pass``.

    Args:
        make_pass: Returns an iterator over one pass's batches.
        repetitions: Timed passes after the cold one.
        start: ``time.perf_counter()`` when the pipeline's construction began (default:
            now); the time to first batch counts from it.
        monitor: Measures the CPU time of the timed passes when given.

    Returns:
        ``rates`` (elements/s per timed pass), ``elements_per_pass``, ``ttfb_s`` and,
        with a monitor, ``cpu_percent`` (100 = one core busy all the time).
    """
    start = time.perf_counter() if start is None else start
    ttfb = None
    for batch in make_pass():
        materialise(batch)
        if ttfb is None:
            ttfb = time.perf_counter() - start
    rates, count = [], 0
    cpu_start = monitor.cpu_seconds() if monitor else 0.0
    timed_start = time.perf_counter()
    for _ in range(repetitions):
        count, t = 0, time.perf_counter()
        for batch in make_pass():
            count += materialise(batch)
        rates.append(count / (time.perf_counter() - t))
    out: dict[str, Any] = {"rates": rates, "elements_per_pass": count, "ttfb_s": ttfb}
    if monitor is not None:
        wall = time.perf_counter() - timed_start
        out["cpu_percent"] = 100.0 * (monitor.cpu_seconds() - cpu_start) / wall if wall else 0.0
    return out


def measure(scenario: Scenario, system: System, repetitions: int) -> dict[str, Any]:
    """Run ``system`` on ``scenario`` in this process and return its figures."""
    training = scenario.family == "training"
    needs = (*system.requires, *(_TRAINING_MODULES if training else ()))
    for module in needs:  # importing the framework is not part of its first batch
        importlib.import_module(module)
    with ResourceMonitor() as monitor, tempfile.TemporaryDirectory(prefix="datarax-bench-") as d:
        data = scenario.make_data(scenario.records)
        context = BuildContext(data, stats_for(scenario, data), Path(d), dict(system.options))
        start = time.perf_counter()
        if training:
            from datarax.benchmarking.training import time_training

            loop = system.build_training(scenario, context)
            figures = time_training(loop, scenario, repetitions, start=start, monitor=monitor)
        else:
            make_pass = system.build(scenario, context)
            figures = _rates(time_passes(make_pass, repetitions, start=start, monitor=monitor))
    return {**figures, "peak_rss_mib": monitor.peak_rss_mib()}


def _rates(timing: dict[str, Any]) -> dict[str, Any]:
    rates = timing.pop("rates")
    return {
        "elements_per_s": {
            "median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
        },
        **timing,
    }


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One (scenario, system) pair of a run, with the profile's sizes."""

    scenario: str
    system: str
    records: int
    epochs: int
    repetitions: int


def run_child(spec: RunSpec, platform: str, timeout_s: float) -> dict[str, Any]:
    """Run ``spec`` in a fresh Python process; a result row with its ``status``."""
    cmd = [
        sys.executable,
        "-m",
        "datarax.benchmarking.runner",
        json.dumps(dataclasses.asdict(spec)),
    ]
    env = {**os.environ, **platform_env(platform)}
    row: dict[str, Any] = {"scenario": spec.scenario, "framework": spec.system}
    wall = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return {**row, "status": "failed", "reason": f"timed out after {timeout_s:.0f} s"}
    row["wall_s"] = time.perf_counter() - wall
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {**row, "status": "failed", "reason": _error_summary(proc.stderr)}
    return {**row, "status": "ok", "reason": None, **json.loads(lines[-1])}


def run_pairs(
    specs: list[RunSpec],
    platform: str,
    timeout_s: float,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every spec (skipping those a system cannot run here) and return their rows."""
    rows = []
    for spec in specs:
        system, scenario = SYSTEMS[spec.system], SCENARIOS[spec.scenario]
        reason = system.missing(scenario) or system.unsupported(scenario, platform)
        if reason is not None:
            row = {
                "scenario": spec.scenario,
                "framework": spec.system,
                "status": "skipped",
                "reason": reason,
            }
        else:
            row = run_child(spec, platform, timeout_s)
        rows.append(row)
        if on_done is not None:
            on_done(row)
    return rows


def _error_summary(stderr: str) -> str:
    lines = [
        line
        for line in stderr.strip().splitlines()
        if line.strip() and not line.startswith(_NOT_THE_ERROR) and set(line.strip()) != {"-"}
    ]
    if not lines:
        return "the process exited without a result"
    return lines[-1][-_REASON_CHARS:]


def _child_main(spec_json: str) -> int:
    spec = RunSpec(**json.loads(spec_json))
    scenario = dataclasses.replace(
        SCENARIOS[spec.scenario], records=spec.records, epochs_per_pass=spec.epochs
    )
    result = measure(scenario, SYSTEMS[spec.system], spec.repetitions)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
