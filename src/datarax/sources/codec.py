"""The record encoding datarax writes: a dict of NumPy arrays as one ``bytes`` value.

Layout of one encoded record (all integers little-endian)::

    b"DRX1"                  4 bytes, magic
    header length H          uint32
    header                   H bytes of UTF-8 JSON:
                             {"fields": [{"name": str, "dtype": str (NumPy, e.g. "<u1"),
                                          "shape": [int, ...], "nbytes": int,
                                          "codec": "raw" | "zlib"}, ...]}
    payload                  the fields one after another, in header order:
                             "raw":  nbytes bytes (C order)
                             "zlib": uint32 length L, then L bytes of zlib data that
                                     inflate to nbytes bytes (C order)

``nbytes`` is always the uncompressed size, so the records of one dataset share
their header; a decoder parses each distinct header once, and
:func:`decode_records` decodes many records with one NumPy view per field. Values
are read without copies (except compressed fields); zlib inflation releases the
GIL, so thread workers decode compressed records in parallel.

Example:
    >>> import numpy as np
    >>> raw = encode_record({"image": np.zeros((2, 2), np.uint8), "label": np.int32(7)})
    >>> rec = decode_record(raw)
    >>> rec["image"].shape, int(rec["label"])
    ((2, 2), 7)
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import ml_dtypes  # noqa: F401  (registers bfloat16 and the float8 types by name)
import numpy as np

from datarax.core.errors import SourceError

MAGIC = b"DRX1"
_PREFIX = struct.Struct("<4sI")
_LENGTH = struct.Struct("<I")
_CODECS = ("raw", "zlib")
#: Parsed headers by their bytes.
_HEADERS: dict[bytes, _Layout] = {}


def encode_record(
    record: Mapping[str, Any], *, compress: Collection[str] = (), level: int = 6
) -> bytes:
    """One record (field name to array or scalar) as bytes in the layout above.

    Args:
        record: Field name to a NumPy array or anything ``np.asarray`` accepts.
        compress: Names of the fields to store zlib-compressed.
        level: zlib compression level (1 fastest, 9 smallest).
    """
    unknown = set(compress) - set(record)
    if unknown:
        raise SourceError(
            "fields to compress are not in the record",
            where="encode_record",
            expected=f"names among {sorted(record)}",
            found=sorted(unknown),
        )
    fields, payload = [], []
    for name, value in record.items():
        array = np.asarray(value)  # tobytes() writes C order; keeps 0-d shapes
        if array.dtype.hasobject or array.dtype.names is not None:
            raise SourceError(
                "field is not a numeric array",
                where=f"encode_record, field '{name}'",
                expected="a NumPy array of numbers, str or bytes",
                found=f"dtype {array.dtype}",
            )
        data = array.tobytes()
        codec = "zlib" if name in compress else "raw"
        fields.append(
            {
                "name": str(name),
                # JAX's extra floats (bfloat16, float8) are known by name only.
                "dtype": array.dtype.name if array.dtype.kind == "V" else array.dtype.str,
                "shape": list(array.shape),
                "nbytes": len(data),
                "codec": codec,
            }
        )
        if codec == "zlib":
            packed = zlib.compress(data, level)
            payload.append(_LENGTH.pack(len(packed)))
            data = packed
        payload.append(data)
    header = json.dumps({"fields": fields}, separators=(",", ":")).encode()
    return b"".join([_PREFIX.pack(MAGIC, len(header)), header, *payload])


def decode_record(raw: bytes) -> dict[str, np.ndarray]:
    """The fields of one record written by :func:`encode_record`.

    Raises:
        SourceError: when ``raw`` is not such a record (wrong magic, truncated,
            sizes that do not add up), saying what was expected and found.
    """
    layout = _layout(raw)
    if not layout.compressed:
        if len(raw) != layout.total:
            raise _size_error(layout.total, len(raw))
        return {
            name: np.frombuffer(raw, dtype, count, offset).reshape(shape)
            for name, dtype, shape, count, offset in layout.views
        }
    return {
        name: np.frombuffer(data, dtype, count).reshape(shape)
        for (name, dtype, shape, count, _, _), data in zip(
            layout.fields, _payloads(raw, layout), strict=True
        )
    }


def decode_records(raws: Sequence[bytes]) -> dict[str, np.ndarray] | None:
    """Many records at once, stacked per field; ``None`` unless they share one header.

    Uncompressed records are decoded with one NumPy view per field over all
    records; compressed fields are inflated record by record (zlib releases the
    GIL) and stacked. Records with different headers return ``None``: decode them
    one by one. Errors are those of :func:`decode_record`.
    """
    if not raws:
        return None
    layout = _layout(raws[0])
    prefix = bytes(raws[0][: layout.start])
    if not all(raw.startswith(prefix) for raw in raws):
        return None
    n = len(raws)
    if not layout.compressed:
        if any(len(raw) != layout.total for raw in raws):
            return None
        rows = np.frombuffer(b"".join(raws), np.uint8).reshape(n, layout.total)
        return {  # strided views over the joined bytes: no further copy
            name: _column(rows, offset, dtype, count).reshape(n, *shape)
            for name, dtype, shape, count, offset in layout.views
        }
    pieces: list[list[bytes]] = [[] for _ in layout.fields]
    for raw in raws:
        for column, data in zip(pieces, _payloads(raw, layout), strict=True):
            column.append(data)
    return {
        name: np.frombuffer(b"".join(column), dtype).reshape(n, *shape)
        for (name, dtype, shape, _, _, _), column in zip(layout.fields, pieces, strict=True)
    }


def _column(rows: np.ndarray, offset: int, dtype: np.dtype, count: int) -> np.ndarray:
    """Bytes ``offset ..`` of every row viewed as ``count`` values of ``dtype``."""
    part = rows[:, offset : offset + count * dtype.itemsize]
    if offset % dtype.alignment:  # a misaligned view would be slow or refused: copy
        part = np.ascontiguousarray(part)
    return part.view(dtype)


def _payloads(raw: bytes, layout: _Layout) -> list[bytes]:
    """Each field's uncompressed bytes, checked against the header."""
    out, offset = [], layout.start
    for name, dtype, shape, _, nbytes, compressed in layout.fields:
        if compressed:
            if offset + _LENGTH.size > len(raw):
                raise _size_error(offset + _LENGTH.size, len(raw))
            (size,) = _LENGTH.unpack_from(raw, offset)
            offset += _LENGTH.size
            if offset + size > len(raw):
                raise _size_error(offset + size, len(raw))
            data = _inflate(raw[offset : offset + size], name)
            offset += size
            if len(data) != nbytes:
                raise SourceError(
                    f"field '{name}' has the wrong size",
                    expected=f"{nbytes} bytes for {dtype}{shape}",
                    found=f"{len(data)} bytes",
                )
        else:
            if offset + nbytes > len(raw):
                raise _size_error(offset + nbytes, len(raw))
            data = raw[offset : offset + nbytes]
            offset += nbytes
        out.append(data)
    if offset != len(raw):
        raise _size_error(offset, len(raw))
    return out


def _size_error(expected: int, found: int) -> SourceError:
    return SourceError(
        "record size does not match its header",
        expected=f"{expected} bytes",
        found=f"{found} bytes",
    )


class _Layout:
    """A parsed header: where the payload starts, its fields, and uncompressed offsets."""

    __slots__ = ("start", "fields", "total", "compressed", "views")

    def __init__(self, start: int, fields: list) -> None:
        self.start, self.fields = start, fields
        self.compressed = any(f[5] for f in fields)
        self.total = start + sum(f[4] for f in fields)  # the size when nothing is compressed
        offsets = np.cumsum([start] + [f[4] for f in fields])[:-1]
        self.views = [
            (f[0], f[1], f[2], f[3], int(o)) for f, o in zip(fields, offsets, strict=True)
        ]


def _layout(raw: bytes) -> _Layout:
    if len(raw) < _PREFIX.size:
        raise SourceError(
            "record is too short",
            expected=f"at least {_PREFIX.size} bytes",
            found=f"{len(raw)} bytes",
        )
    magic, size = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise SourceError(
            "record is not in the datarax encoding",
            expected=f"the magic bytes {MAGIC!r}",
            found=repr(bytes(magic)),
            hint="Pass decoder= to read records written another way",
        )
    start = _PREFIX.size + size
    header = bytes(raw[_PREFIX.size : start])
    layout = _HEADERS.get(header)
    if layout is None:
        layout = _Layout(start, _parse_header(header))
        if len(_HEADERS) < 1024:  # a dataset has a handful of distinct headers
            _HEADERS[header] = layout
    return layout


def _inflate(chunk: bytes, name: str) -> bytes:
    try:
        return zlib.decompress(chunk)
    except zlib.error as exc:
        raise SourceError(
            f"field '{name}' cannot be decompressed", expected="zlib data", found=str(exc)
        ) from exc


def _parse_header(header: bytes) -> list[tuple[str, np.dtype, tuple[int, ...], int, int, bool]]:
    try:
        fields = json.loads(header)["fields"]
        parsed = []
        for f in fields:
            dtype = np.dtype(f["dtype"])
            shape = tuple(int(d) for d in f["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            compressed = _codec(f["codec"])
            nbytes = _raw_size(f)
            parsed.append((str(f["name"]), dtype, shape, count, nbytes, compressed))
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceError(
            "record header is not readable",
            expected='JSON {"fields": [{"name", "dtype", "shape", "nbytes", "codec"}, ...]}',
            found=f"{header[:60]!r} ({exc})",
        ) from exc
    return parsed


def _raw_size(field: Mapping[str, Any]) -> int:
    size = int(np.prod(field["shape"], dtype=np.int64)) * np.dtype(field["dtype"]).itemsize
    if int(field["nbytes"]) != size:
        raise ValueError(f"field {field['name']!r} stores {field['nbytes']} bytes, not {size}")
    return size


def _codec(name: str) -> bool:
    if name not in _CODECS:
        raise ValueError(f"unknown codec {name!r}, expected one of {_CODECS}")
    return name == "zlib"
