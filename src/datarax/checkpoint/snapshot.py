"""A whole iterator checkpoint: the state document and the operators' arrays.

A checkpoint directory holds two files:

- ``iterator.json``: the state document of :mod:`datarax.checkpoint.state_file`
  with an ``"operators"`` manifest, written last;
- ``operators.npz``: the operator arrays (:mod:`datarax.checkpoint.operator_state`).

:func:`capture` takes everything a save needs from the iterator at once, so the
files can be written later (on Orbax's background thread) while iteration goes
on. :func:`restore_directory` checks both files completely before it changes the
iterator or its operators. The functions take any object with the ``pathlib``
interface (``pathlib.Path``, ``etils.epath.Path``), so they need no Orbax.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from datarax import from_source
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> p = from_source(MemorySource(MemorySourceConfig(), data={"x": np.arange(6)}), 2)
    >>> it = iter(p); _ = next(it)
    >>> directory = Path(tempfile.mkdtemp())
    >>> write_snapshot(directory, capture(it))
    >>> sorted(f.name for f in directory.iterdir())
    ['iterator.json', 'operators.npz']
    >>> fresh = iter(p); restore_directory(directory, fresh)
    >>> next(fresh)["x"].tolist()
    [2, 3]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from datarax.checkpoint.operator_state import (
    OPERATORS_FILE,
    OperatorSnapshot,
    apply_operators,
    capture_operators,
    decode_operators,
    encode_operators,
)
from datarax.checkpoint.state_file import (
    apply_document,
    decode_document,
    encode_document,
    iterator_document,
    pipeline_of,
)
from datarax.core.errors import StateError

#: The file name of the state document inside a checkpoint item directory.
ITERATOR_FILE = "iterator.json"


def item_files(directory: Any, *, for_writing: bool) -> tuple[Any, Any]:
    """``(iterator.json, operators.npz)`` paths of this process in ``directory``.

    With several processes each writes its own pair (``iterator.process-<p>.json``,
    ...), so no two processes write one file. A restore reads this process's pair
    when there is one, else the files of a one-process save, else process 0's: the
    iterator state is global, so any process's files continue the same stream, with
    another number of processes too.
    """
    import jax

    index, count = jax.process_index(), jax.process_count()

    def pair(process: int | None) -> tuple[Any, Any]:
        if process is None:
            return directory / ITERATOR_FILE, directory / OPERATORS_FILE
        stem_i, stem_o = ITERATOR_FILE.rsplit(".", 1), OPERATORS_FILE.rsplit(".", 1)
        return (
            directory / f"{stem_i[0]}.process-{process}.{stem_i[1]}",
            directory / f"{stem_o[0]}.process-{process}.{stem_o[1]}",
        )

    if for_writing:
        return pair(index if count > 1 else None)
    for candidate in ([index] if count > 1 else []) + [None, 0]:
        files = pair(candidate)
        if files[0].exists():
            return files
    return pair(index if count > 1 else None)


@dataclass(frozen=True)
class IteratorSnapshot:
    """Everything a save writes, copied from the iterator when the save started."""

    document: dict[str, Any]
    operators: OperatorSnapshot


def capture(iterator: Any) -> IteratorSnapshot:
    """Copy the iterator's position and its operators' arrays now.

    Later iteration (or training of the operators' parameters) cannot change
    what a snapshot holds.
    """
    pipeline = pipeline_of(iterator, "datarax.checkpoint.capture")
    return IteratorSnapshot(iterator_document(iterator), capture_operators(pipeline))


def write_snapshot(directory: Any, snapshot: IteratorSnapshot) -> None:
    """Write ``operators.npz``, then ``iterator.json``, into ``directory``."""
    data, manifest = encode_operators(snapshot.operators)
    iterator_file, operators_file = item_files(directory, for_writing=True)
    operators_file.write_bytes(data)
    document = {**snapshot.document, "operators": manifest}
    iterator_file.write_text(encode_document(document))


def _read(path: Any) -> bytes | None:
    """The bytes of ``path``, ``None`` when it does not exist."""
    try:
        if not path.exists():
            return None
        return bytes(path.read_bytes())
    except OSError as exc:
        raise StateError(
            "the file cannot be read",
            where=os.fspath(path),
            expected="a readable file",
            found=str(exc),
        ) from None


def read_document_bytes(directory: Any) -> bytes:
    """The bytes of this process's ``iterator.json``; a :class:`StateError` when missing."""
    path = item_files(directory, for_writing=False)[0]
    data = _read(path)
    if data is None:
        raise StateError(
            "no iterator state in the checkpoint",
            where=os.fspath(path),
            expected="a file written by NNXCheckpointHandler",
            found="nothing at that path",
        )
    return data


def restore_directory(directory: Any, iterator: Any) -> None:
    """Continue ``iterator`` from the checkpoint in ``directory``.

    Checks the document (format, version, types, pipeline fingerprint) and the
    operator arrays (checksum, paths, dtypes, shapes) first; then sets the
    iterator's position and updates the operators in place with ``nnx.update``.

    Raises:
        StateError: A file is missing, empty, truncated, corrupted, foreign or from a
            differently built pipeline; the iterator and its operators are unchanged.
    """
    iterator_file, npz = item_files(directory, for_writing=False)
    where = os.fspath(iterator_file)
    pipeline = pipeline_of(iterator, where)
    document = decode_document(read_document_bytes(directory), where, pipeline)
    if "operators" not in document:
        raise StateError(
            "malformed state: field 'operators'",
            where=where,
            expected="the operator manifest written by NNXCheckpointHandler",
            found="nothing (use load_iterator_state for a file of save_iterator_state)",
        )
    restored = decode_operators(document["operators"], _read(npz), where, os.fspath(npz), pipeline)
    # set_state checks the position before changing anything, and makes the iterator
    # read the operators' values again at its next batch: after the update below.
    apply_document(document, iterator, where)
    apply_operators(restored, pipeline)
