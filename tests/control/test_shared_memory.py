"""SharedArrays: a dict of arrays in one shared-memory file, seen by every process that maps it.

The creator owns the file and removes it on close, or at exit for blocks never
closed; attached blocks only unmap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from datarax.memory import SharedArrays

HERE = Path(__file__).parent
FIELDS = {"a": ((2, 3), np.float32), "b": ((4,), np.int64), "flag": ((), np.bool_)}


def test_create_attach_copy_and_close():
    block = SharedArrays.create(FIELDS)
    assert os.path.basename(block.path).startswith("datarax-")
    if os.path.isdir("/dev/shm"):
        assert os.path.dirname(block.path) == "/dev/shm"
    assert {k: (v.shape, v.dtype) for k, v in block.arrays.items()} == {
        "a": ((2, 3), np.float32),
        "b": ((4,), np.int64),
        "flag": ((), np.bool_),
    }
    assert all(not v.any() for v in block.arrays.values())  # zeroed

    other = SharedArrays.attach(block.handle)
    other.arrays["a"][1] = 7.0
    other.arrays["b"][:] = [1, -2, 3, -4]
    other.arrays["flag"][()] = True
    np.testing.assert_array_equal(block.arrays["a"], [[0, 0, 0], [7, 7, 7]])
    np.testing.assert_array_equal(block.arrays["b"], [1, -2, 3, -4])  # fields do not overlap
    assert bool(block.arrays["flag"])

    copies = block.copy()
    other.close()
    assert os.path.exists(block.path)  # an attached block only unmaps
    block.arrays["b"][0] = 100
    assert int(copies["b"][0]) == 1  # copies are private
    block.close()
    assert not os.path.exists(block.path)
    block.close()  # twice is fine
    np.testing.assert_array_equal(copies["a"], [[0, 0, 0], [7, 7, 7]])


def test_context_manager_and_empty_fields():
    with SharedArrays.create({"x": ((0, 5), np.float32), "y": ((3,), np.uint8)}) as block:
        assert block.arrays["x"].shape == (0, 5)
        block.arrays["y"][:] = [1, 2, 3]
        path = block.path
    assert not os.path.exists(path)
    with SharedArrays.create({}) as empty:
        assert empty.arrays == {}


def test_another_process_writes_and_exit_removes_its_unclosed_blocks():
    block = SharedArrays.create(FIELDS)
    try:
        child = subprocess.run(
            [sys.executable, str(HERE / "shm_child.py"), json.dumps(block.handle)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )
        assert child.returncode == 0, child.stderr[-2000:]
        np.testing.assert_array_equal(block.arrays["a"], [[0, 0, 0], [7, 7, 7]])
        np.testing.assert_array_equal(block.arrays["b"], [1, 2, 3, 4])
        assert os.path.exists(block.path)  # the child's close left the parent's file
        lines = dict(line.split(" ", 1) for line in child.stdout.splitlines())
        closed, (left, existed) = lines["closed"], lines["open"].split()
        assert existed == "True"  # the unclosed block was there until the child exited
        assert not os.path.exists(closed)
        assert not os.path.exists(left)
    finally:
        block.close()
