"""The systems the goal-checking scripts compare, built from the package's adapters.

Each system takes a workload, its host arrays and its statistics and returns
``make_pass``: a function that returns an iterator over one pass's batches.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from datarax.benchmarking.adapters import SYSTEMS as _ADAPTERS
from datarax.benchmarking.adapters import BuildContext, MakePass
from datarax.benchmarking.adapters.datarax import (
    datarax_function,
    datarax_image_pipeline,
    datarax_pipeline,
    datarax_sharded,
)
from datarax.benchmarking.scenarios import Scenario


def _adapter(name: str) -> Callable[..., MakePass]:
    def make(w: Scenario, data: dict[str, np.ndarray], stats: Any) -> MakePass:
        workdir = Path(tempfile.mkdtemp(prefix="datarax-bench-"))
        return _ADAPTERS[name].build(w, BuildContext(data, stats, workdir))

    make.__doc__ = f"The package's ``{name}`` adapter with the (workload, data, stats) call."
    return make


numpy_reference = _adapter("numpy")
jax_reference = _adapter("jax")

SYSTEMS: dict[str, Callable[..., MakePass]] = {
    "numpy": numpy_reference,
    "numpy-loop": _adapter("numpy-loop"),
    "jax": jax_reference,
    "datarax": _adapter("datarax"),
    "datarax-0w": _adapter("datarax-0w"),  # AR: the records decoded with no workers
    "grain": _adapter("grain"),
    "datarax-fn": datarax_function,
    "datarax-sharded": datarax_sharded,
    # The unsharded pipeline in a process with as many devices as datarax-sharded.
    "datarax-8dev": datarax_pipeline,
}

#: Devices a system's process is started with (simulated on CPU).
DEVICES = {"datarax-sharded": 8, "datarax-8dev": 8}

__all__ = ["DEVICES", "SYSTEMS", "datarax_image_pipeline"]
