"""`DefaultBatcher`: how an epoch's positions are cut into batches, and how records stack."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from datarax.core.config import Config, require_positive
from datarax.core.errors import ConfigError, SchemaError
from datarax.core.module import DataraxModule


@dataclass(frozen=True)
class DefaultBatcherConfig(Config):
    """Args:
    batch_size: Records per batch.
    drop_remainder: Drop an epoch's last batch when it is short.
    """

    batch_size: int = 32
    drop_remainder: bool = False

    def validate(self) -> None:
        require_positive(self, "batch_size")
        if not isinstance(self.drop_remainder, bool):
            raise ConfigError(
                "must be a bool",
                where="DefaultBatcherConfig.drop_remainder",
                expected="True or False",
                found=repr(self.drop_remainder),
            )


class DefaultBatcher(DataraxModule):
    """Cuts positions ``[start, n)`` into batches of ``batch_size``.

    A short last batch is kept at its true size unless ``drop_remainder``; the
    compiled pipeline computes it padded to ``batch_size`` (so nothing recompiles)
    and hands it out unpadded.

    Example:
        >>> b = DefaultBatcher(DefaultBatcherConfig(batch_size=4))
        >>> b.bounds(10)
        [(0, 4), (4, 4), (8, 2)]
        >>> DefaultBatcher(DefaultBatcherConfig(batch_size=4, drop_remainder=True)).bounds(10)
        [(0, 4), (4, 4)]
    """

    config_type = DefaultBatcherConfig
    config: DefaultBatcherConfig

    @property
    def batch_size(self) -> int:
        """Records per batch."""
        return self.config.batch_size

    def epoch_end(self, num_records: int) -> int:
        """The position after an epoch's last yielded record."""
        if self.config.drop_remainder:
            return num_records - num_records % self.batch_size
        return num_records

    def bounds(self, num_records: int, start: int = 0) -> list[tuple[int, int]]:
        """``(start, size)`` of every batch from position ``start`` to the epoch's end."""
        end = self.epoch_end(num_records)
        return [(s, min(self.batch_size, end - s)) for s in range(start, end, self.batch_size)]

    def collate(self, records: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Stack per-record dicts into one dict of arrays, checking shapes and dtypes."""
        first = records[0]
        for i, record in enumerate(records):
            if set(record) != set(first):
                raise SchemaError(
                    "record has different fields than the batch's first record",
                    where=f"{self.name}, batch row {i}",
                    expected=sorted(first),
                    found=sorted(record),
                )
        out = {}
        for field, ref in first.items():
            ref = np.asarray(ref)
            for i, record in enumerate(records):
                value = np.asarray(record[field])
                if value.shape != ref.shape or value.dtype != ref.dtype:
                    raise SchemaError(
                        "record does not match the batch's first record",
                        where=f"{self.name}, batch row {i}, field '{field}'",
                        expected=f"{ref.dtype}{ref.shape}",
                        found=f"{value.dtype}{value.shape}",
                    )
            out[field] = np.stack([np.asarray(r[field]) for r in records])
        return out

    @staticmethod
    def pad(columns: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        """Pad every field on axis 0 to ``size`` rows by repeating row 0."""
        n = len(next(iter(columns.values())))
        if n == size:
            return columns
        fill = np.zeros(size - n, dtype=np.int64)
        return {k: np.concatenate([v, np.take(v, fill, axis=0)]) for k, v in columns.items()}
