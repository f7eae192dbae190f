"""Run the benchmark workloads and print throughput, time to first batch and peak RSS.

Each (workload, system) runs in its own process, so peak RSS and compilation caches
belong to that system alone. Ratios compare datarax with each reference measured in
the same run.

Usage::

    python -m benchmarks.run                      # every workload, 5 timed passes each
    python -m benchmarks.run --workloads W1 W2 --repetitions 3
    python -m benchmarks.run --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from benchmarks.systems import DEVICES

REFERENCES = ("numpy", "jax")
GOALS = {  # workload -> (reference workload, reference system, minimum ratio of datarax)
    "W1": ("W1", "numpy", 0.5),
    "W1s": ("W1s", "numpy", 0.5),
    "W2": ("W2", "jax", 1.2),
    "W3": ("W3", "jax", 1.0),
    "D100": ("D1", "datarax", 0.8),  # 100 operators fuse: nearly as fast as one
    "DAG": ("W1", "jax", 1.0),  # the Advanced DAG against the JAX reference's W1
}
#: (workload, system, reference system, minimum ratio) for other systems than datarax.
SYSTEM_GOALS = [
    ("W4", "datarax", "numpy-loop", 1.0),  # padded token lists vs a per-record NumPy loop
    ("AR", "datarax", "datarax-0w", 1.5),  # ArrayRecord + W2: 2 workers vs none
    ("AR", "datarax", "grain", 2.0),  # the same file through Grain's ArrayRecord source
    ("W2", "datarax-sharded", "datarax", 0.8),  # 8 devices vs a one-device process
    ("W2", "datarax-sharded", "datarax-8dev", 0.8),  # the same, both with 8 devices
]
DEFAULT_WORKLOADS = ["W1", "W1s", "W2", "W3", "D1", "D10", "D100", "DAG"]
TTFB_GOAL = 1.5  # datarax's time to first batch at most this times the JAX reference's


def measure(workload_name: str, system: str, repetitions: int) -> dict:
    """Cold pass (time to first batch), then ``repetitions`` timed passes."""
    import jax
    import numpy as np

    from benchmarks.systems import SYSTEMS
    from benchmarks.workloads import WORKLOADS, stats_for
    from datarax.benchmarking.runner import time_passes

    w = WORKLOADS[workload_name]
    data = w.make_data()
    stats = stats_for(w, data)
    start = time.perf_counter()
    timing = time_passes(SYSTEMS[system](w, data, stats), repetitions, start=start)
    rates, count, ttfb = timing["rates"], timing["elements_per_pass"], timing["ttfb_s"]
    return {
        "workload": workload_name,
        "system": system,
        "elements_per_s": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "ttfb_s": ttfb,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "elements_per_pass": count,
        "np_version": np.__version__,
        "jax_version": jax.__version__,
    }


def shuffle_throughput(repetitions: int = 5) -> dict:
    """Indices per second of the vectorised Feistel shuffle, whole epoch and in chunks."""
    from datarax.samplers import ShuffleSampler, ShuffleSamplerConfig

    n = 1_000_000
    sampler = ShuffleSampler(ShuffleSamplerConfig(num_records=n, seed=0))
    out = {}
    for label, chunk in (("epoch_1M", n), ("chunk_16k", 16_384)):
        rates = []
        for e in range(repetitions):
            t = time.perf_counter()
            for start in range(0, n, chunk):
                sampler.indices(e, start, min(n, start + chunk))
            rates.append(n / (time.perf_counter() - t))
        out[label] = statistics.median(rates)
    return out


def _run_child(workload: str, system: str, repetitions: int) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--child",
        workload,
        system,
        "--repetitions",
        str(repetitions),
    ]
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    devices = DEVICES.get(system)
    if devices:
        flag = f"--xla_force_host_platform_device_count={devices}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{workload}/{system} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="+", default=DEFAULT_WORKLOADS)
    parser.add_argument("--systems", nargs="+", default=["numpy", "jax", "datarax"])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--json", help="also write all figures to this file")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "SYSTEM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(measure(*args.child, args.repetitions)))
        return 0

    results = []
    for workload in args.workloads:
        for system in args.systems:
            r = _run_child(workload, system, args.repetitions)
            results.append(r)
            print(
                f"{workload:4} {system:8} {r['elements_per_s']:>12,.0f} el/s "
                f"(min {r['min']:,.0f}, max {r['max']:,.0f})  first batch {r['ttfb_s']:.3f} s  "
                f"peak RSS {r['peak_rss_mb']:,.0f} MB",
                flush=True,
            )
    shuffle = shuffle_throughput()
    print(
        f"\nshuffle (Feistel, NumPy): {shuffle['epoch_1M']:,.0f} indices/s over a 10^6 epoch, "
        f"{shuffle['chunk_16k']:,.0f} indices/s in 16k chunks"
    )

    print("\nratios of datarax to each reference (same run):")
    by_key = {(r["workload"], r["system"]): r for r in results}
    ok = True
    for workload in args.workloads:
        d = by_key.get((workload, "datarax"))
        if d is None:
            continue
        parts = []
        for ref in REFERENCES:
            if (workload, ref) in by_key:
                r = by_key[(workload, ref)]
                parts.append(f"{d['elements_per_s'] / r['elements_per_s']:.2f}x {ref}")
                parts.append(f"first batch {d['ttfb_s'] / r['ttfb_s']:.2f}x {ref}")
        ref_workload, ref_system, goal = GOALS.get(workload, (None, None, None))
        verdict = ""
        if ref_system and (ref_workload, ref_system) in by_key:
            reference = by_key[(ref_workload, ref_system)]
            ratio = d["elements_per_s"] / reference["elements_per_s"]
            met = ratio >= goal
            ok &= met
            verdict = (
                f"  [goal >= {goal}x {ref_system} on {ref_workload}: {ratio:.2f}x, "
                f"{'met' if met else 'NOT met'}]"
            )
        if workload.startswith("W") and (workload, "jax") in by_key:
            ttfb_ratio = d["ttfb_s"] / by_key[(workload, "jax")]["ttfb_s"]
            met = ttfb_ratio <= TTFB_GOAL
            ok &= met
            verdict += f"  [first batch <= {TTFB_GOAL}x jax: {'met' if met else 'NOT met'}]"
        print(f"  {workload:4} " + ", ".join(parts) + verdict)
    for workload, system, reference, goal in SYSTEM_GOALS:
        if (workload, system) in by_key and (workload, reference) in by_key:
            ratio = (
                by_key[(workload, system)]["elements_per_s"]
                / by_key[(workload, reference)]["elements_per_s"]
            )
            met = ratio >= goal
            ok &= met
            print(
                f"  {workload:4} {system} / {reference}: {ratio:.2f}x "
                f"[goal >= {goal}x: {'met' if met else 'NOT met'}]"
            )
    met = shuffle["epoch_1M"] >= 1e7
    ok &= met
    print(f"  shuffle >= 1e7 indices/s: {'met' if met else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "shuffle": shuffle}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
