"""Start-up cost: six tutorial-sized pipelines, three batches each.

Usage::

    python -m benchmarks.startup                      # one run, figures printed
    python -m benchmarks.startup --repetitions 3 --json startup.json

Each run is a fresh process (``--child``) so that its wall time holds everything a
short script pays: importing, compiling, the three batches of each pipeline and
the interpreter's exit (which must not wait for a compilation nobody uses). The
pipelines are the README Quick Start's size (1000 records of 28x28x1, small
``ElementOperator`` chains), varied a little as a tutorial would. For each one the
child counts XLA compilations (``jax.monitoring`` events
``/jax/core/compile/backend_compile_duration``) from ``iter()`` to the first batch,
and up to the end of the process. The median over the repetitions is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
RECORDS = 1000
BATCHES = 3


def measure(repetitions: int = 3) -> dict[str, Any]:
    """Run the six-pipeline script ``repetitions`` times, each in a fresh process."""
    runs = [_run_child() for _ in range(repetitions)]
    names = [p["name"] for p in runs[0]["pipelines"]]
    return {
        "repetitions": repetitions,
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "compiles_before_first_batch": {
            name: statistics.median(r["pipelines"][i]["before_first"] for r in runs)
            for i, name in enumerate(names)
        },
        "compiles_before_first_batch_total": statistics.median(
            sum(p["before_first"] for p in r["pipelines"]) for r in runs
        ),
        "compiles_total": statistics.median(r["compiles_at_exit"] for r in runs),
        "compile_s": statistics.median(r["compile_s"] for r in runs),
        "import_and_build_s": statistics.median(r["import_and_build_s"] for r in runs),
        "runs": runs,
    }


def _run_child() -> dict[str, Any]:
    """One fresh process running the script; its figures and wall time (exit included)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "benchmarks.startup", "--child", out.name], check=True
        )
        wall = time.perf_counter() - began
        figures: dict[str, Any] = json.loads(Path(out.name).read_text())
    figures["wall_s"] = wall
    return figures


def child(path: str) -> None:
    """The measured script: six pipelines, three batches each; figures written to ``path``."""
    began = time.perf_counter()
    import atexit

    import jax

    counter: dict[str, Any] = {"n": 0, "s": 0.0}

    def count(event: str, duration: float, *_args: Any, **_kwargs: Any) -> None:
        if event == COMPILE_EVENT:
            counter["n"] += 1
            counter["s"] += duration

    jax.monitoring.register_event_duration_secs_listener(count)
    figures: dict[str, Any] = {"pipelines": []}

    def write() -> None:  # registered before datarax's exit hook, so it runs after it
        figures["compiles_at_exit"] = counter["n"]
        figures["compile_s"] = counter["s"]
        with open(path, "w") as f:
            json.dump(figures, f)

    atexit.register(write)
    built = pipelines()
    figures["import_and_build_s"] = time.perf_counter() - began
    for name, pipeline in built:
        start, t0 = counter["n"], time.perf_counter()
        it = iter(pipeline)
        first = next(it)
        jax.block_until_ready(first.data)
        before_first = counter["n"] - start
        for _ in range(BATCHES - 1):
            jax.block_until_ready(next(it).data)
        figures["pipelines"].append(
            {
                "name": name,
                "before_first": before_first,
                "after_3": counter["n"] - start,
                "three_batches_s": time.perf_counter() - t0,
            }
        )


def pipelines() -> list[tuple[str, Any]]:
    """The six pipelines, as a tutorial builds them."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from datarax import from_source
    from datarax.dag.nodes import OperatorNode
    from datarax.operators import ElementOperator, ElementOperatorConfig

    def normalize(element: Any, key: Any = None) -> Any:
        return element.update_data({"image": element.data["image"] / 255.0})

    def center(element: Any, key: Any = None) -> Any:
        return element.update_data({"image": element.data["image"] / 255.0 - 0.5})

    def flip(element: Any, key: Any) -> Any:
        key1, _ = jax.random.split(key)
        image = element.data["image"]
        image = jax.lax.cond(
            jax.random.bernoulli(key1, 0.5), lambda i: jnp.flip(i, axis=1), lambda i: i, image
        )
        return element.update_data({"image": image})

    def noise(element: Any, key: Any) -> Any:
        image = element.data["image"]
        return element.update_data({"image": image + 0.01 * jax.random.normal(key, image.shape)})

    def op(fn: Any, stochastic: bool, seed: int) -> OperatorNode:
        config = (
            ElementOperatorConfig(stochastic=True, stream_name="augmentations")
            if stochastic
            else ElementOperatorConfig(stochastic=False)
        )
        return OperatorNode(ElementOperator(config, fn=fn, rngs=nnx.Rngs(seed)))

    def source(seed: int) -> Any:
        from datarax.sources import MemorySource, MemorySourceConfig

        rng = np.random.default_rng(seed)
        data = {
            "image": rng.integers(0, 255, (RECORDS, 28, 28, 1)).astype(np.float32),
            "label": rng.integers(0, 10, (RECORDS,)).astype(np.int32),
        }
        return MemorySource(MemorySourceConfig(), data=data, rngs=nnx.Rngs(0))

    def quickstart(batch_size: int, seed: int, *rest: Any, shuffle: bool = False) -> Any:
        p = from_source(source(seed), batch_size=batch_size, shuffle=shuffle, seed=seed)
        for node in rest:
            p = p >> node
        return p

    return [
        ("quickstart", quickstart(32, 0, op(normalize, False, 0), op(flip, True, 42))),
        ("batch-64", quickstart(64, 1, op(normalize, False, 0), op(flip, True, 42))),
        ("normalise-only", quickstart(32, 2, op(normalize, False, 0))),
        ("shuffled", quickstart(32, 3, op(normalize, False, 0), op(flip, True, 7), shuffle=True)),
        ("noise-16", quickstart(16, 4, op(center, False, 0), op(noise, True, 5))),
        (
            "three-ops-128",
            quickstart(128, 5, op(center, False, 0), op(flip, True, 1), op(noise, True, 2)),
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module doc."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--json", metavar="PATH", help="write the figures to PATH")
    parser.add_argument("--child", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return
    result = measure(args.repetitions)
    for name, n in result["compiles_before_first_batch"].items():
        print(f"{name:>16}: {n:g} compilations before the first batch")
    print(
        f"medians: imports and building {result['import_and_build_s']:.2f} s, "
        f"XLA compilations {result['compile_s']:.2f} s"
    )
    print(
        f"before first batches: {result['compiles_before_first_batch_total']:g} compilations, "
        f"in all: {result['compiles_total']:g}; "
        f"script wall time (median of {args.repetitions}): {result['wall_s']:.2f} s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
