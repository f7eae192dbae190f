"""JAX's persistent compilation cache, turned on in one call.

Each pipeline compiles its programs with XLA when it first runs; in a short
script that is most of the wall time. JAX can keep compiled programs on disk and
load them in the next process instead of compiling again.
:func:`enable_compilation_cache` turns that on for every program of the process
(datarax's and the user's own), with thresholds that also keep the small
programs a pipeline compiles. The cache is trusted code: keep it in a directory
only you can write to.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

#: Where the cache lives when no path is given and ``DATARAX_COMPILATION_CACHE`` is unset.
DEFAULT_CACHE_DIR = Path("~/.cache/datarax/jax").expanduser()


def enable_compilation_cache(
    path: str | os.PathLike[str] | None = None, *, min_compile_time_s: float = 0.0
) -> Path:
    """Keep every XLA program this process compiles on disk, and reuse them next time.

    Call it once, near the top of a script; programs compiled before the call
    are compiled again once (and kept from then on). A later process that builds
    equal pipelines, on the same JAX, devices and flags, loads their programs from
    the cache instead of compiling them.

    Args:
        path: The cache's directory (made if missing). Default: the
            ``DATARAX_COMPILATION_CACHE`` environment variable, else
            :data:`DEFAULT_CACHE_DIR`.
        min_compile_time_s: Keep only programs whose compilation took at least this
            long (JAX's own default is 1 s, which leaves out most of a pipeline's
            programs; 0 keeps them all).

    Returns:
        The cache's directory.

    Example:
        >>> import tempfile
        >>> from datarax.core.compilation_cache import enable_compilation_cache
        >>> folder = enable_compilation_cache(tempfile.mkdtemp())
        >>> folder.is_dir()
        True
    """
    if path is None:
        path = os.environ.get("DATARAX_COMPILATION_CACHE") or DEFAULT_CACHE_DIR
    folder = Path(path).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    # JAX decides once per process whether the cache is used (at its first
    # compilation): forget that decision so the directory set here takes effect.
    compilation_cache.reset_cache()
    return folder
