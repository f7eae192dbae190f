"""Length bucketing: records of similar length batched together, each bucket its own size.

A record whose length is at most ``boundaries[i]`` (and more than
``boundaries[i - 1]``) belongs to bucket ``i``; its token field is cut (or padded)
to ``boundaries[i]``, and the bucket's records are batched ``batch_sizes[i]`` at a
time, so short sequences come in large batches of short rows. Records are taken in
the order they come; a batch is emitted when its bucket is full, and the part-full
buckets at the end of a window follow, in bucket order. The plan is a pure
function of the lengths and their order.

Example:
    >>> config = BucketConfig(boundaries=(2, 4), batch_sizes=(2, 1))
    >>> [(b, rows.tolist()) for b, rows in plan_buckets(np.array([1, 3, 2, 4]), config)]
    [(1, [1]), (0, [0, 2]), (1, [3])]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from datarax.core.config import Config, require_bool, require_positive
from datarax.core.errors import ConfigError, RecordError
from datarax.operators.text.fields import require_field_name, require_token_id


@dataclass(frozen=True)
class BucketConfig(Config):
    """Args:
    boundaries: The longest length of each bucket, increasing.
    batch_sizes: Records per batch of each bucket (one per boundary).
    field: The token field (``(width,)`` per record), cut or padded to its
        bucket's boundary; the other fields are batched as they are.
    length_field: The number of real tokens of each record (default
        ``<field>_length``); a record longer than the last boundary is an error.
    window_batches: Upstream batches bucketed together; buckets are emptied at the
        end of a window and of an epoch.
    drop_remainder: Drop the part-full batches at the end of a window; otherwise
        they are padded to the bucket's batch size with rows of record id ``-1``,
        zeros, ``pad_id`` tokens and length 0.
    pad_id: Token of the padding.
    """

    boundaries: tuple[int, ...] = (32, 64, 128)
    batch_sizes: tuple[int, ...] = (32, 16, 8)
    field: str = "tokens"
    length_field: str | None = None
    window_batches: int = 4
    drop_remainder: bool = False
    pad_id: int = 0

    def validate(self) -> None:
        _require_ints(self, "boundaries")
        _require_ints(self, "batch_sizes")
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:], strict=False)):
            raise ConfigError(
                "boundaries must increase",
                where="BucketConfig.boundaries",
                expected="strictly increasing lengths",
                found=repr(self.boundaries),
            )
        if len(self.batch_sizes) != len(self.boundaries):
            raise ConfigError(
                "one batch size per bucket",
                where="BucketConfig.batch_sizes",
                expected=f"{len(self.boundaries)} batch sizes (one per boundary)",
                found=f"{len(self.batch_sizes)}: {self.batch_sizes!r}",
            )
        require_field_name(self, "field")
        require_field_name(self, "length_field", allow_none=True)
        require_positive(self, "window_batches")
        require_bool(self, "drop_remainder")
        require_token_id(self, "pad_id")

    @property
    def lengths(self) -> str:
        """The length field's name."""
        return self.length_field or f"{self.field}_length"


def bucket_of(lengths: np.ndarray, config: BucketConfig, record_ids: np.ndarray) -> np.ndarray:
    """The bucket of each length (a :class:`RecordError` for one past the last boundary)."""
    lengths = np.asarray(lengths, np.int64)
    buckets = np.searchsorted(np.asarray(config.boundaries), lengths, side="left")
    bad = np.flatnonzero((buckets >= len(config.boundaries)) | (lengths < 0))
    if bad.size:
        raise RecordError(
            "sequence length outside the buckets",
            where=f"bucketing, record {int(record_ids[bad[0]])}, field '{config.lengths}'",
            expected=f"a length in [0, {config.boundaries[-1]}] (the last boundary)",
            found=int(lengths[bad[0]]),
        )
    return buckets


def plan_buckets(
    lengths: np.ndarray, config: BucketConfig, record_ids: np.ndarray | None = None
) -> list[tuple[int, np.ndarray]]:
    """The batches of one window: ``(bucket, rows)`` in the order they are emitted.

    Full batches come in the order their last record arrives; then each part-full
    bucket's batch (unless ``drop_remainder``), in bucket order.
    """
    ids = np.arange(len(lengths)) if record_ids is None else np.asarray(record_ids)
    buckets = bucket_of(lengths, config, ids)
    full: list[tuple[int, int, np.ndarray]] = []
    rest: list[tuple[int, np.ndarray]] = []
    for bucket, size in enumerate(config.batch_sizes):
        rows = np.flatnonzero(buckets == bucket)
        whole = rows.size // size * size
        for start in range(0, whole, size):
            batch = rows[start : start + size]
            full.append((int(batch[-1]), bucket, batch))
        if whole < rows.size and not config.drop_remainder:
            rest.append((bucket, rows[whole:]))
    full.sort(key=lambda entry: entry[0])
    return [(bucket, rows) for _, bucket, rows in full] + rest


def gather_bucket(
    fields: dict[str, np.ndarray], bucket: int, rows: np.ndarray, config: BucketConfig
) -> tuple[dict[str, np.ndarray], int]:
    """The batch of ``rows`` for ``bucket``: fields gathered, tokens cut to the boundary.

    A part-full batch is padded to the bucket's batch size (see ``drop_remainder``).
    Returns the fields and the number of real rows.
    """
    size, boundary = config.batch_sizes[bucket], config.boundaries[bucket]
    out: dict[str, Any] = {}
    for name, values in fields.items():
        batch = np.zeros((size, *values.shape[1:]), values.dtype)
        batch[: rows.size] = values[rows]
        out[name] = batch
    tokens = fields[config.field]
    width = tokens.shape[1]
    cut = np.full((size, boundary), config.pad_id, tokens.dtype)
    cut[: rows.size, : min(width, boundary)] = tokens[rows, :boundary]
    out[config.field] = cut
    return out, int(rows.size)


def _require_ints(config: Config, field: str) -> None:
    values = getattr(config, field)
    ok = isinstance(values, (tuple, list)) and len(values) > 0
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)
    if not ok:
        raise ConfigError(
            "must be positive integers",
            where=f"{type(config).__name__}.{field}",
            expected="a non-empty tuple of ints > 0",
            found=repr(values),
        )
    object.__setattr__(config, field, tuple(values))
