"""`RecordSource`: records read one at a time and decoded on the host plane.

Files and dataset libraries hand out records one by one (bytes to decode, dicts of
Python values). A record source says how to fetch raw records (:meth:`read_records`)
and how to turn one into NumPy fields (:meth:`decode`); the pipeline's host plane
runs the decoding, and any :class:`~datarax.dag.nodes.HostOperator`, on its worker
pool, checks every record against the source's spec and stacks the batch.

Anything with ``__len__`` and ``__getitem__`` (Grain's random-access data-source
protocol) becomes a source with :class:`SequenceSource`; ``from_source`` wraps such
objects by itself.

Example:
    >>> import numpy as np
    >>> records = [{"x": np.full(2, i, np.int32)} for i in range(4)]
    >>> src = SequenceSource(records)
    >>> src.element_spec()["x"].shape, src.read(np.array([3, 1]))["x"].tolist()
    ((2,), [[3, 3], [1, 1]])
"""

from __future__ import annotations

import abc
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import jax
import numpy as np

from datarax.core.config import Config
from datarax.core.errors import DataraxError, RecordError, SourceError, relocated
from datarax.core.fields import check_fields, record_fields
from datarax.sources.base import DataSource, callable_name, empty_source_error

Decoder = Callable[[Any], Mapping[str, Any]]
#: Records tried, in order, for a source's fields when its first records are bad.
SPEC_ATTEMPTS = 16


class RecordSource(DataSource, pytree=False):
    """Base class of sources read and decoded record by record.

    Subclasses implement :meth:`__len__` and :meth:`read_records`, and override
    :meth:`decode` when raw records are not already mappings of field to value.
    A source whose records depend on the pipeline's epoch also overrides
    :meth:`read_records_epoch`.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Raw records (lists, readers, dataset objects) are plain Python state, not
        # NNX data: record sources are not pytrees.
        kwargs.setdefault("pytree", False)
        super().__init_subclass__(**kwargs)

    def __init__(
        self,
        config: Config | None = None,
        *,
        decoder: Decoder | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(config if config is not None else Config(), name=name)
        self._decoder = decoder
        self._spec: dict[str, jax.ShapeDtypeStruct] | None = None

    @abc.abstractmethod
    def read_records(self, indices: np.ndarray) -> Sequence[Any]:
        """The raw records at ``indices``, in that order."""

    def read_records_epoch(self, indices: np.ndarray, epoch: int) -> Sequence[Any]:
        """The raw records at ``indices`` in the pipeline's epoch ``epoch``.

        The same records in every epoch (:meth:`read_records`), unless a source moves
        on between epochs, as a :class:`~datarax.sources.MixedSource` does.
        """
        return self.read_records(indices)

    def decode(self, raw: Any, index: int) -> dict[str, np.ndarray]:
        """One raw record as NumPy fields (the ``decoder`` given, else a mapping as is).

        Values are converted as :class:`~datarax.sources.MemorySource` converts them:
        float64 to float32 and 64-bit integers to 32 bits unless ``jax_enable_x64``.
        Text (``str``, ``bytes``) is kept, as arrays of dtype ``object``, for host
        operators to turn into numbers before batching.
        """
        value = self._decoder(raw) if self._decoder is not None else raw
        where = f"{self.name}, record {index}"
        if not isinstance(value, Mapping):
            raise SourceError(
                "decoded record is not a dict",
                where=where,
                expected="a dict of field name to array",
                found=type(value).__name__,
            )
        return record_fields(value, source=self.name, record=index, text=True)

    def decode_batch(self, raws: Sequence[Any], indices: np.ndarray) -> dict[str, Any] | None:
        """Many raw records decoded at once and stacked per field, or ``None``.

        A source whose records can be decoded together (one vectorised call)
        returns the stacked fields; the default returns ``None`` and records are
        decoded one by one with :meth:`decode`. A batch that fails is decoded
        again record by record, so errors always name the record.
        """
        return None

    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The fields of record 0 (decoded once); every record must match them.

        When record 0 cannot be read or decoded, the first good one of the next
        records gives the fields, and record 0 is left to the pipeline's bad-record
        policy.
        """
        if self._spec is None:
            if len(self) == 0:
                raise empty_source_error(self.name)
            record = first_good_record(
                ((i, partial(self._decoded, i)) for i in range(min(len(self), SPEC_ATTEMPTS))),
                self.name,
            )
            assert record is not None  # the source has records
            self._spec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in record.items()}
        return self._spec

    def _decoded(self, index: int) -> dict[str, np.ndarray]:
        return self.decode(self.read_records(np.asarray([index], np.int64))[0], index)

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Records at ``indices`` decoded, checked and stacked, on the calling thread."""
        indices = np.asarray(indices)
        spec = self.element_spec()
        out = {k: np.empty((indices.size, *s.shape), s.dtype) for k, s in spec.items()}
        for row, (index, raw) in enumerate(zip(indices, self.read_records(indices), strict=True)):
            store_record(out, row, self.decode(raw, int(index)), spec, self.name, int(index))
        return out

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "decoder": callable_name(self._decoder)}


class SequenceSource(RecordSource):
    """Any object with ``__len__`` and ``__getitem__`` as a source.

    This is Grain's random-access data-source protocol: Grain's own sources (such as
    ``grain.sources.ArrayRecordDataSource``), a list of dicts, or a dataset object of
    another library. When the object also has ``__getitems__`` (a batched read), it
    is used.

    Args:
        data: The records (``data[i]`` for ``0 <= i < len(data)``).
        decoder: Turns one raw record (e.g. bytes) into a dict of arrays.
        name: Shown in errors.

    Example:
        >>> import numpy as np
        >>> src = SequenceSource([b"\\x01\\x02", b"\\x03\\x04"],
        ...                      decoder=lambda b: {"x": np.frombuffer(b, np.uint8)})
        >>> src.read(np.array([1]))["x"].tolist()
        [[3, 4]]
    """

    def __init__(self, data: Any, *, decoder: Decoder | None = None, name: str | None = None):
        if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
            raise SourceError(
                "object is not a random-access source",
                where=name or "SequenceSource",
                expected="an object with __len__ and __getitem__",
                found=type(data).__name__,
            )
        super().__init__(decoder=decoder, name=name or f"SequenceSource[{type(data).__name__}]")
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def read_records(self, indices: np.ndarray) -> Sequence[Any]:
        keys = [int(i) for i in indices]
        getitems = getattr(self._data, "__getitems__", None)
        if getitems is not None:
            return list(getitems(keys))
        return [self._data[i] for i in keys]

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "data": type(self._data).__name__}


def store_record(
    out: dict[str, np.ndarray],
    row: int,
    record: Mapping[str, np.ndarray],
    spec: Mapping[str, jax.ShapeDtypeStruct],
    source: str,
    index: int,
) -> None:
    """Write one decoded record into row ``row`` of ``out`` after checking it against ``spec``.

    Raises:
        SchemaError: naming the source, the record and the field, when the record has
            other fields, or a field another shape or dtype, than ``spec``.
    """
    check_fields(record, spec, where=f"{source}, record {index}")
    for field, value in record.items():
        out[field][row] = value


def first_good_record(
    candidates: Iterable[tuple[int, Callable[[], dict[str, np.ndarray]]]], source: str
) -> dict[str, np.ndarray] | None:
    """The record of the first ``(record id, read)`` whose ``read()`` succeeds.

    Returns ``None`` when there are no candidates; when every one fails, raises the
    first one's error, naming its record.
    """
    first: tuple[DataraxError, BaseException] | None = None
    for index, read in candidates:
        try:
            return read()
        except Exception as exc:  # the next record may be good
            if first is None:
                first = (record_error(exc, source, index), exc)
    if first is not None:
        error, cause = first
        raise error from (None if error is cause else cause)
    return None


def record_error(exc: BaseException, source: str, record_id: int) -> DataraxError:
    """``exc`` as an error that names the source and the record."""
    if isinstance(exc, DataraxError):
        if exc.where and f"record {record_id}" in exc.where:
            return exc
        where = f"{source}, record {record_id}" + (f" ({exc.where})" if exc.where else "")
        return relocated(exc, where)
    return RecordError(
        "the record cannot be read",
        where=f"{source}, record {record_id}",
        expected="a source and decoder that read it",
        found=f"{type(exc).__name__}: {exc}",
    )


class StreamingSource(RecordSource):
    """Base class of sources read in order only (no random access).

    Subclasses implement :meth:`iterate`. Each record is read once per epoch: reads
    go forward through the stream and keep only records read ahead but not yet
    asked for, so a ``ShuffleNode(buffer_size)`` holds about one window of records.
    Asking for a record behind the stream (a new epoch, a restored state) starts the
    stream again from there with :meth:`iterate`. A global shuffle would hold the
    whole dataset and is refused when the pipeline is built.

    Args:
        num_records: Records in the stream; counted with one pass when not given.
        decoder: Turns one raw record into a dict of arrays.
        name: Shown in errors.
    """

    random_access = False

    def __init__(
        self,
        config: Config | None = None,
        *,
        num_records: int | None = None,
        decoder: Decoder | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(config, decoder=decoder, name=name)
        self._num_records = num_records
        self._lock = threading.Lock()
        self._stream: Iterator[Any] | None = None
        self._next = 0  # position of the stream's next record
        self._ahead: dict[int, Any] = {}

    @abc.abstractmethod
    def iterate(self, start: int) -> Iterator[Any]:
        """Raw records from position ``start`` of the stream on, in stream order."""

    def __len__(self) -> int:
        if self._num_records is None:
            self._num_records = sum(1 for _ in self.iterate(0))
        return self._num_records

    def read_records(self, indices: np.ndarray) -> Sequence[Any]:
        wanted = [int(i) for i in indices]
        with self._lock:
            behind = [i for i in wanted if i < self._next and i not in self._ahead]
            if self._stream is None or behind:
                # From the first record wanted: restarting clears the records read ahead.
                self._restart(min(wanted, default=0))
            last = max(wanted, default=-1)
            while self._next <= last:
                try:
                    self._ahead[self._next] = next(self._stream)  # type: ignore[arg-type]
                except StopIteration:
                    raise SourceError(
                        "the stream ended early",
                        where=f"{self.name}, record {self._next}",
                        expected=f"{len(self)} records",
                        found=f"{self._next} records",
                    ) from None
                self._next += 1
            out = [self._ahead[i] for i in wanted]
            for i in set(wanted):
                del self._ahead[i]
            return out

    def seek(self, start: int) -> None:
        """Position the stream at record ``start`` (restarting it unless it is there)."""
        with self._lock:
            if self._stream is None or self._next != start or self._ahead:
                self._restart(start)

    def __getstate__(self) -> dict[str, Any]:
        # The lock and the open stream stay behind: a copy starts its stream anew.
        state = dict(self.__dict__)
        state.update(_lock=None, _stream=None, _next=0, _ahead={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _restart(self, start: int) -> None:
        self._ahead.clear()
        self._stream = iter(self.iterate(start))
        self._next = start

    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        if self._spec is None:
            head = enumerate(itertools.islice(self.iterate(0), SPEC_ATTEMPTS))
            record = first_good_record(
                ((i, partial(self.decode, raw, i)) for i, raw in head), self.name
            )
            if record is None:
                raise empty_source_error(self.name)
            self._spec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in record.items()}
        return self._spec
