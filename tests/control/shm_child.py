"""Run in a fresh process: write into the parent's block, then leave a block of its own open.

``argv[1]`` is the parent's block handle as JSON. Writes ``a[1] = 7`` and
``b = [1, 2, 3, 4]``, creates and closes one block, creates another that it never
closes, and prints ``closed PATH`` and ``open PATH EXISTS``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from datarax.memory import SharedArrays

if __name__ == "__main__":
    path, layout, size = json.loads(sys.argv[1])
    block = SharedArrays.attach((path, [(n, tuple(s), d, o) for n, s, d, o in layout], size))
    block.arrays["a"][1] = 7.0
    block.arrays["b"][:] = [1, 2, 3, 4]
    block.close()  # an attached block only unmaps: the parent's file stays
    closed = SharedArrays.create({"z": ((3,), np.float32)})
    closed.close()
    left = SharedArrays.create({"z": ((3,), np.float32)})
    left.arrays["z"][:] = 1.0
    print("closed", closed.path, flush=True)
    print("open", left.path, os.path.exists(left.path), flush=True)
