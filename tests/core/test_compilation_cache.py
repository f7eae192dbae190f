"""`enable_compilation_cache`: a second process loads the pipeline's program from disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Compiles a program before the cache is on (the call must still take effect), then
# runs a pipeline for three batches; prints the cache hits and where the cache is.
CHILD = """
import json, sys
import jax, jax.numpy as jnp
import numpy as np
hits = []
jax.monitoring.register_event_listener(
    lambda event, **_: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None
)
jnp.zeros(3).block_until_ready()
from datarax import enable_compilation_cache, from_source
from datarax.sources import MemorySource, MemorySourceConfig
folder = enable_compilation_cache(*sys.argv[1:])
source = MemorySource(MemorySourceConfig(), data={"x": np.arange(40.0)})
iterator = iter(from_source(source, batch_size=4))
batches = [next(iterator)["x"].tolist() for _ in range(3)]
print(json.dumps({"hits": len(hits), "folder": str(folder), "batches": batches}))
"""


def _run(*args: str, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_pipelines_program_from_the_cache(tmp_path: Path) -> None:
    first = _run(str(tmp_path / "cache"))
    assert first["hits"] == 0
    assert first["folder"] == str((tmp_path / "cache").resolve())
    stored = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert stored and all(name.startswith("jit_") for name in stored), stored

    second = _run(str(tmp_path / "cache"))
    assert second["hits"] >= 1
    expected = [[float(v) for v in range(i, i + 4)] for i in (0, 4, 8)]
    assert second["batches"] == first["batches"] == expected
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == stored


def test_the_cache_folder_comes_from_the_environment_when_no_path_is_given(
    tmp_path: Path,
) -> None:
    out = _run(env={"DATARAX_COMPILATION_CACHE": str(tmp_path / "env-cache")})
    assert out["folder"] == str((tmp_path / "env-cache").resolve())
    assert any((tmp_path / "env-cache").iterdir())
