"""`DataSource`: random access to records, read a whole batch at a time.

A source knows its length and the shape and dtype of one record's fields, and
reads many records with one vectorised call. A source whose arrays live on a
device exposes them as :attr:`device_arrays`; the compiled pipeline then gathers
records itself and only indices cross from the host.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import numpy as np

from datarax.core.errors import SourceError
from datarax.core.module import DataraxModule


class DataSource(DataraxModule, abc.ABC):
    """Base class of sources: a length, the fields of one record, and batched reads."""

    #: Whether any record can be read at any time (so a pipeline may shuffle the
    #: whole source). ``False`` for streaming sources, which are read in order and
    #: shuffled within windows by a ``ShuffleNode``.
    random_access: bool = True

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of records."""

    @abc.abstractmethod
    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """Shape and dtype of one record's fields."""

    @abc.abstractmethod
    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Fields of the records at ``indices``, stacked on axis 0, as host arrays."""

    def read_epoch(self, indices: np.ndarray, epoch: int) -> dict[str, np.ndarray]:
        """The records at ``indices`` in the pipeline's epoch ``epoch``.

        The same records in every epoch (:meth:`read`), unless a source moves on
        between epochs, as a :class:`~datarax.sources.MixedSource` does.
        """
        return self.read(indices)

    @property
    def device_arrays(self) -> dict[str, jax.Array] | None:
        """The fields as device arrays when the source lives on a device, else ``None``."""
        return None

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One record (a convenience; pipelines read whole batches with :meth:`read`)."""
        return {k: v[0] for k, v in self.read(np.asarray([index])).items()}

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this source's stream (compared when restoring state)."""
        spec = {k: [list(s.shape), str(s.dtype)] for k, s in self.element_spec().items()}
        return {"type": type(self).__name__, "length": len(self), "spec": spec}


def empty_source_error(where: str, *, found: str = "0 records") -> SourceError:
    """The error a source without records raises: ``raise empty_source_error(self.name)``.

    Example:
        >>> raise empty_source_error("MemorySource")
        Traceback (most recent call last):
        ...
        datarax.core.errors.SourceError: MemorySource: the source is empty; \
expected at least one record, found 0 records
    """
    return SourceError(
        "the source is empty", where=where, expected="at least one record", found=found
    )


def check_indices(indices: np.ndarray, length: int, *, where: str) -> None:
    """Raise unless every record index is in ``[0, length)``.

    Example:
        >>> check_indices(np.array([0, 5, -1]), 5, where="HFSource")
        Traceback (most recent call last):
        ...
        datarax.core.errors.SourceError: HFSource: record index out of range; \
expected indices in [0, 5), found index 5
    """
    if indices.size and (indices.min() < 0 or indices.max() >= length):
        bad = (indices < 0) | (indices >= length)
        raise SourceError(
            "record index out of range",
            where=where,
            expected=f"indices in [0, {length})",
            found=f"index {int(indices[np.argmax(bad)])}",
        )


def select_columns(
    columns: Sequence[str] | None,
    available: Iterable[str],
    *,
    where: str,
    among: str = "the dataset's columns",
) -> tuple[str, ...]:
    """``columns`` (every available one when ``None``), after checking that each exists.

    Args:
        columns: The names asked for, in order.
        available: The names there are.
        where: The source (and record), as shown in the error.
        among: What ``available`` are, as the error says it.

    Raises:
        SourceError: naming the first column that is not available, and those that are.

    Example:
        >>> select_columns(["label"], ["image", "label"], where="HFSource")
        ('label',)
        >>> select_columns(["labels"], ["image", "label"], where="HFSource")
        Traceback (most recent call last):
        ...
        datarax.core.errors.SourceError: HFSource: no column 'labels'; \
expected one of the dataset's columns ['image', 'label'], found 'labels'
    """
    names = list(available)
    if columns is None:
        return tuple(names)
    for column in columns:
        if column not in names:
            raise SourceError(
                f"no column '{column}'",
                where=where,
                expected=f"one of {among} {names}",
                found=repr(column),
            )
    return tuple(columns)


def callable_name(fn: Any) -> str | None:
    """``module.qualified_name`` of a function or callable object (``None`` for ``None``).

    Example:
        >>> callable_name(np.stack)
        'numpy.stack'
    """
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
