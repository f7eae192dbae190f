"""`DefaultBatcher`: how an epoch's positions are cut into batches."""

from __future__ import annotations

from dataclasses import dataclass

from datarax.batching.geometry import Geometry
from datarax.core.config import Config, require_bool, require_positive
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
        require_bool(self, "drop_remainder")


class DefaultBatcher(DataraxModule):
    """Cuts an epoch's positions into batches of ``batch_size``.

    A short last batch is kept at its true size unless ``drop_remainder``; the
    compiled pipeline computes it padded to ``batch_size`` (so nothing recompiles)
    and hands it out unpadded. The positions of every batch come from
    :meth:`geometry`, the same :class:`~datarax.batching.Geometry` the pipeline's
    iterator cuts its chunks with.

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

    @property
    def drop_remainder(self) -> bool:
        """Whether an epoch's short last batch is dropped."""
        return self.config.drop_remainder

    @property
    def stage(self) -> tuple[int, bool]:
        """``(batch_size, drop_remainder)``: this batcher as one stage of a geometry."""
        return (self.batch_size, self.drop_remainder)

    def geometry(self, num_records: int) -> Geometry:
        """The batch grid of an epoch of ``num_records`` positions."""
        return Geometry(num_records, (self.stage,))

    def epoch_end(self, num_records: int) -> int:
        """The position after an epoch's last yielded record."""
        return self.geometry(num_records).epoch_end

    def bounds(self, num_records: int, start: int = 0) -> list[tuple[int, int]]:
        """``(start, size)`` of every batch from position ``start`` to the epoch's end."""
        rest = self.geometry(num_records).remaining(start)
        return [(start + b, size) for b, size in rest.output_bounds(0, rest.num_records, 0)]
