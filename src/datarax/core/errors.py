"""The error hierarchy: every error a user can cause is a :class:`DataraxError`.

Messages are built from four parts so that each says the same things in the same
order: *where* it happened (node, source, record, field), *what* went wrong, what
was *expected* and what was *found*.

Example:
    >>> raise SourceError("fields have different lengths", where="MemorySource",
    ...                   expected="1000 records in 'label'", found="999")
    Traceback (most recent call last):
    ...
    datarax.core.errors.SourceError: MemorySource: fields have different lengths; \
expected 1000 records in 'label', found 999
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class DataraxError(Exception):
    """Base class of every error datarax raises because of user input.

    Args:
        what: One clause saying what went wrong.
        where: The node, source, record or field concerned.
        expected: What datarax expected there.
        found: What it found instead.
        hint: An optional next step for the user.
    """

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        expected: Any = None,
        found: Any = None,
        hint: str | None = None,
    ) -> None:
        self.what = what
        self.where = where
        self.expected = expected
        self.found = found
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.expected is not None:
            text += f"; expected {self.expected}"
        if self.found is not None:
            text += (
                f", found {self.found}" if self.expected is not None else f"; found {self.found}"
            )
        if self.hint:
            text += f". {self.hint}"
        return text

    def __reduce__(
        self,
    ) -> tuple[Any, ...]:  # keep the structured fields when pickled across processes
        return (_rebuild, (type(self), self.what, self.where, self.expected, self.found, self.hint))


def _rebuild(
    cls: type[DataraxError],
    what: str,
    where: str | None,
    expected: Any,
    found: Any,
    hint: str | None,
) -> DataraxError:
    return cls(what, where=where, expected=expected, found=found, hint=hint)


class ConfigError(DataraxError, ValueError):
    """A configuration value is invalid (raised when the config is built)."""


class SourceError(DataraxError, ValueError):
    """A data source is malformed: ragged fields, no records, unsupported values."""


class SchemaError(DataraxError, TypeError):
    """A field's shape, dtype or structure is not what the pipeline was built for."""


class OperatorError(DataraxError):
    """An operator was built or used incorrectly."""


class PipelineBuildError(DataraxError):
    """A pipeline graph cannot be compiled as built."""


class FusionError(PipelineBuildError):
    """A pipeline cannot be fused with a training step (see :mod:`datarax.training`)."""


class StateError(DataraxError, ValueError):
    """An iterator state cannot be restored into this pipeline."""


class RecordError(DataraxError):
    """A record could not be read, decoded or transformed on the host plane."""


class WorkerError(DataraxError, RuntimeError):
    """A host-plane worker process died or could not be started."""


class FileError(DataraxError, OSError):
    """A file the library writes (a state, a drawing, a record file) cannot be written."""


@contextlib.contextmanager
def written(path: Any, action: str) -> Iterator[None]:
    """A context turning an ``OSError`` while writing ``path`` into a :class:`FileError`.

    Example:
        >>> with written("/no/such/folder/state.json", "write the iterator state"):
        ...     open("/no/such/folder/state.json", "w")
        Traceback (most recent call last):
        ...
        datarax.core.errors.FileError: /no/such/folder/state.json: cannot write the \
iterator state; expected a writable file in an existing folder, found No such file or directory
    """
    try:
        yield
    except DataraxError:
        raise
    except OSError as error:
        raise FileError(
            f"cannot {action}",
            where=str(path),
            expected="a writable file in an existing folder",
            found=error.strerror or f"{type(error).__name__}: {error}",
        ) from error


def relocated(error: DataraxError, where: str) -> DataraxError:
    """``error`` again, of its class and with its message parts, located at ``where``.

    Example:
        >>> inner = SourceError("record is too short", where="decode_record")
        >>> str(relocated(inner, "train.arrayrecord, record 3"))
        'train.arrayrecord, record 3: record is too short'
    """
    return type(error)(
        error.what, where=where, expected=error.expected, found=error.found, hint=error.hint
    )
