"""PNG charts of a run: throughput per scenario, and datarax's ratio to the best peer.

matplotlib is imported when a chart is drawn, with the ``Agg`` backend (no display).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from datarax.benchmarking.adapters import SYSTEMS
from datarax.benchmarking.results import medians, ratios


def throughput_chart(results: dict[str, Any], path: str | Path) -> Path:
    """Grouped bars: one group per scenario, one bar per system, log-scaled elements/s."""
    plt = _pyplot()
    by_key = medians(results)
    scenarios = list(results["scenarios"])
    systems = [s for s in results["systems"] if any((sc, s) in by_key for sc in scenarios)]
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(scenarios) + 3), 5.0))
    cmap = plt.get_cmap("tab10")
    for i, system in enumerate(systems):
        xs, ys = [], []
        for j, scenario in enumerate(scenarios):
            if (scenario, system) in by_key:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(by_key[(scenario, system)])
        label = SYSTEMS[system].label if system in SYSTEMS else system
        ax.bar(
            xs,
            ys,
            width,
            label=label,
            color=cmap(i % 10),
            edgecolor="black" if system == "datarax" else None,
            linewidth=1.2,
        )
    ax.set_yscale("log")
    ax.set_xticks(range(len(scenarios)), scenarios)
    ax.set_ylabel("elements / s (median, log scale)")
    ax.set_title(
        f"Throughput per scenario (profile {results['profile']}, "
        f"{results['machine']['cpu_count']} CPUs, {results['machine']['jax_backend']})"
    )
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(
        fontsize=8,
        ncol=min(len(systems), 5),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08),
        frameon=False,
    )
    return _save(fig, plt, path)


def ratio_chart(results: dict[str, Any], path: str | Path) -> Path:
    """datarax's median over the best peer's (and the best reference's) per scenario."""
    plt = _pyplot()
    rel = ratios(results)
    scenarios = [s for s in results["scenarios"] if s in rel]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.9 * len(scenarios) + 3), 4.5))
    for offset, role, color, label in (
        (-0.2, "peer", "tab:blue", "datarax / best peer framework"),
        (0.2, "reference", "tab:gray", "datarax / best hand-written reference"),
    ):
        xs = [j + offset for j, s in enumerate(scenarios) if role in rel[s]]
        ys = [rel[s][role][0] for s in scenarios if role in rel[s]]
        bars = ax.bar(xs, ys, 0.4, color=color, label=label)
        names = [rel[s][role][1] for s in scenarios if role in rel[s]]
        for bar, value, name in zip(bars, ys, names, strict=True):
            ax.annotate(
                f"{value:.2g}x\n{name}",
                (bar.get_x() + bar.get_width() / 2, value),
                ha="center",
                va="bottom",
                fontsize=6,
            )
    ax.axhline(1.0, color="black", linewidth=1.0, linestyle="--")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_formatter(lambda value, _pos: f"{value:g}x"))
    ax.yaxis.set_minor_formatter(_formatter(_sparse_times))
    ax.set_xticks(range(len(scenarios)), scenarios)
    ax.set_ylabel("ratio of medians (log scale; > 1: datarax faster)")
    ax.set_title(f"datarax relative to the fastest other system (profile {results['profile']})")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    return _save(fig, plt, path)


def _sparse_times(value: float, _pos: Any) -> str:
    """Label minor ticks 2x, 3x, 5x of each decade only, so labels do not overlap."""
    mantissa = round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0
    return f"{value:g}x" if mantissa in (2, 3, 5) else ""


def _formatter(fn: Any) -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(fn)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, plt: Any, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
