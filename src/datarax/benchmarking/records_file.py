"""The ArrayRecord file of the ``AR`` scenario, read by every system.

Every system reads the same file: the W2 images and labels written by
:func:`datarax.sources.write_array_record` (one record per chunk, uncompressed by
ArrayRecord). Peers decode a record with :func:`datarax.sources.codec.decode_record`
(one ``frombuffer`` per field) or a batch of records with
:func:`~datarax.sources.codec.decode_records` (one view per field for the batch):
the cheapest decoding the format allows, in each framework's own map or batch step.

Example:
    >>> import numpy as np, tempfile, os
    >>> from datarax.sources.codec import encode_record
    >>> raw = encode_record({"image": np.zeros((32, 32, 3), np.uint8), "label": np.int32(7)})
    >>> int(decode_record(raw)["label"]), decode_batch([raw, raw])["image"].shape
    (7, (2, 32, 32, 3))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datarax.sources.codec import decode_record, decode_records

__all__ = ["decode_batch", "decode_record", "open_records", "write_records"]


def decode_batch(raws: Sequence[bytes]) -> dict[str, np.ndarray]:
    """Several records back as stacked arrays (one view per field for the batch)."""
    out = decode_records(raws)
    if out is None:  # records of the scenario share one header: never reached
        records = [decode_record(raw) for raw in raws]
        out = {k: np.stack([r[k] for r in records]) for k in records[0]}
    return out


def write_records(path: str | Path, data: dict[str, np.ndarray]) -> str:
    """Write ``data["image"]``/``data["label"]`` to an ArrayRecord file; returns the path."""
    from datarax.sources import write_array_record

    write_array_record(path, {"image": data["image"], "label": data["label"]})
    return str(path)


def open_records(path: str | Path) -> Any:
    """A random-access reader of the file (``len``, ``[i]``, ``__getitems__``)."""
    from array_record.python.array_record_data_source import ArrayRecordDataSource

    return ArrayRecordDataSource(str(path))
