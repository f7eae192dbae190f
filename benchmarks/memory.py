"""Memory over many epochs: resident set size of the W1 pipeline at chosen epochs.

Usage::

    python -m benchmarks.memory                  # 200 epochs of W1, RSS after 10, 50, 100, 200
    python -m benchmarks.memory --epochs 500 --at 10 100 500 --shuffle

Prints one JSON object: the current and the peak RSS (MiB) after each chosen epoch.
A loader that keeps anything per epoch (indices, batches, compiled functions) grows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys


def current_rss_mib() -> float:
    """The process's resident set size now, in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """The process's peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(epochs: int, at: list[int], shuffle: bool = False) -> dict:
    """Iterate W1 (or W1s) for ``epochs`` epochs; RSS once each epoch in ``at`` is done."""
    import jax

    from benchmarks.systems import datarax_image_pipeline
    from benchmarks.workloads import WORKLOADS

    w = WORKLOADS["W1s" if shuffle else "W1"]
    pipeline = datarax_image_pipeline(w, w.make_data(), None, num_epochs=epochs)
    out: dict = {"workload": w.name, "epochs": epochs, "rss_after_epoch": {}}

    def epoch_done(done: int) -> None:
        if done in at:
            out["rss_after_epoch"][done] = {
                "rss_mib": round(current_rss_mib(), 1),
                "peak_mib": round(peak_rss_mib(), 1),
            }

    previous = 0
    for batch in pipeline:
        jax.block_until_ready(batch["image"])
        if batch.epoch != previous:
            epoch_done(previous + 1)
            previous = batch.epoch
    epoch_done(previous + 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--at", type=int, nargs="+", default=[10, 50, 100, 200])
    parser.add_argument("--shuffle", action="store_true", help="W1s instead of W1")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.epochs, args.at, args.shuffle)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
