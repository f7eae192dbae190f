"""`BucketedPipeline`: a pipeline's records batched by length, each bucket its own batch size.

Reads windows of the pipeline's batches (see :mod:`datarax.dag.windows`), sorts the
records of each window into length buckets with
:func:`~datarax.operators.text.bucketing.plan_buckets` and hands out one batch per
bucket batch: ``batch_sizes[i]`` records whose token field is cut to
``boundaries[i]``. Every bucket has one shape, so a train step compiles once per
bucket. Records keep all their fields.

Example:
    >>> import numpy as np
    >>> from datarax import from_source
    >>> from datarax.operators.text import BucketConfig
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> rows = [np.arange(1, n + 1, dtype=np.int32) for n in (1, 3, 2, 4)]
    >>> src = MemorySource(MemorySourceConfig(pad_to={"tokens": 4}), data={"tokens": rows})
    >>> config = BucketConfig(boundaries=(2, 4), batch_sizes=(2, 2))
    >>> [b["tokens"].tolist() for b in BucketedPipeline(from_source(src, 4), config)]
    [[[1, 0], [1, 2]], [[1, 2, 3, 0], [1, 2, 3, 4]]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from datarax.core.batch import Batch
from datarax.core.errors import PipelineBuildError
from datarax.dag.packing import check_sequence_fields
from datarax.dag.windows import Window, WindowedPipeline
from datarax.operators.text.bucketing import BucketConfig, gather_bucket, plan_buckets

if TYPE_CHECKING:
    from datarax.dag.pipeline import Pipeline


class BucketedPipeline(WindowedPipeline):
    """The records of ``pipeline`` batched by length bucket.

    Args:
        pipeline: Yields the token field (``(width,)`` integers per record) and its
            length field (an integer per record), and any other fields.
        config: Boundaries, batch sizes, window and field names.

    Part-full batches (at the end of a window) are padded with rows of record id
    ``-1`` and length 0, or dropped with ``drop_remainder``.
    """

    def __init__(self, pipeline: Pipeline, config: BucketConfig) -> None:
        if not isinstance(config, BucketConfig):
            raise PipelineBuildError(
                "wrong config type",
                where="BucketedPipeline",
                expected="BucketConfig",
                found=type(config).__name__,
            )
        self.config = config
        super().__init__(pipeline, config.window_batches)

    def check_spec(self, data_spec: dict[str, jax.ShapeDtypeStruct]) -> None:
        check_sequence_fields(data_spec, self.config.field, self.config.lengths, "BucketedPipeline")

    def window(self, fields: dict[str, np.ndarray], record_ids: np.ndarray, epoch: int) -> Window:
        config = self.config
        plan = plan_buckets(fields[config.lengths], config, record_ids)

        def take(start: int, stop: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
            ((bucket, rows),) = plan[start:stop]
            data, real = gather_bucket(fields, bucket, rows, config)
            ids = np.full(config.batch_sizes[bucket], -1, np.int32)
            ids[:real] = record_ids[rows]
            return data, ids

        return Window(epoch=epoch, count=len(plan), take=take)

    def assemble(self, parts: list[Any], epoch: int) -> Batch:
        ((data, record_ids),) = parts
        return Batch(data, record_ids=record_ids, epoch=epoch)

    def stage_fingerprint(self) -> dict[str, Any]:
        return {"type": "bucketing", **self.config.to_dict()}

    def __repr__(self) -> str:
        return f"Bucket(boundaries={self.config.boundaries}, batch_sizes={self.config.batch_sizes})"
