"""Memory stays flat over many epochs: nothing is kept per epoch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_resident_memory_is_flat_over_200_epochs_of_w1():
    # A fresh process, so that other tests' allocations do not blur the figures.
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--epochs", "200", "--at", "10", "200"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"},
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])["rss_after_epoch"]
    growth = figures["200"]["rss_mib"] - figures["10"]["rss_mib"]
    # 190 epochs of 1000 records: keeping even 100 bytes per record would add 18 MiB.
    assert growth < 16, figures
