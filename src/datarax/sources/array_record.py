"""`ArrayRecordSource`: records in ArrayRecord files, read at random, and `write_array_record`.

ArrayRecord files hold byte records with an index, so any record can be read
without scanning the file. :func:`write_array_record` stores dicts of arrays in the
datarax record encoding (:mod:`datarax.sources.codec`); :class:`ArrayRecordSource`
reads them back, from one file or from several taken as one dataset.

The ``array_record`` package is imported when a source is built or a file
written; without it, the error says to install ``datarax[array-record]``.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "train.arrayrecord")
    >>> write_array_record(path, {"x": np.arange(6).reshape(3, 2), "y": np.arange(3)})
    3
    >>> src = ArrayRecordSource(ArrayRecordSourceConfig(paths=path))
    >>> len(src), src.read(np.array([2, 0]))["x"].tolist()
    (3, [[4, 5], [0, 1]])
"""

from __future__ import annotations

import glob
import os
import threading
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import numpy as np

from datarax.core.config import Config
from datarax.core.errors import ConfigError, DataraxError, SourceError, relocated, written
from datarax.core.optional import require
from datarax.sources.base import callable_name, check_indices, empty_source_error
from datarax.sources.codec import decode_record, decode_records, encode_record
from datarax.sources.record import Decoder, RecordSource

PathLike = str | os.PathLike[str]

_MODULE = "array_record.python.array_record_module"
_EXTRA = "array-record"
_READER_OPTIONS = (
    "readahead_buffer_size",
    "max_parallelism",
    "index_storage_option",
    "footer_prefetch_bytes",
)
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class ArrayRecordSourceConfig(Config):
    """Which ArrayRecord files an :class:`ArrayRecordSource` reads, and how.

    Args:
        paths: One file, a glob pattern (its matches in sorted order), or a list of
            files and patterns. Records are numbered over the files one after another.
        reader_options: ArrayRecord reader options, ``"key:value"`` pairs joined by
            commas (``readahead_buffer_size``, ``max_parallelism``,
            ``index_storage_option``, ``footer_prefetch_bytes``). The default turns
            read-ahead off, which suits reading records in shuffled order, and reads
            each batch of records on the calling thread (``max_parallelism:1``):
            the pipeline's ``workers`` are the parallelism, each reading its share
            of a chunk (calls on several threads run in parallel).

    Example:
        >>> ArrayRecordSourceConfig(paths=["a.arrayrecord", "b.arrayrecord"]).reader_options
        'readahead_buffer_size:0,max_parallelism:1'
        >>> ArrayRecordSourceConfig(paths=[])
        Traceback (most recent call last):
        ...
        datarax.core.errors.ConfigError: ArrayRecordSourceConfig.paths: no files given; \
expected a path, a glob pattern or a non-empty list of them, found []
    """

    paths: PathLike | Sequence[PathLike]
    reader_options: str = "readahead_buffer_size:0,max_parallelism:1"

    def validate(self) -> None:
        where = f"{type(self).__name__}.paths"
        entries = _path_entries(self.paths)
        if entries is None or not entries:
            raise ConfigError(
                "no files given",
                where=where,
                expected="a path, a glob pattern or a non-empty list of them",
                found=repr(self.paths),
            )
        for i, entry in enumerate(entries):
            if not isinstance(entry, (str, os.PathLike)) or not os.fspath(entry):
                raise ConfigError(
                    f"entry {i} is not a path",
                    where=where,
                    expected="a non-empty str or path-like",
                    found=repr(entry),
                )
        _check_reader_options(self.reader_options, f"{type(self).__name__}.reader_options")


class ArrayRecordSource(RecordSource):
    """Records of one or more ArrayRecord files, read by index.

    Each record is decoded by ``decoder`` (by default
    :func:`~datarax.sources.codec.decode_record`, the encoding
    :func:`write_array_record` writes), then checked against record 0's fields.
    Files are opened on first use, one reader per file shared by all threads; a
    copy sent to another process (pickled) opens its own readers there.

    Args:
        config: The files and reader options.
        decoder: Turns one record's bytes into a dict of arrays.
        name: Shown in errors (default: the class name and the file or pattern).

    Raises:
        SourceError: when a file does not exist, a pattern matches no file, a file
            is not a readable ArrayRecord file, or a record cannot be read or decoded;
            the message names the file or the record.
        MissingDependencyError: when the ``array_record`` package is not installed.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> folder = tempfile.mkdtemp()
        >>> for part in range(2):
        ...     _ = write_array_record(os.path.join(folder, f"part-{part}.arrayrecord"),
        ...                            [{"v": np.full(2, part * 10 + i, np.int32)}
        ...                             for i in range(3)])
        >>> src = ArrayRecordSource(ArrayRecordSourceConfig(
        ...     paths=os.path.join(folder, "part-*.arrayrecord")))
        >>> len(src), src.read(np.array([4, 0]))["v"][:, 0].tolist()
        (6, [11, 0])
    """

    config_type = ArrayRecordSourceConfig
    config: ArrayRecordSourceConfig

    def __init__(
        self,
        config: ArrayRecordSourceConfig,
        *,
        decoder: Decoder | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        _array_record_module()
        # The base class applies no decoder: decode() runs this one and names the record.
        super().__init__(config, name=name or f"{type(self).__name__}[{_short(config.paths)}]")
        self._record_decoder: Decoder = decoder if decoder is not None else decode_record
        self._files = _resolve_files(config.paths, self.name)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._readers: list[Any] = [None] * len(self._files)
        self._starts: np.ndarray | None = None  # first global index of each file, then the total

    @property
    def files(self) -> tuple[str, ...]:
        """The files read, in record order."""
        return self._files

    def __len__(self) -> int:
        return int(self._file_starts()[-1])

    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        if len(self) == 0:
            raise empty_source_error(self.name, found=f"0 records in {', '.join(self._files)}")
        return super().element_spec()

    def read_records(self, indices: np.ndarray) -> list[bytes]:
        """The raw bytes of the records at ``indices`` (global over all files), in order."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        starts = self._file_starts()
        check_indices(index, int(starts[-1]), where=self.name)
        file_of = np.searchsorted(starts, index, side="right") - 1
        out: list[bytes] = [b""] * index.size
        for f in np.unique(file_of).tolist():
            rows = np.flatnonzero(file_of == f)
            records = self._read_file(f, index[rows], index[rows] - starts[f])
            for row, raw in zip(rows.tolist(), records, strict=True):
                out[row] = raw
        return out

    def decode(self, raw: Any, index: int) -> dict[str, np.ndarray]:
        """One record's bytes as NumPy fields; errors name this source and the record."""
        where = f"{self.name}, record {index}"
        try:
            value = self._record_decoder(raw)
        except DataraxError as exc:
            raise relocated(exc, f"{where}, {exc.where}" if exc.where else where) from exc
        except Exception as exc:  # a user's decoder: say which record it failed on
            raise SourceError(
                "the decoder failed",
                where=where,
                expected=f"{callable_name(self._record_decoder)} to return a dict of arrays",
                found=f"{type(exc).__name__}: {exc}",
            ) from exc
        return super().decode(value, index)

    def decode_batch(self, raws: Sequence[Any], indices: np.ndarray) -> dict[str, Any] | None:
        """Records in the datarax encoding that share a header, decoded with one view per field."""
        if self._record_decoder is not decode_record:
            return None
        return decode_records(raws)

    def fingerprint(self) -> dict[str, Any]:
        # Base names and sizes, not folders: a dataset moved elsewhere still restores.
        files = [[os.path.basename(f), os.path.getsize(f)] for f in self._files]
        return {
            **super().fingerprint(),
            "decoder": callable_name(self._record_decoder),
            "files": files,
        }

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_readers"] = [None] * len(self._files)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._lock = threading.Lock()
        self._pid = os.getpid()

    # -- readers ---------------------------------------------------------------------

    def _file_starts(self) -> np.ndarray:
        if self._starts is None:
            counts = [self._reader(f).num_records() for f in range(len(self._files))]
            self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        return self._starts

    def _reader(self, f: int) -> Any:
        if self._pid != os.getpid():  # a forked process: readers' threads did not follow
            self._lock = threading.Lock()
            self._readers = [None] * len(self._files)
            self._pid = os.getpid()
        reader = self._readers[f]
        if reader is None:
            with self._lock:
                reader = self._readers[f]
                if reader is None:
                    reader = _open_reader(self._files[f], self.config.reader_options, self.name)
                    self._readers[f] = reader
        return reader

    def _read_file(self, f: int, index: np.ndarray, local: np.ndarray) -> list[bytes]:
        reader = self._reader(f)
        try:
            return list(reader.read(local.tolist()))
        except RuntimeError as exc:
            i, j, error = _failing_record(reader, index, local, exc)
            raise SourceError(
                "record cannot be read",
                where=f"{self.name}, record {i} (record {j} of '{self._files[f]}')",
                expected="an intact ArrayRecord record",
                found=str(error) or "an unreadable record",
            ) from error


def write_array_record(
    path: PathLike,
    records: Iterable[Mapping[str, Any]] | Mapping[str, Any],
    *,
    compress: Collection[str] = (),
    level: int = 6,
    options: str = "group_size:1,uncompressed",
) -> int:
    """Write records (dicts of arrays) to one ArrayRecord file; return how many were written.

    Each record is stored with :func:`~datarax.sources.codec.encode_record`. The file
    is written under a temporary name in the same folder and renamed when complete,
    so ``path`` never holds a partly written file.

    Args:
        path: The file to write (its folder must exist); an existing file is replaced.
        records: An iterable of dicts of arrays, or a dict of columns (field name to
            an array whose first axis is the record axis), written row by row.
        compress: Names of the fields to store zlib-compressed.
        level: zlib compression level (1 fastest, 9 smallest).
        options: ArrayRecord writer options; ``group_size:1`` puts each record in
            its own chunk, so reading one record reads only that record, and
            ``uncompressed`` leaves compression to the fields named in ``compress``
            (a chunk compressed by ArrayRecord costs a decompression at every read).

    Raises:
        SourceError: when the folder does not exist, a record is not a dict of
            numeric arrays, or columns differ in length.
        ConfigError: when ArrayRecord refuses ``options``.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "data.arrayrecord")
        >>> write_array_record(path, [{"image": np.zeros((4, 4), np.uint8)}] * 5,
        ...                    compress=["image"])
        5
    """
    module = _array_record_module("write_array_record")
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    where = f"write_array_record('{target}')"
    if not os.path.isdir(folder):
        raise SourceError(
            "the folder does not exist",
            where=where,
            expected=f"an existing folder '{folder}'",
            found="no such folder",
        )
    rows = _rows(records, where)
    temporary = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
    try:
        with written(target, "write the record file"):
            count = _write_rows(module, temporary, rows, options, where, compress, level)
            _sync(temporary)
            os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return count


# -- writing ---------------------------------------------------------------------------


def _write_rows(
    module: ModuleType,
    temporary: str,
    rows: Iterator[Any],
    options: str,
    where: str,
    compress: Collection[str],
    level: int,
) -> int:
    try:
        writer = module.ArrayRecordWriter(temporary, options)
    except ValueError as exc:  # ArrayRecord's message lists the valid options
        raise ConfigError(
            "ArrayRecord refuses the writer options",
            where=f"{where}, options",
            expected="options ArrayRecordWriter accepts",
            found=f"{options!r} ({exc})",
        ) from exc
    count = 0
    try:
        for record in rows:
            writer.write(_encode(record, f"{where}, record {count}", compress, level))
            count += 1
    finally:
        _close(writer, where)
    return count


def _encode(record: Any, where: str, compress: Collection[str], level: int) -> bytes:
    if not isinstance(record, Mapping):
        raise SourceError(
            "record is not a dict", where=where, expected="a dict of arrays", found=type(record)
        )
    try:
        return encode_record(record, compress=compress, level=level)
    except DataraxError as exc:
        field = (exc.where or "").removeprefix("encode_record").lstrip(", ")
        raise relocated(exc, f"{where}, {field}" if field else where) from exc


def _close(writer: Any, where: str) -> None:
    try:
        writer.close()
    except RuntimeError as exc:
        raise SourceError(
            "the file cannot be written", where=where, expected="a complete file", found=str(exc)
        ) from exc


def _sync(path: str) -> None:
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def _rows(records: Any, where: str) -> Iterator[Any]:
    if not isinstance(records, Mapping):
        return iter(records)
    columns = {str(k): np.asarray(v) for k, v in records.items()}
    lengths = {k: (len(v) if v.ndim else None) for k, v in columns.items()}
    if not columns or None in lengths.values() or len(set(lengths.values())) != 1:
        raise SourceError(
            "columns do not share one record axis",
            where=where,
            expected="a dict of arrays with the same first dimension",
            found={k: tuple(v.shape) for k, v in columns.items()},
        )
    n = next(iter(lengths.values())) or 0
    return ({k: v[i] for k, v in columns.items()} for i in range(n))


# -- reading ---------------------------------------------------------------------------


def _array_record_module(feature: str = "ArrayRecordSource") -> ModuleType:
    return require(_MODULE, _EXTRA, feature)


def _open_reader(path: str, options: str, source: str) -> Any:
    module = _array_record_module()
    where = f"{source}, file '{path}'"
    try:
        reader = module.ArrayRecordReader(path, options)
    except ValueError as exc:
        raise ConfigError(
            "ArrayRecord refuses the reader options",
            where=where,
            expected="options ArrayRecordReader accepts",
            found=f"{options!r} ({exc})",
        ) from exc
    if reader.ok():
        return reader
    # A reader that failed to open reports why when closed.
    try:
        reader.close()
        reason = ""
    except RuntimeError as exc:
        reason = str(exc)
    raise SourceError(
        "file is not a readable ArrayRecord file",
        where=where,
        expected="an intact ArrayRecord file",
        found=reason or f"{os.path.getsize(path)} bytes it cannot open (truncated?)",
    )


def _failing_record(
    reader: Any, index: np.ndarray, local: np.ndarray, error: RuntimeError
) -> tuple[int, int, RuntimeError]:
    """The first record of a failed batched read that fails alone (the read does not say)."""
    for i, j in zip(index.tolist(), local.tolist(), strict=True):
        try:
            reader.read([j])
        except RuntimeError as exc:
            return i, j, exc
    return int(index[0]), int(local[0]), error


def _resolve_files(paths: Any, source: str) -> tuple[str, ...]:
    files: list[str] = []
    for entry in _path_entries(paths) or []:
        text = os.fspath(entry)
        if _GLOB_CHARS.intersection(text):
            matches = [m for m in sorted(glob.glob(text)) if os.path.isfile(m)]
            if not matches:
                raise SourceError(
                    "no file matches the pattern",
                    where=source,
                    expected=f"at least one file matching '{text}'",
                    found="no match",
                )
            files.extend(matches)
        elif not os.path.isfile(text):
            raise SourceError(
                "the file does not exist",
                where=source,
                expected=f"an ArrayRecord file at '{text}'",
                found="a folder" if os.path.isdir(text) else "no such file",
            )
        else:
            files.append(text)
    return tuple(files)


def _path_entries(paths: Any) -> list[Any] | None:
    if isinstance(paths, (str, os.PathLike)):
        return [paths] if os.fspath(paths) else []
    if isinstance(paths, (list, tuple)):
        return list(paths)
    return None


def _short(paths: Any) -> str:
    entries = _path_entries(paths) or []
    if len(entries) == 1:
        return Path(os.fspath(entries[0])).name
    return f"{len(entries)} paths"


def _check_reader_options(options: Any, where: str) -> None:
    if not isinstance(options, str):
        raise ConfigError(
            "reader options are not a string",
            where=where,
            expected='"key:value" pairs joined by commas',
            found=repr(options),
        )
    for option in filter(None, options.split(",")):
        key, _, value = option.partition(":")
        if key.strip() not in _READER_OPTIONS or not value.strip():
            raise ConfigError(
                "unknown or incomplete reader option",
                where=where,
                expected=f"key:value with a key among {', '.join(_READER_OPTIONS)}",
                found=repr(option),
            )
