"""The record encoding datarax writes: a dict of NumPy arrays as one ``bytes`` value.

Layout of one encoded record (all integers little-endian)::

    b"DRX1"                  4 bytes, magic
    header length H          uint32
    header                   H bytes of UTF-8 JSON:
                             {"fields": [{"name": str, "dtype": str (NumPy, e.g. "<u1"),
                                          "shape": [int, ...], "nbytes": int,
                                          "codec": "raw" | "zlib"}, ...]}
    payload                  the fields' bytes one after another, in header order
                             (C order; "zlib" fields are zlib-compressed)

Records of one dataset share their header (same fields, shapes and dtypes), so a
decoder parses each distinct header once. Values are read back without copies
(except for compressed fields); zlib inflation releases the GIL, so thread workers
decode compressed records in parallel.

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
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from datarax.core.errors import SourceError

MAGIC = b"DRX1"
_PREFIX = struct.Struct("<4sI")
_CODECS = ("raw", "zlib")
#: Parsed headers by their bytes: (name, dtype, shape, stored bytes, compressed?) per field.
_HEADERS: dict[bytes, list[tuple[str, np.dtype, tuple[int, ...], int, bool]]] = {}


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
        if array.dtype.hasobject:
            raise SourceError(
                "field is not a numeric array",
                where=f"encode_record, field '{name}'",
                expected="a NumPy array of numbers or bytes",
                found=f"dtype {array.dtype}",
            )
        data = array.tobytes()
        codec = "zlib" if name in compress else "raw"
        if codec == "zlib":
            data = zlib.compress(data, level)
        fields.append(
            {
                "name": str(name),
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "nbytes": len(data),
                "codec": codec,
            }
        )
        payload.append(data)
    header = json.dumps({"fields": fields}, separators=(",", ":")).encode()
    return b"".join([_PREFIX.pack(MAGIC, len(header)), header, *payload])


def decode_record(raw: bytes) -> dict[str, np.ndarray]:
    """The fields of one record written by :func:`encode_record`.

    Raises:
        SourceError: when ``raw`` is not such a record (wrong magic, truncated,
            sizes that do not add up), saying what was expected and found.
    """
    view = memoryview(raw)
    if len(view) < _PREFIX.size:
        raise SourceError(
            "record is too short",
            expected=f"at least {_PREFIX.size} bytes",
            found=f"{len(view)} bytes",
        )
    magic, size = _PREFIX.unpack_from(view)
    if magic != MAGIC:
        raise SourceError(
            "record is not in the datarax encoding",
            expected=f"the magic bytes {MAGIC!r}",
            found=repr(bytes(magic)),
            hint="Pass decoder= to read records written another way",
        )
    start = _PREFIX.size + size
    fields = _parse_header(bytes(view[_PREFIX.size : start]))
    total = start + sum(f[3] for f in fields)
    if len(view) != total:
        raise SourceError(
            "record size does not match its header",
            expected=f"{total} bytes",
            found=f"{len(view)} bytes",
        )
    out: dict[str, np.ndarray] = {}
    offset = start
    for name, dtype, shape, nbytes, compressed in fields:
        chunk = view[offset : offset + nbytes]
        offset += nbytes
        if compressed:
            try:
                chunk = memoryview(zlib.decompress(chunk))
            except zlib.error as exc:
                raise SourceError(
                    f"field '{name}' cannot be decompressed",
                    expected="zlib data",
                    found=str(exc),
                ) from exc
        count = int(np.prod(shape, dtype=np.int64))
        if len(chunk) != count * dtype.itemsize:
            raise SourceError(
                f"field '{name}' has the wrong size",
                expected=f"{count * dtype.itemsize} bytes for {dtype}{shape}",
                found=f"{len(chunk)} bytes",
            )
        out[name] = np.frombuffer(chunk, dtype, count).reshape(shape)
    return out


def _parse_header(header: bytes) -> list[tuple[str, np.dtype, tuple[int, ...], int, bool]]:
    parsed = _HEADERS.get(header)
    if parsed is not None:
        return parsed
    try:
        fields = json.loads(header)["fields"]
        parsed = [
            (
                str(f["name"]),
                np.dtype(f["dtype"]),
                tuple(int(d) for d in f["shape"]),
                int(f["nbytes"]) if f["codec"] == "zlib" else _raw_size(f),
                _codec(f["codec"]),
            )
            for f in fields
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceError(
            "record header is not readable",
            expected='JSON {"fields": [{"name", "dtype", "shape", "nbytes", "codec"}, ...]}',
            found=f"{header[:60]!r} ({exc})",
        ) from exc
    if len(_HEADERS) < 1024:  # a dataset has a handful of distinct headers
        _HEADERS[header] = parsed
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
