"""Checkpoint a pipeline's iterator next to a model, with Orbax or as a JSON file.

- :func:`save_iterator_state` / :func:`load_iterator_state`: the iterator's
  position as a small JSON file (no extra dependency).
- :class:`NNXCheckpointHandler` with :class:`NNXCheckpointSave` /
  :class:`NNXCheckpointRestore`: the position *and* the operators' state (learnable
  parameters, random keys) as one item of an Orbax checkpoint, for example with
  ``ocp.CheckpointManager`` and ``ocp.args.Composite``. These need the extra
  ``datarax[checkpoint]`` (``orbax-checkpoint``); Orbax is imported when one of
  them is first used.

Example:
    >>> import datarax.checkpoint as dc
    >>> sorted(dc.__all__)  # doctest: +NORMALIZE_WHITESPACE
    ['CheckpointDependencyError', 'NNXCheckpointHandler', 'NNXCheckpointRestore',
     'NNXCheckpointSave', 'load_iterator_state', 'save_iterator_state']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from datarax.checkpoint.dependencies import CheckpointDependencyError
from datarax.checkpoint.state_file import load_iterator_state, save_iterator_state

if TYPE_CHECKING:
    from datarax.checkpoint.handler import (
        NNXCheckpointHandler,
        NNXCheckpointRestore,
        NNXCheckpointSave,
    )

_ORBAX_NAMES = ("NNXCheckpointHandler", "NNXCheckpointRestore", "NNXCheckpointSave")

__all__ = [
    "CheckpointDependencyError",
    "NNXCheckpointHandler",
    "NNXCheckpointRestore",
    "NNXCheckpointSave",
    "load_iterator_state",
    "save_iterator_state",
]


def __getattr__(name: str) -> Any:
    """Import the Orbax handler on first use (raises CheckpointDependencyError without it)."""
    if name in _ORBAX_NAMES:
        return getattr(importlib.import_module("datarax.checkpoint.handler"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
