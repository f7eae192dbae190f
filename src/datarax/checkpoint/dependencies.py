"""The optional Orbax dependency: imported only when a checkpoint handler is used.

Example:
    >>> from datarax.checkpoint.dependencies import CheckpointDependencyError
    >>> error = CheckpointDependencyError(
    ...     "Orbax is not installed", where="datarax.checkpoint.NNXCheckpointHandler",
    ...     expected="orbax-checkpoint>=0.12 (pip install 'datarax[checkpoint]')",
    ...     found="No module named 'orbax'")
    >>> isinstance(error, ImportError)
    True
"""

from __future__ import annotations

import importlib
from types import ModuleType

from datarax.core.errors import DataraxError

#: The pip extra that installs Orbax.
EXTRA = "datarax[checkpoint]"
REQUIREMENT = "orbax-checkpoint>=0.12"


class CheckpointDependencyError(DataraxError, ImportError):
    """A checkpoint feature needs a package that is not installed."""


def require_orbax(where: str) -> ModuleType:
    """``orbax.checkpoint``, or a :class:`CheckpointDependencyError` naming the extra.

    Args:
        where: The feature that needs Orbax (named in the error message).
    """
    try:
        return importlib.import_module("orbax.checkpoint")
    except ImportError as exc:
        raise CheckpointDependencyError(
            "Orbax is not installed",
            where=where,
            expected=f"{REQUIREMENT} (pip install '{EXTRA}')",
            found=str(exc) or type(exc).__name__,
        ) from exc
