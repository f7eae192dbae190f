"""Batches split over 8 simulated CPU devices: shapes, shardings and values.

JAX fixes the number of CPU devices when it starts, so the checks run in a process
started with ``--xla_force_host_platform_device_count=8`` (``sharded_checks.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from jax.sharding import PartitionSpec as P

from datarax.distributed import DeviceMesh
from datarax.sharding import ArraySharder

CHECKS = Path(__file__).with_name("sharded_checks.py")


def test_eight_device_checks():
    out = subprocess.run([sys.executable, str(CHECKS)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    passed = {line.split()[1] for line in out.stdout.splitlines() if line.startswith("ok ")}
    assert passed == {
        "sharded_equals_unsharded_device",
        "sharded_equals_unsharded_host",
        "model_axis",
        "fallback_nodes",
        "errors",
        "resume",
        "data_parallel",
        "prefetch",
    }


def test_a_one_device_mesh_places_batches_on_it():
    sharder = ArraySharder(DeviceMesh({"data": -1}))
    placed = sharder.shard({"x": np.arange(8.0).reshape(4, 2)})
    assert placed["x"].sharding.spec == P("data")
    np.testing.assert_array_equal(np.asarray(placed["x"]), np.arange(8.0).reshape(4, 2))
