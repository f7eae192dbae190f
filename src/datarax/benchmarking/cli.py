"""The ``datarax-bench`` command: ``run``, ``compare`` and ``report``.

``run`` measures every (scenario, system) pair of a profile, each in its own process, and
writes ``results.json``, ``results.md``, ``throughput.png`` and ``ratio.png``. ``compare``
exits 1 when a pair got slower than a threshold allows (2 when a file cannot be read).
``report`` regenerates the Markdown, the charts and a docs page from a results file.

Example:
    >>> main(["compare", "missing-old.json", "missing-new.json"])  # doctest: +SKIP
    2
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datarax.benchmarking.charts import ratio_chart, throughput_chart
from datarax.benchmarking.compare import check_threshold, compare, format_changes
from datarax.benchmarking.docs import update_docs
from datarax.benchmarking.goals import check_goals
from datarax.benchmarking.machine import PLATFORMS
from datarax.benchmarking.profiles import PROFILES
from datarax.benchmarking.results import load_results, markdown, write_json
from datarax.benchmarking.scenarios import SCENARIOS
from datarax.benchmarking.suite import run_suite
from datarax.core.errors import DataraxError
from datarax.core.progress import ProgressBar

#: Exit statuses.
OK, REGRESSED, ERROR = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and usage errors
        return exc.code if isinstance(exc.code, int) else (OK if exc.code is None else ERROR)
    if args.command is None:
        parser.print_help()
        return OK
    try:
        return int(args.handler(args))
    except DataraxError as error:
        print(f"datarax-bench: error: {error}", file=sys.stderr)
        return ERROR
    except KeyboardInterrupt:
        print("\ndatarax-bench: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="datarax-bench",
        description="Compare datarax with NumPy/JAX references and peer data loaders.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listed = [p.name for p in PROFILES.values() if p.listed]

    run = commands.add_parser(
        "run",
        help="measure the scenarios on every selected framework",
        description="Each (scenario, system) pair runs in its own process: one cold pass "
        "(time to first batch), then the timed passes.",
    )
    run.add_argument(
        "--platform",
        default="cpu",
        choices=list(PLATFORMS),
        help="where JAX runs in the measuring processes (default: cpu)",
    )
    run.add_argument(
        "--profile",
        default="ci_cpu",
        metavar="{" + ",".join(listed) + "}",
        help="sizes: ci_cpu (under 10 minutes on 2 cores) or full "
        "(BENCHMARKS.md sizes); default: ci_cpu",
    )
    run.add_argument(
        "--repetitions", type=int, default=5, help="timed passes per pair (default: 5)"
    )
    run.add_argument(
        "--frameworks",
        nargs="+",
        metavar="NAME",
        help="frameworks or systems to run: numpy, jax, datarax, grain, torch, "
        "tfdata, hf, or a system such as torch-2w (default: all of the profile)",
    )
    run.add_argument(
        "--scenarios",
        nargs="+",
        metavar="NAME",
        help="scenarios to run: " + ", ".join(SCENARIOS) + " (default: all)",
    )
    run.add_argument(
        "--output", type=Path, help="directory for the results (default: benchmark-results/<time>/)"
    )
    run.add_argument(
        "--docs",
        type=Path,
        metavar="PAGE",
        help="also write the table into this Markdown page, between its markers",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)

    cmp = commands.add_parser(
        "compare",
        help="flag pairs that got slower (exit 1 on a regression)",
        description="Exit status 0: no regression; 1: a pair's new median is below its "
        "old median by more than the threshold, or it failed; 2: a file cannot be read.",
    )
    cmp.add_argument("old", type=Path, help="results.json of the reference run")
    cmp.add_argument("new", type=Path, help="results.json of the run to check")
    cmp.add_argument(
        "--threshold",
        type=_fraction,
        default=0.10,
        help="tolerated slow-down as a fraction (default: 0.10)",
    )
    cmp.set_defaults(handler=_compare)

    report = commands.add_parser(
        "report", help="regenerate the Markdown, the charts or a docs page from a results file"
    )
    report.add_argument("results", type=Path, help="a results.json")
    report.add_argument(
        "--docs",
        type=Path,
        metavar="PAGE",
        help="write the table into this Markdown page, between its markers",
    )
    report.add_argument(
        "--output", type=Path, help="also write results.md and the charts into this directory"
    )
    report.set_defaults(handler=_report)
    return parser


def _run(args: argparse.Namespace) -> int:
    output = args.output or Path("benchmark-results") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    bar: ProgressBar | None = None

    def on_start(total: int) -> None:
        nonlocal bar
        bar = ProgressBar(total, desc="datarax-bench", unit="runs", enabled=not args.no_progress)

    def on_done(row: dict[str, Any]) -> None:
        assert bar is not None
        bar.desc = f"datarax-bench {row['scenario']}/{row['framework']} {row['status']}"
        bar.update(1)

    try:
        results = run_suite(
            args.profile,
            platform=args.platform,
            repetitions=args.repetitions,
            frameworks=args.frameworks,
            scenarios=args.scenarios,
            on_start=on_start,
            on_done=on_done,
        )
    finally:
        if bar is not None:
            bar.close()
    paths = write_outputs(results, output)
    if args.docs:
        paths.append(update_docs(args.docs, markdown(results)))
    print(markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    failed = [r for r in results["results"] if r["status"] == "failed"]
    return REGRESSED if failed else OK


def write_outputs(results: dict[str, Any], directory: Path) -> list[Path]:
    """Write ``results.json``, ``results.md``, ``throughput.png`` and ``ratio.png``."""
    directory.mkdir(parents=True, exist_ok=True)
    table = directory / "results.md"
    table.write_text(markdown(results))
    return [
        write_json(results, directory / "results.json"),
        table,
        throughput_chart(results, directory / "throughput.png"),
        ratio_chart(results, directory / "ratio.png"),
    ]


def _fraction(text: str) -> float:
    """A ``--threshold``: a finite fraction in ``[0, 1)`` (``nan`` would pass everything)."""
    try:
        return check_threshold(float(text), "--threshold")
    except (ValueError, DataraxError) as exc:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), found {text!r}") from exc


def _compare(args: argparse.Namespace) -> int:
    old, new = load_results(args.old), load_results(args.new)
    changes = compare(old, new, args.threshold)
    print(format_changes(changes, args.threshold, check_goals(new)))
    return REGRESSED if any(c.regressed for c in changes) else OK


def _report(args: argparse.Namespace) -> int:
    results = load_results(args.results)
    paths = []
    if args.output:
        paths += write_outputs(results, args.output)
    if args.docs:
        paths.append(update_docs(args.docs, markdown(results)))
    if not paths:
        print(markdown(results))
    else:
        print("wrote " + ", ".join(str(p) for p in paths))
    return OK


if __name__ == "__main__":
    sys.exit(main())
