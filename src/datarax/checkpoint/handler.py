"""`NNXCheckpointHandler`: a datarax iterator as one item of an Orbax checkpoint.

Importing this module imports Orbax; ``datarax.checkpoint`` imports it only when
one of its names is used, and raises
:class:`~datarax.checkpoint.dependencies.CheckpointDependencyError` (naming the
extra ``datarax[checkpoint]``) when Orbax is missing.

Example:
    >>> import tempfile
    >>> import numpy as np
    >>> import orbax.checkpoint as ocp
    >>> from datarax import from_source
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> p = from_source(MemorySource(MemorySourceConfig(), data={"x": np.arange(8)}), 2)
    >>> it = iter(p); _ = next(it)
    >>> with ocp.CheckpointManager(tempfile.mkdtemp()) as manager:
    ...     _ = manager.save(1, args=ocp.args.Composite(data=NNXCheckpointSave(it)))
    ...     manager.wait_until_finished()
    ...     fresh = iter(p)
    ...     _ = manager.restore(1, args=ocp.args.Composite(data=NNXCheckpointRestore(fresh)))
    >>> next(fresh)["x"].tolist()
    [2, 3]
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from datarax.checkpoint import snapshot as _snapshot
from datarax.checkpoint.dependencies import EXTRA, REQUIREMENT, CheckpointDependencyError
from datarax.checkpoint.state_file import FORMAT, pipeline_of
from datarax.core.errors import StateError

try:
    import orbax.checkpoint as ocp
except ImportError as _error:
    raise CheckpointDependencyError(
        "Orbax is not installed",
        where="datarax.checkpoint.NNXCheckpointHandler",
        expected=f"{REQUIREMENT} (pip install '{EXTRA}')",
        found=str(_error) or type(_error).__name__,
    ) from _error


class NNXCheckpointHandler(ocp.AsyncCheckpointHandler):
    """Saves and restores a :class:`~datarax.dag.executor.PipelineIterator`.

    A save writes the iterator's position (``get_state()``), the state of its
    pipeline's operators (``nnx.state(tuple(pipeline.operators))``: learnable
    parameters and random keys) and metadata: format name and version, datarax
    version and the pipeline's fingerprint. Both are copied when the save is
    called; with asynchronous checkpointing the files are written on Orbax's
    background thread while iteration continues.

    A restore checks the files completely, then calls ``iterator.set_state`` and
    updates the operators in place with ``nnx.update``, so the stream continues
    bit for bit, in this or a new process. A missing, empty, truncated,
    corrupted or foreign file, or one from a differently built pipeline, raises
    :class:`~datarax.core.errors.StateError` naming the file, and leaves the
    iterator and its operators unchanged.

    Use it through :class:`NNXCheckpointSave` / :class:`NNXCheckpointRestore`
    inside ``ocp.args.Composite`` (Orbax finds the handler from the arguments).
    """

    async def async_save(self, directory: Any, args: NNXCheckpointSave) -> list[Any]:
        """Copy the iterator's state now; return the future that writes the files."""
        snapshot = _snapshot.capture(args.iterator)

        async def write() -> None:
            _snapshot.write_snapshot(directory, snapshot)

        return [ocp.future.CommitFutureAwaitingContractedSignals(write(), name="datarax_save")]

    def save(self, directory: Any, args: NNXCheckpointSave) -> None:
        """Write the iterator's state into ``directory`` now."""
        _snapshot.write_snapshot(directory, _snapshot.capture(args.iterator))

    def restore(self, directory: Any, args: NNXCheckpointRestore) -> Any:
        """Continue ``args.iterator`` from the checkpoint; returns the iterator."""
        if not isinstance(args, NNXCheckpointRestore):
            raise StateError(
                "no iterator to restore into",
                where=f"NNXCheckpointHandler.restore({os.fspath(directory)})",
                expected="args=NNXCheckpointRestore(iterator)",
                found=repr(args)[:200],
            )
        _snapshot.restore_directory(directory, args.iterator)
        return args.iterator

    def metadata(self, directory: Any) -> dict[str, Any] | None:
        """Format, versions and pipeline fingerprint of a saved item (not checked)."""
        path = _snapshot.item_files(directory, for_writing=False)[0]
        if not path.exists():
            return None
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            return None
        keys = ("format", "format_version", "datarax_version", "pipeline")
        return {k: document.get(k) for k in keys}


@ocp.args.register_with_handler(NNXCheckpointHandler, for_save=True)
@dataclasses.dataclass
class NNXCheckpointSave(ocp.args.CheckpointArgs):
    """Save ``iterator`` (an ``iter(pipeline)``) with :class:`NNXCheckpointHandler`.

    Example:
        ``ocp.args.Composite(model=ocp.args.StandardSave(nnx.state(model)),
        data=NNXCheckpointSave(iterator))``
    """

    iterator: Any

    def __post_init__(self) -> None:
        pipeline_of(self.iterator, "NNXCheckpointSave")


@ocp.args.register_with_handler(NNXCheckpointHandler, for_restore=True)
@dataclasses.dataclass
class NNXCheckpointRestore(ocp.args.CheckpointArgs):
    """Restore into ``iterator`` (built from a pipeline built like the saved one).

    Example:
        ``ocp.args.Composite(model=ocp.args.StandardRestore(abstract_state),
        data=NNXCheckpointRestore(iterator))``
    """

    iterator: Any

    def __post_init__(self) -> None:
        pipeline_of(self.iterator, "NNXCheckpointRestore")
