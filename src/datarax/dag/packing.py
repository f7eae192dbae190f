"""`PackedPipeline`: a pipeline's token sequences packed into rows of ``seq_len``.

Reads windows of the pipeline's batches (see :mod:`datarax.dag.windows`), packs the
sequences of each window with :func:`~datarax.operators.text.packing.pack_sequences`
(first-fit or best-fit) and hands the rows out ``batch_size`` at a time, as batches
of ``tokens``, ``segment_ids`` and ``positions``. A batch never spans two epochs:
the last batch of an epoch is filled with empty rows (all padding, segment 0). The
other fields of the records are not carried into packed rows.

Example:
    >>> import numpy as np
    >>> from datarax import from_source
    >>> from datarax.operators.text import PackConfig
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> rows = [np.arange(1, n + 1, dtype=np.int32) for n in (3, 1, 2, 4)]
    >>> src = MemorySource(MemorySourceConfig(pad_to={"tokens": 4}), data={"tokens": rows})
    >>> packed = PackedPipeline(from_source(src, 2), PackConfig(seq_len=4, batch_size=2))
    >>> batch = next(iter(packed))
    >>> batch["tokens"].tolist(), batch["segment_ids"].tolist()
    ([[1, 2, 3, 1], [1, 2, 0, 0]], [[1, 1, 1, 2], [1, 1, 0, 0]])
    >>> batch.record_ids.tolist()
    [0, 2]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from datarax.core.batch import Batch
from datarax.core.errors import PipelineBuildError, SchemaError
from datarax.dag.windows import Window, WindowedPipeline
from datarax.operators.base import field_of
from datarax.operators.text.packing import PackConfig, PackedRows, pack_sequences

if TYPE_CHECKING:
    from datarax.dag.pipeline import Pipeline


class PackedPipeline(WindowedPipeline):
    """The sequences of ``pipeline`` packed into rows of ``config.seq_len``.

    Args:
        pipeline: Yields the token field (``(width,)`` integers per record) and its
            length field (an integer per record).
        config: Row length, rows per batch, algorithm, window and field names.

    Raises:
        SchemaError: when the pipeline does not yield the fields ``config`` names.
    """

    def __init__(self, pipeline: Pipeline, config: PackConfig) -> None:
        if not isinstance(config, PackConfig):
            raise PipelineBuildError(
                "wrong config type",
                where="PackedPipeline",
                expected="PackConfig",
                found=type(config).__name__,
            )
        self.config = config
        self.items_per_batch = config.batch_size
        super().__init__(pipeline, config.window_batches)

    def check_spec(self, data_spec: dict[str, jax.ShapeDtypeStruct]) -> None:
        check_sequence_fields(data_spec, self.config.field, self.config.lengths, "PackedPipeline")

    def window(self, fields: dict[str, np.ndarray], record_ids: np.ndarray, epoch: int) -> Window:
        config = self.config
        rows = pack_sequences(fields[config.field], fields[config.lengths], record_ids, config)

        def take(start: int, stop: int) -> PackedRows:
            return PackedRows(
                rows.tokens[start:stop],
                rows.segment_ids[start:stop],
                rows.positions[start:stop],
                rows.record_ids[start:stop],
            )

        return Window(epoch=epoch, count=rows.num_rows, take=take)

    def assemble(self, parts: list[Any], epoch: int) -> Batch:
        config = self.config
        size, seq_len = config.batch_size, config.seq_len
        tokens = np.full((size, seq_len), config.pad_id, np.int32)
        segments = np.zeros((size, seq_len), np.int32)
        positions = np.zeros((size, seq_len), np.int32)
        record_ids = np.full(size, -1, np.int32)
        row = 0
        for part in parts:
            stop = row + part.num_rows
            tokens[row:stop], segments[row:stop] = part.tokens, part.segment_ids
            positions[row:stop], record_ids[row:stop] = part.positions, part.record_ids
            row = stop
        data = {
            config.field: tokens,
            config.segment_field: segments,
            config.position_field: positions,
        }
        return Batch(data, record_ids=record_ids, epoch=epoch)

    def stage_fingerprint(self) -> dict[str, Any]:
        return {"type": "packing", **self.config.to_dict()}

    def __repr__(self) -> str:
        c = self.config
        return f"Pack({c.algorithm}, seq_len={c.seq_len}, batch_size={c.batch_size})"


def check_sequence_fields(
    data_spec: dict[str, jax.ShapeDtypeStruct], field: str, lengths: str, where: str
) -> None:
    """Raise unless ``field`` is ``(width,)`` integers and ``lengths`` an integer per record."""
    for name, rank, what in ((field, 1, "(width,)"), (lengths, 0, "()")):
        spec = field_of(data_spec, name, where)
        if len(spec.shape) != rank or not np.issubdtype(spec.dtype, np.integer):
            raise SchemaError(
                "not a sequence field" if rank else "not a length field",
                where=f"{where}, field '{name}'",
                expected=f"integers of shape {what} per record",
                found=f"{spec.dtype}{tuple(spec.shape)}",
            )
