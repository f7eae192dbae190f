"""The machine a run measures: platform, CPUs, Python, and JAX's backend and devices.

JAX's view is read in a child process started with the run's platform, so the process
running the tool never initialises a backend the children will not use.

Example:
    >>> platform_env("cpu")
    {'JAX_PLATFORMS': 'cpu'}
"""

from __future__ import annotations

import json
import os
import platform as _platform
import subprocess
import sys
from typing import Any

from datarax.benchmarking.errors import BenchmarkError

#: ``--platform`` values and the ``JAX_PLATFORMS`` each sets for the children.
PLATFORMS = {"cpu": "cpu", "gpu": "cuda"}

_PROBE = """
import json, sys
import jax
try:
    d = jax.devices()
except Exception as e:  # report JAX's own reason in one line
    sys.exit(f"no usable {jax.config.jax_platforms} backend ({type(e).__name__}: {e})")
print(json.dumps({"jax_backend": jax.default_backend(), "jax_devices": [str(x) for x in d],
                  "jax_device_kind": d[0].device_kind}))
"""


def platform_env(platform: str) -> dict[str, str]:
    """Environment variables that put the children's JAX on ``platform``."""
    if platform not in PLATFORMS:
        raise BenchmarkError(
            "unknown platform",
            where="datarax-bench --platform",
            expected=" or ".join(PLATFORMS),
            found=repr(platform),
        )
    return {"JAX_PLATFORMS": PLATFORMS[platform]}


def machine_info(platform: str) -> dict[str, Any]:
    """Where the run happens; raises :class:`BenchmarkError` if JAX cannot use ``platform``."""
    env = {**os.environ, **platform_env(platform)}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchmarkError(
            f"JAX cannot use the {platform} platform",
            where="datarax-bench --platform",
            expected=f"a machine with a {platform.upper()} that JAX can use"
            + (" (pip install 'datarax[gpu]')" if platform == "gpu" else ""),
            found=last[-300:],
        )
    return {
        "platform": _platform.platform(),
        "machine": _platform.machine(),
        "processor": _platform.processor() or _platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": _platform.python_version(),
        **json.loads(proc.stdout.strip().splitlines()[-1]),
    }
