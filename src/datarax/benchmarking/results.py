"""The results of a run: one JSON document, and its Markdown tables.

Example:
    >>> format_rate(1_480_000), format_rate(56_200), format_rate(980)
    ('1.48 M', '56.2 K', '980')
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from datarax.benchmarking.adapters import SYSTEMS
from datarax.benchmarking.errors import ResultsFileError

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
        if row["status"] == "ok":
            rate = row.get("elements_per_s")
            if not isinstance(rate, dict) or not all(
                isinstance(rate.get(k), (int, float))
                and not isinstance(rate.get(k), bool)
                and math.isfinite(rate[k])
                and rate[k] >= 0
                for k in ("median", "min", "max")
            ):
                raise ResultsFileError(
                    "missing throughput figures",
                    where=place,
                    expected='"elements_per_s": {"median", "min", "max"} finite numbers >= 0',
                    found=repr(rate),
                )


def format_rate(rate: float) -> str:
    """Elements per second, short: ``1.48 M``, ``56.2 K``, ``980``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if rate >= scale:
            value = rate / scale
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f} {suffix}"
    return f"{rate:.0f}"


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
    """The run as Markdown: what was measured where, throughput table, details, notes."""
    systems = _systems_in(results)
    rows = {(r["scenario"], r["framework"]): r for r in results["results"]}
    rel = ratios(results)
    lines = [_summary(results), ""]
    header = ["scenario", *systems, "datarax / best peer", "datarax / best reference"]
    lines += [_row(header), _row(["---"] * len(header))]
    for scenario in results["scenarios"]:
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
    lines += _details(results)
    notes = [r for r in results["results"] if r["status"] != "ok"]
    if notes:
        lines += ["", "Not measured:", ""]
        lines += [
            f"- {r['scenario']} / {r['framework']}: {r['status']}, {r['reason']}" for r in notes
        ]
    return "\n".join(lines) + "\n"


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


def _details(results: dict[str, Any]) -> list[str]:
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
        if r["status"] != "ok":
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


def _systems_in(results: dict[str, Any]) -> list[str]:
    present = {r["framework"] for r in results["results"]}
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
