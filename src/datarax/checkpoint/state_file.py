"""The iterator state file: a small JSON document, written and read with checks.

A document holds the iterator's ``get_state()`` and what is needed to refuse a
file that does not belong to the pipeline::

    {"format": "datarax.checkpoint.iterator", "format_version": 1,
     "datarax_version": "0.1.0", "pipeline": "<Pipeline.fingerprint_digest()>",
     "records": "<Pipeline.records_digest()>",
     "iterator": {...PipelineIterator.get_state()...}}

A state is accepted by a pipeline with the same fingerprint, or with the same
records digest: the same records in the same order, batched differently (an
elastic resume, which ``PipelineIterator.set_state`` supports).

Documents written by :class:`~datarax.checkpoint.NNXCheckpointHandler` also carry
an ``"operators"`` entry describing the operator arrays saved next to them.

Every problem found while reading raises :class:`~datarax.core.errors.StateError`
naming the file, and nothing is changed before the whole document was checked.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> from datarax import from_source
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> p = from_source(MemorySource(MemorySourceConfig(), data={"x": np.arange(6)}), 2)
    >>> it = iter(p); _ = next(it)
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
    >>> save_iterator_state(path, it)
    >>> fresh = iter(p); load_iterator_state(path, fresh)
    >>> next(fresh)["x"].tolist()
    [2, 3]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from datarax.core.config import check_int
from datarax.core.errors import StateError, written

FORMAT = "datarax.checkpoint.iterator"
FORMAT_VERSION = 1

StrPath = str | os.PathLike[str]


# -- the iterator -------------------------------------------------------------------------
def pipeline_of(iterator: Any, where: str) -> Any:
    """The pipeline a :class:`~datarax.dag.executor.PipelineIterator` (or a fused loop) runs.

    Args:
        iterator: An iterator returned by ``iter(pipeline)``, or a
            :class:`~datarax.training.FusedLoop` / :class:`~datarax.training.NNXLoop`
            (they keep the iterator's state format).
        where: Named in the error raised for anything else.
    """
    from datarax.dag.executor import PipelineIterator
    from datarax.training import FusedLoop, NNXLoop

    if not isinstance(iterator, (PipelineIterator, FusedLoop, NNXLoop)):
        raise StateError(
            "not a datarax pipeline iterator",
            where=where,
            expected="iter(pipeline), a PipelineIterator (or a fused training loop)",
            found=type(iterator).__name__,
        )
    return iterator.pipeline


def iterator_document(iterator: Any) -> dict[str, Any]:
    """The state document of ``iterator`` now (JSON-able; later iteration cannot change it).

    Example:
        >>> import numpy as np
        >>> from datarax import from_source
        >>> from datarax.sources import MemorySource, MemorySourceConfig
        >>> p = from_source(MemorySource(MemorySourceConfig(), data={"x": np.arange(4)}), 2)
        >>> doc = iterator_document(iter(p))
        >>> doc["format"], doc["iterator"]["position"]
        ('datarax.checkpoint.iterator', 0)
    """
    from datarax import __version__

    pipeline = pipeline_of(iterator, "iterator_document")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "datarax_version": __version__,
        "pipeline": pipeline.fingerprint_digest(),
        "records": pipeline.records_digest(),
        "iterator": json.loads(json.dumps(iterator.get_state())),
    }


def encode_document(document: dict[str, Any]) -> str:
    """``document`` as JSON text (keys sorted, one trailing newline)."""
    return json.dumps(document, sort_keys=True, indent=1) + "\n"


# -- reading and checking -----------------------------------------------------------------
def decode_document(data: bytes, where: str, pipeline: Any) -> dict[str, Any]:
    """Parse and check a state document read from the file ``where``.

    Checks the JSON, the format name and version, the field types and that
    ``pipeline`` is built like the one that wrote it (same fingerprint, or the same
    records batched differently). The iterator position itself is checked by
    ``PipelineIterator.set_state`` (see :func:`apply_document`).

    Args:
        data: The file's bytes.
        where: The file's path, named in every error.
        pipeline: The pipeline the state is meant for.

    Raises:
        StateError: The file is empty, truncated, corrupted, foreign or from a
            differently built pipeline.
    """
    expected = f"a datarax iterator state (JSON with format '{FORMAT}')"
    if not data.strip():
        raise StateError("the file is empty", where=where, expected=expected, found="0 bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateError(
            "the file is corrupted: not UTF-8 text",
            where=where,
            expected=expected,
            found=f"byte {data[exc.start : exc.start + 1]!r} at offset {exc.start}",
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        # JSON that stops inside a string or before its closing brackets was cut short.
        truncated = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        what = "the file is truncated" if truncated else "the file is corrupted: not valid JSON"
        raise StateError(
            what,
            where=where,
            expected=expected,
            found=f"{exc.msg} (line {exc.lineno}, column {exc.colno}; {len(data)} bytes)",
        ) from None
    if not isinstance(document, dict) or "format" not in document:
        found = (
            f"a JSON object with keys {sorted(document)[:8]}"
            if isinstance(document, dict)
            else f"a JSON {type(document).__name__}"
        )
        raise StateError(
            "not a datarax iterator state", where=where, expected=expected, found=found
        )
    if document["format"] != FORMAT:
        raise StateError(
            "not a datarax iterator state: wrong format name",
            where=where,
            expected=f"format '{FORMAT}'",
            found=f"format {document['format']!r}",
        )
    try:
        version = check_int(document.get("format_version"), where=where, error=StateError)
    except StateError:
        raise _malformed(
            where, "format_version", "an int", document.get("format_version")
        ) from None
    if version != FORMAT_VERSION:
        newer = version > FORMAT_VERSION
        raise StateError(
            "written by a newer datarax" if newer else "unsupported format version",
            where=where,
            expected=f"format_version {FORMAT_VERSION}",
            found=f"format_version {version}"
            + (f" (datarax {document.get('datarax_version')})" if newer else ""),
            hint="Upgrade datarax to read this file" if newer else None,
        )
    for key, kind, description in (
        ("datarax_version", str, "a string"),
        ("pipeline", str, "a fingerprint string"),
        ("records", str, "a records digest string"),
        ("iterator", dict, "an object (PipelineIterator.get_state())"),
    ):
        if not isinstance(document.get(key), kind):
            raise _malformed(where, key, description, document.get(key, "nothing"))
    digest = pipeline.fingerprint_digest()
    # Same records, batched differently: an elastic resume, checked by set_state.
    if document["pipeline"] != digest and document["records"] != pipeline.records_digest():
        raise StateError(
            "the state was saved by a differently built pipeline",
            where=where,
            expected=f"pipeline fingerprint {digest}",
            found=f"{document['pipeline']} (datarax {document['datarax_version']})",
            hint="Build the pipeline with the same source, order, seed, operators and "
            "nodes (batch sizes, prefetch and the number of epochs may differ)",
        )
    return document


def _malformed(where: str, key: str, expected: str, found: Any) -> StateError:
    return StateError(
        f"malformed state: field '{key}'",
        where=where,
        expected=expected,
        found=repr(found)[:200],
    )


def apply_document(document: dict[str, Any], iterator: Any, where: str) -> None:
    """``iterator.set_state`` with a checked document; errors name ``where``.

    ``set_state`` checks the position before changing anything, so on error the
    iterator is unchanged.
    """
    try:
        iterator.set_state(document["iterator"])
    except StateError as exc:
        raise StateError(
            f"{exc.what} (field 'iterator')",
            where=where,
            expected=exc.expected,
            found=exc.found,
            hint=exc.hint,
        ) from exc


def read_bytes(path: StrPath, where: str | None = None) -> bytes:
    """The bytes of ``path``; a :class:`StateError` naming it when it cannot be read."""
    where = where or os.fspath(path)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise StateError(
            "no iterator state file",
            where=where,
            expected="a file written by datarax.checkpoint",
            found="nothing at that path",
        ) from None
    except OSError as exc:
        raise StateError(
            "the file cannot be read", where=where, expected="a readable file", found=str(exc)
        ) from None


def write_text_atomic(path: StrPath, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    A crash leaves either the old file or the new one, never part of one.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


# -- the plain helpers --------------------------------------------------------------------
def save_iterator_state(path: StrPath, iterator: Any) -> None:
    """Write ``iterator``'s position to the JSON file ``path`` (atomically).

    Only the position is written; operator parameters are saved by
    :class:`~datarax.checkpoint.NNXCheckpointHandler`.

    Args:
        path: The file to write (replaced if it exists).
        iterator: ``iter(pipeline)``.
    """
    document = encode_document(iterator_document(iterator))
    with written(path, "write the iterator state"):
        write_text_atomic(path, document)


def load_iterator_state(path: StrPath, iterator: Any) -> None:
    """Continue ``iterator`` from the state in the JSON file ``path``.

    Args:
        path: A file written by :func:`save_iterator_state` (or the
            ``iterator.json`` of a checkpoint written by the Orbax handler).
        iterator: ``iter(pipeline)`` for a pipeline built like the saved one.

    Raises:
        StateError: The file is missing, empty, truncated, corrupted, foreign or
            from a differently built pipeline; the iterator is then unchanged.
    """
    where = os.fspath(path)
    pipeline = pipeline_of(iterator, where)
    document = decode_document(read_bytes(path), where, pipeline)
    apply_document(document, iterator, where)
