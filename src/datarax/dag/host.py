"""Host-plane nodes: where records come from, their order, host operators, batching, prefetching.

These nodes run before the compiled function: they decide which records enter each
chunk, what Python work is done on each record and how far ahead the host works.
They sit at the start of a pipeline (``PrefetchNode`` may be placed anywhere at its
top level). The machinery that runs them lives below, in :mod:`datarax.control`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from datarax.batching.default import DefaultBatcher, DefaultBatcherConfig
from datarax.control.bad_records import BadRecordPolicy, as_policy
from datarax.control.host_operator import HostFunction, RecordFn
from datarax.control.workers import WorkerMode
from datarax.core.config import check_bool, check_int, check_seed
from datarax.core.errors import PipelineBuildError
from datarax.dag.base import Node
from datarax.samplers.base import Sampler
from datarax.samplers.sequential import SequentialSampler, SequentialSamplerConfig
from datarax.samplers.shuffle import ShuffleSampler, ShuffleSamplerConfig
from datarax.samplers.window import WindowShuffleConfig, WindowShuffleSampler
from datarax.sources.base import DataSource, empty_source_error
from datarax.sources.record import SequenceSource


class DataSourceNode(Node):
    """Reads records from a source in the order a sampler gives, epoch after epoch.

    Args:
        source: The data source.
        sampler: Record order (default: sequential, or shuffled when ``shuffle``).
        shuffle: Use a fresh permutation each epoch (ignored when ``sampler`` is given).
        seed: Pipeline seed: shuffle order and operator keys derive from it.
        num_epochs: Epochs per iteration (``None`` = forever).
        workers: Host-plane workers for per-record reads and host operators.
        worker_mode: ``"thread"`` or ``"process"``.
        bad_records: ``"raise"``, ``"skip"`` or a :class:`~datarax.control.BadRecordPolicy`.

    Any object with ``__len__`` and ``__getitem__`` (Grain's random-access protocol)
    is accepted as ``source`` and read through a
    :class:`~datarax.sources.record.SequenceSource`.
    """

    __slots__ = (
        "source",
        "sampler",
        "seed",
        "num_epochs",
        "workers",
        "worker_mode",
        "bad_records",
    )
    device = False
    source: DataSource
    sampler: Sampler
    seed: int
    num_epochs: int | None
    workers: int
    worker_mode: WorkerMode
    bad_records: BadRecordPolicy

    def __init__(
        self,
        source: DataSource | Any,
        *,
        sampler: Sampler | None = None,
        shuffle: bool = False,
        seed: int = 0,
        num_epochs: int | None = 1,
        workers: int = 0,
        worker_mode: WorkerMode = "thread",
        bad_records: BadRecordPolicy | str = "raise",
    ) -> None:
        if isinstance(source, Mapping):
            raise PipelineBuildError(
                "a dict is not a source",
                where="DataSourceNode",
                expected="MemorySource(MemorySourceConfig(), data=columns) for a dict of columns",
                found=f"dict with keys {sorted(map(str, source))[:8]}",
            )
        if not isinstance(source, DataSource):
            if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
                raise PipelineBuildError(
                    "not a data source",
                    where="DataSourceNode",
                    expected="a datarax DataSource, or an object with __len__ and __getitem__",
                    found=type(source).__name__,
                )
            source = SequenceSource(source)
        seed = check_seed(seed, where="DataSourceNode(seed=...)", error=PipelineBuildError)
        shuffle = check_bool(shuffle, where="DataSourceNode(shuffle=...)", error=PipelineBuildError)
        workers = check_int(
            workers,
            where="DataSourceNode",
            minimum=0,
            error=PipelineBuildError,
            message="invalid number of workers",
        )
        if worker_mode not in ("thread", "process"):
            raise PipelineBuildError(
                "unknown worker mode",
                where="DataSourceNode",
                expected="'thread' or 'process'",
                found=repr(worker_mode),
            )
        if shuffle and sampler is None and not source.random_access:
            raise PipelineBuildError(
                "a streaming source cannot be shuffled globally",
                where=source.name,
                expected="shuffle=False, then ShuffleNode(buffer_size) to shuffle in windows",
                found="shuffle=True",
            )
        num_epochs = check_int(
            num_epochs,
            where="DataSourceNode",
            minimum=1,
            allow_none=True,
            error=PipelineBuildError,
            message="invalid number of epochs",
        )
        if len(source) == 0:
            raise empty_source_error(source.name)
        if sampler is not None:
            check_sampler(sampler, len(source))
        if sampler is None:
            sampler = (
                ShuffleSampler(ShuffleSamplerConfig(num_records=len(source), seed=seed))
                if shuffle
                else SequentialSampler(SequentialSamplerConfig(num_records=len(source)))
            )
        self._init(
            source=source,
            sampler=sampler,
            seed=seed,
            num_epochs=num_epochs,
            workers=workers,
            worker_mode=worker_mode,
            bad_records=as_policy(bad_records),
        )

    def __repr__(self) -> str:
        order = type(self.sampler).__name__.removesuffix("Sampler")
        return f"{self.source.name}[{len(self.source)}, {order.lower()}, seed={self.seed}]"

    def fingerprint(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "source": self.source.fingerprint(),
            "sampler": self.sampler.fingerprint(),
            "seed": self.seed,
            "num_epochs": self.num_epochs,
        }


class BatchNode(Node):
    """Groups records into batches.

    Args:
        batch_size: Records per batch (or give ``batcher``).
        drop_remainder: Drop each epoch's short last batch.
        batcher: A configured batcher instead of the two arguments above.
    """

    __slots__ = ("batcher",)
    device = False
    batcher: DefaultBatcher

    def __init__(
        self,
        batch_size: int | None = None,
        *,
        drop_remainder: bool = False,
        batcher: DefaultBatcher | None = None,
    ) -> None:
        if batcher is None:
            if batch_size is None:
                raise PipelineBuildError(
                    "no batch size",
                    where="BatchNode",
                    expected="batch_size=int or batcher=DefaultBatcher",
                    found="neither",
                )
            batcher = DefaultBatcher(
                DefaultBatcherConfig(batch_size=batch_size, drop_remainder=drop_remainder)
            )
        elif not isinstance(batcher, DefaultBatcher):
            raise PipelineBuildError(
                "not a batcher",
                where="BatchNode(batcher=...)",
                expected="a DefaultBatcher",
                found=type(batcher).__name__,
            )
        elif batch_size is not None and batch_size != batcher.batch_size:
            raise PipelineBuildError(
                "two batch sizes",
                where="BatchNode",
                expected=f"batch_size=None or the batcher's {batcher.batch_size}",
                found=f"batch_size={batch_size!r}",
            )
        self._init(batcher=batcher)

    @property
    def batch_size(self) -> int:
        """Records per batch."""
        return self.batcher.batch_size

    @property
    def drop_remainder(self) -> bool:
        """Whether each epoch's short last batch is dropped."""
        return self.batcher.drop_remainder

    def __repr__(self) -> str:
        drop = ", drop_remainder" if self.drop_remainder else ""
        return f"Batch({self.batch_size}{drop})"

    def fingerprint(self) -> dict[str, Any]:
        return {"type": self.name, **self.batcher.config.to_dict()}


class ShuffleNode(Node):
    """Shuffles records within windows of ``buffer_size`` consecutive positions.

    Made for sources read in order, where a global permutation is out of reach: only
    one window needs to be read to emit it. The order is deterministic for a seed,
    differs every epoch (window boundaries move too) and resumes exactly from a
    position (see :class:`~datarax.samplers.window.WindowShuffleSampler`). Place it
    before the first device node; ``from_source(...) >> ShuffleNode(...)`` shuffles
    records before they are grouped into batches.

    Args:
        buffer_size: Positions per window (larger mixes more).
        seed: Seed of the window permutations.

    Example:
        >>> import numpy as np
        >>> from datarax import from_source
        >>> from datarax.sources import MemorySource, MemorySourceConfig
        >>> src = MemorySource(MemorySourceConfig(), data={"x": np.arange(8)})
        >>> batches = from_source(src, 8) >> ShuffleNode(4, seed=3)
        >>> sorted(next(iter(batches))["x"].tolist())
        [0, 1, 2, 3, 4, 5, 6, 7]
    """

    __slots__ = ("config",)
    device = False
    config: WindowShuffleConfig

    def __init__(self, buffer_size: int, seed: int = 0) -> None:
        self._init(config=WindowShuffleConfig(buffer_size=buffer_size, seed=seed))

    @property
    def buffer_size(self) -> int:
        """Positions per window."""
        return self.config.buffer_size

    def apply(self, sampler: Sampler) -> Sampler:
        """``sampler``'s order shuffled within windows."""
        return WindowShuffleSampler(self.config, base=sampler)

    def __repr__(self) -> str:
        return f"Shuffle(buffer={self.buffer_size}, seed={self.config.seed})"

    def fingerprint(self) -> dict[str, Any]:
        return {"type": self.name, **self.config.to_dict()}


class PrefetchNode(Node):
    """How many chunks the host plane prepares ahead of the consumer.

    Prefetched chunks are already dispatched to the device, so the next batch is
    on its way to (or already on) the device when the current one is handed out.
    The depth never changes the stream, so it is not part of the pipeline's
    fingerprint: a state saved with one depth restores with another.

    Args:
        buffer_size: Chunks prepared ahead (``0``: computed when asked for).

    Example:
        >>> PrefetchNode(4)
        Prefetch(4)
    """

    __slots__ = ("buffer_size",)
    device = False
    buffer_size: int

    def __init__(self, buffer_size: int = 2) -> None:
        depth = check_prefetch(buffer_size, "PrefetchNode")
        self._init(buffer_size=depth)

    def __repr__(self) -> str:
        return f"Prefetch({self.buffer_size})"

    def fingerprint(self) -> dict[str, Any]:
        return {"type": self.name}


def check_prefetch(depth: Any, where: str) -> int:
    """A prefetch depth: an int >= 0 (a :class:`PipelineBuildError` otherwise)."""
    return check_int(
        depth, where=where, minimum=0, error=PipelineBuildError, message="invalid prefetch depth"
    )


class HostOperator(Node):
    """Applies ``fn`` to every record on the host plane, before batching.

    Runs on the pipeline's worker pool (``from_source(..., workers=n)``); the
    result never depends on the number of workers or the order they finish in.

    Args:
        fn: ``fn(record) -> record`` (dicts of field name to NumPy array), or with
            ``stochastic=True`` ``fn(record, rng)`` where ``rng`` is a
            ``numpy.random.Generator`` seeded from (pipeline seed, ``stream_name``,
            epoch, record id). To run on worker *processes* ``fn`` must be picklable
            (a module-level function or a picklable callable object).
        stochastic: Pass a per-record random generator.
        stream_name: Names the random stream (default: the function's name).
        name: Shown in descriptions and errors (default: the function's name).

    Example:
        >>> import numpy as np
        >>> from datarax import from_source
        >>> from datarax.sources import MemorySource, MemorySourceConfig
        >>> src = MemorySource(MemorySourceConfig(placement="host"), data={"x": np.arange(4)})
        >>> double = HostOperator(lambda r: {"x": r["x"] * 2, "odd": r["x"] % 2})
        >>> [b["x"].tolist() for b in from_source(src, 2) >> double]
        [[0, 2], [4, 6]]
    """

    __slots__ = ("function",)
    device = False
    function: HostFunction

    def __init__(
        self,
        fn: RecordFn,
        *,
        stochastic: bool = False,
        stream_name: str | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(fn):
            raise PipelineBuildError(
                "not a function",
                where="HostOperator",
                expected="a callable record -> record",
                found=type(fn).__name__,
            )
        stochastic = check_bool(
            stochastic, where="HostOperator(stochastic=...)", error=PipelineBuildError
        )
        function = HostFunction(fn, stochastic, stream_name or "", name or "")
        self._init(function=function)

    @property
    def fn(self) -> RecordFn:
        """The record function."""
        return self.function.fn

    @property
    def stochastic(self) -> bool:
        """Whether ``fn`` receives a per-record generator."""
        return self.function.stochastic

    @property
    def stream_name(self) -> str:
        """The random stream's name."""
        return self.function.stream_name

    @property
    def name(self) -> str:
        return self.function.name

    def __repr__(self) -> str:
        return self.name

    def rng(self, seed: int, epoch: int, record_id: int) -> np.random.Generator:
        """The generator ``fn`` gets for one record of one epoch."""
        return self.function.rng(seed, epoch, record_id)

    def fingerprint(self) -> dict[str, Any]:
        return self.function.fingerprint()


def check_sampler(sampler: Any, num_records: int) -> None:
    """Raise unless ``sampler`` is a :class:`Sampler` whose ids fit ``num_records`` records."""
    if not isinstance(sampler, Sampler):
        raise PipelineBuildError(
            "not a sampler",
            where="DataSourceNode(sampler=...)",
            expected="a datarax Sampler (e.g. ShuffleSampler)",
            found=type(sampler).__name__,
        )
    addressed = sampler.records_addressed
    if addressed is not None and addressed > num_records:
        raise PipelineBuildError(
            "the sampler addresses more records than the source has",
            where="DataSourceNode(sampler=...)",
            expected=f"record ids in [0, {num_records})",
            found=f"{type(sampler).__name__} over {addressed} records",
        )
