"""The results of a run: one JSON document, and its Markdown tables.

Example:
    >>> format_rate(1_480_000), format_rate(56_200), format_rate(980)
    ('1.48 M', '56.2 K', '980')
    >>> format_steps(5_100), format_steps(8.414)
    ('5.10 K', '8.41')
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from datarax.benchmarking.adapters import SYSTEMS
from datarax.benchmarking.errors import ResultsFileError
from datarax.benchmarking.goals import best_peer, check_goals, format_goals

#: Identifies the format of a results file.
SCHEMA = "datarax-bench/1"
#: Statuses a result row may have.
STATUSES = ("ok", "skipped", "failed")


def write_json(results: dict[str, Any], path: str | Path) -> Path:
    """Write ``results`` as indented JSON; returns the path."""
    path = Path(path)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def load_results(path: str | Path) -> dict[str, Any]:
    """Read and check a results file; raises :class:`ResultsFileError` saying what is wrong."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsFileError(
            "cannot read the file",
            where=where,
            expected="a readable results JSON file",
            found=exc.strerror or type(exc).__name__,
        ) from exc
    except UnicodeDecodeError as exc:
        raise ResultsFileError(
            "not a text file",
            where=where,
            expected="a UTF-8 JSON document",
            found=f"byte {exc.object[exc.start : exc.start + 1]!r} at offset {exc.start}",
        ) from exc
    try:
        results = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFileError(
            "not valid JSON",
            where=where,
            expected="a JSON document",
            found=f"{exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from exc
    check_results(results, where)
    return results


def check_results(results: Any, where: str = "results") -> None:
    """Raise :class:`ResultsFileError` unless ``results`` follows the schema."""
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        found = results.get("schema") if isinstance(results, dict) else type(results).__name__
        raise ResultsFileError(
            "not a datarax-bench results file",
            where=where,
            expected=f'an object with "schema": "{SCHEMA}"',
            found=repr(found),
        )
    rows = results.get("results")
    if not isinstance(rows, list):
        raise ResultsFileError(
            "missing the list of results",
            where=where,
            expected='"results": [...]',
            found=type(rows).__name__,
        )
    for i, row in enumerate(rows):
        place = f"{where}, results[{i}]"
        if not isinstance(row, dict):
            raise ResultsFileError(
                "result is not an object",
                where=place,
                expected="an object",
                found=type(row).__name__,
            )
        for key in ("scenario", "framework", "status"):
            if not isinstance(row.get(key), str):
                raise ResultsFileError(
                    f'missing "{key}"', where=place, expected="a string", found=repr(row.get(key))
                )
        if row["status"] not in STATUSES:
            raise ResultsFileError(
                "unknown status",
                where=place,
                expected=" or ".join(STATUSES),
                found=repr(row["status"]),
            )
        if row["status"] != "ok":
            continue
        rate = row.get("elements_per_s")
        if not _spread_ok(rate):
            raise ResultsFileError(
                "missing throughput figures",
                where=place,
                expected='"elements_per_s": {"median", "min", "max"} finite numbers >= 0',
                found=repr(rate),
            )
        if family(results, row["scenario"]) != "training":
            continue
        for key, expected in (
            ("steps_per_s", '{"median", "min", "max"} finite numbers >= 0'),
            ("wait_ratio", '{"median", "min", "max"} numbers in [0, 1]'),
        ):
            value = row.get(key)
            if not _spread_ok(value, 1.0 if key == "wait_ratio" else math.inf):
                raise ResultsFileError(
                    "missing training figures",
                    where=place,
                    expected=f'"{key}": {expected}',
                    found=repr(value),
                )
        if not _number_ok(row.get("first_step_s")):
            raise ResultsFileError(
                "missing training figures",
                where=place,
                expected='"first_step_s": a finite number >= 0',
                found=repr(row.get("first_step_s")),
            )


def format_rate(rate: float) -> str:
    """Elements per second, short: ``1.48 M``, ``56.2 K``, ``980``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if rate >= scale:
            value = rate / scale
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f} {suffix}"
    return f"{rate:.0f}"


def format_steps(rate: float) -> str:
    """Steps per second, short, with 3 significant digits below 100: ``5.10 K``, ``8.41``."""
    return format_rate(rate) if rate >= 100 else f"{rate:.3g}"


def medians(results: dict[str, Any]) -> dict[tuple[str, str], float]:
    """``(scenario, system) -> median elements/s`` of every row that ran."""
    return {
        (r["scenario"], r["framework"]): float(r["elements_per_s"]["median"])
        for r in results["results"]
        if r["status"] == "ok"
    }


def ratios(results: dict[str, Any]) -> dict[str, dict[str, tuple[float, str]]]:
    """Per scenario: datarax's median over the best peer's and the best reference's.

    Returns ``{scenario: {"peer": (ratio, best peer), "reference": (ratio, best ref)}}``
    with an entry only where datarax and that kind of system both ran.
    """
    by_key = medians(results)
    out: dict[str, dict[str, tuple[float, str]]] = {}
    for scenario in results["scenarios"]:
        ours = by_key.get((scenario, "datarax"))
        if ours is None:
            continue
        entry = {}
        for role in ("peer", "reference"):
            rates = {
                name: rate
                for (s, name), rate in by_key.items()
                if s == scenario and name in SYSTEMS and SYSTEMS[name].role == role
            }
            if rates:
                best = max(rates, key=lambda name: rates[name])
                entry[role] = (ours / rates[best], best)
        out[scenario] = entry
    return out


def markdown(results: dict[str, Any]) -> str:
    """The run as Markdown: what was measured where, throughput table, details, notes.

    Loader scenarios get a table of elements per second; training scenarios (T16,
    T256, TCNN) a table of steps per second with their wait ratios, times to first
    step and goals.
    """
    loader = [s for s in results["scenarios"] if family(results, s) == "loader"]
    training = [s for s in results["scenarios"] if family(results, s) == "training"]
    lines = [_summary(results), ""]
    if loader or not training:
        lines += _loader_tables(results, loader)
    if training:
        if loader:
            lines.append("")
        lines += _training_tables(results, training)
    notes = [r for r in results["results"] if r["status"] != "ok"]
    if notes:
        lines += ["", "Not measured:", ""]
        lines += [
            f"- {r['scenario']} / {r['framework']}: {r['status']}, {r['reason']}" for r in notes
        ]
    return "\n".join(lines) + "\n"


def family(results: dict[str, Any], scenario: str) -> str:
    """``"loader"`` or ``"training"``: what ``scenario`` measured in ``results``."""
    scenarios = results.get("scenarios")
    described = scenarios.get(scenario) if isinstance(scenarios, dict) else None
    return str(described.get("family", "loader")) if isinstance(described, dict) else "loader"


def _loader_tables(results: dict[str, Any], scenarios: list[str]) -> list[str]:
    rows = {(r["scenario"], r["framework"]): r for r in results["results"]}
    systems = _systems_in(results, scenarios)
    rel = ratios(results)
    header = ["scenario", *systems, "datarax / best peer", "datarax / best reference"]
    lines = [_row(header), _row(["---"] * len(header))]
    for scenario in scenarios:
        cells = [scenario]
        for system in systems:
            row = rows.get((scenario, system))
            cells.append(_cell(row))
        for role in ("peer", "reference"):
            ratio = rel.get(scenario, {}).get(role)
            cells.append(f"{ratio[0]:.2f}x ({ratio[1]})" if ratio else "-")
        lines.append(_row(cells))
    lines += [
        "",
        "Elements per second, median of the timed passes. "
        "Ratios compare medians measured in this run.",
        "",
    ]
    return lines + _details(results, scenarios)


def _training_tables(results: dict[str, Any], scenarios: list[str]) -> list[str]:
    rows = {(r["scenario"], r["framework"]): r for r in results["results"]}
    ran = {k: r for k, r in rows.items() if r["status"] == "ok" and "steps_per_s" in r}
    systems = _systems_in(results, scenarios)
    ours = [s for s in systems if s in SYSTEMS and SYSTEMS[s].role == "datarax"]
    header = ["scenario", *systems, *(f"{s} / best peer" for s in ours)]
    lines = [_row(header), _row(["---"] * len(header))]
    for scenario in scenarios:
        cells = [scenario]
        for system in systems:
            row = ran.get((scenario, system))
            cells.append(
                format_steps(row["steps_per_s"]["median"])
                if row is not None
                else _cell(rows.get((scenario, system)))
            )
        peer = best_peer(ran, scenario)
        for system in ours:
            if peer is None or (scenario, system) not in ran:
                cells.append("-")
                continue
            ratio = ran[(scenario, system)]["steps_per_s"]["median"]
            ratio /= ran[(scenario, peer)]["steps_per_s"]["median"]
            cells.append(f"{ratio:.2f}x ({peer})")
        lines.append(_row(cells))
    lines += [
        "",
        "Train steps per second, median of the timed passes: the same Flax NNX model and "
        "Optax Adam step, jitted, fed by each system. The wait ratio is the part of a "
        "pass's wall time spent waiting for the loader (inside its `iter()` and "
        "`next()`; for `datarax-fused`, the host work of its `loop.run` calls); the "
        "first step counts from the loader's construction to the first step's loss, "
        "compilation included.",
        "",
    ]
    header = [
        "scenario",
        "system",
        "steps/s",
        "min",
        "max",
        "records/s",
        "wait ratio",
        "first step (s)",
        "peak RSS (MiB)",
        "CPU %",
    ]
    lines += [_row(header), _row(["---"] * len(header))]
    for (scenario, system), r in ran.items():
        if scenario not in scenarios:
            continue
        steps = r["steps_per_s"]
        lines.append(
            _row(
                [
                    scenario,
                    system,
                    format_steps(steps["median"]),
                    format_steps(steps["min"]),
                    format_steps(steps["max"]),
                    format_rate(r["elements_per_s"]["median"]),
                    f"{r['wait_ratio']['median']:.1%}",
                    f"{r['first_step_s']:.3f}",
                    f"{r['peak_rss_mib']:.0f}",
                    f"{r['cpu_percent']:.0f}",
                ]
            )
        )
    checks = check_goals(results)
    if checks:
        lines += [
            "",
            "Goals (ratios of medians in this run; best peer: the fastest of Grain, "
            "tf.data and PyTorch):",
            "",
        ]
        lines += format_goals(checks)
    return lines


def _summary(results: dict[str, Any]) -> str:
    m = results["machine"]
    versions = ", ".join(
        f"{dist} {version}"
        for info in results["frameworks"].values()
        for dist, version in list(info.get("distributions", {}).items())[:1]
    )
    return (
        f"Profile `{results['profile']}`, {results['repetitions']} timed passes after one cold "
        f"pass, on {m['processor']} with {m['cpu_count']} CPUs ({m['platform']}), Python "
        f"{m['python']}, JAX backend `{m['jax_backend']}`. Versions: {versions}. "
        f"Whole run: {results['wall_s']:.0f} s."
    )


def _details(results: dict[str, Any], scenarios: list[str]) -> list[str]:
    header = [
        "scenario",
        "system",
        "median",
        "min",
        "max",
        "first batch (s)",
        "peak RSS (MiB)",
        "CPU %",
    ]
    lines = [_row(header), _row(["---"] * len(header))]
    for r in results["results"]:
        if r["status"] != "ok" or r["scenario"] not in scenarios:
            continue
        rate = r["elements_per_s"]
        lines.append(
            _row(
                [
                    r["scenario"],
                    r["framework"],
                    format_rate(rate["median"]),
                    format_rate(rate["min"]),
                    format_rate(rate["max"]),
                    f"{r['ttfb_s']:.3f}",
                    f"{r['peak_rss_mib']:.0f}",
                    f"{r['cpu_percent']:.0f}",
                ]
            )
        )
    return lines


def _systems_in(results: dict[str, Any], scenarios: list[str]) -> list[str]:
    present = {r["framework"] for r in results["results"] if r["scenario"] in scenarios}
    ordered = [s for s in results.get("systems", []) if s in present]
    return ordered + sorted(present - set(ordered))


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row["status"] == "ok":
        return format_rate(row["elements_per_s"]["median"])
    return row["status"]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _spread_ok(value: Any, most: float = math.inf) -> bool:
    """Whether ``value`` is ``{"median", "min", "max"}`` of numbers in ``[0, most]``."""
    return isinstance(value, dict) and all(
        _number_ok(value.get(k), most) for k in ("median", "min", "max")
    )


def _number_ok(value: Any, most: float = math.inf) -> bool:
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    return valid and math.isfinite(value) and 0 <= value <= most
