"""`HostOperator`: a per-record Python function on the host plane (decode, tokenise, pad).

Device operators are compiled by XLA; some work is not JAX at all: parsing bytes,
tokenising text, calling a C library. A host operator runs such a function on each
record before batching, on the pipeline's worker pool (``from_source(...,
workers=n)``). Its output for a record depends only on the record (and, when
stochastic, on the pipeline seed, the epoch and the record id), never on the number
of workers or the order they finish in.

Example:
    >>> import numpy as np
    >>> from datarax import from_source
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> src = MemorySource(MemorySourceConfig(placement="host"), data={"x": np.arange(4)})
    >>> double = HostOperator(lambda r: {"x": r["x"] * 2, "odd": r["x"] % 2})
    >>> [b["x"].tolist() for b in from_source(src, 2) >> double]
    [[0, 2], [4, 6]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from datarax.core.errors import PipelineBuildError
from datarax.core.rng import mix64, stream_id
from datarax.dag.base import Node
from datarax.operators.element import function_identity

RecordFn = Callable[..., Mapping[str, Any]]


class HostOperator(Node):
    """Applies ``fn`` to every record on the host plane, before batching.

    Args:
        fn: ``fn(record) -> record`` (dicts of field name to NumPy array), or with
            ``stochastic=True`` ``fn(record, rng)`` where ``rng`` is a
            ``numpy.random.Generator`` seeded from (pipeline seed, ``stream_name``,
            epoch, record id). To run on worker *processes* ``fn`` must be picklable
            (a module-level function or a picklable callable object).
        stochastic: Pass a per-record random generator.
        stream_name: Names the random stream (default: the function's name).
        name: Shown in descriptions and errors (default: the function's name).
    """

    __slots__ = ("fn", "stochastic", "stream_name", "label")
    device = False
    fn: RecordFn
    stochastic: bool
    stream_name: str
    label: str

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
        label = name or getattr(fn, "__name__", type(fn).__name__)
        self._init(
            fn=fn, stochastic=bool(stochastic), stream_name=stream_name or label, label=label
        )

    @property
    def name(self) -> str:
        return f"HostOperator({self.label})"

    def __repr__(self) -> str:
        return self.name

    def rng(self, seed: int, epoch: int, record_id: int) -> np.random.Generator:
        """The generator this operator uses for one record of one epoch."""
        return np.random.default_rng(mix64(seed, stream_id(self.stream_name), epoch, record_id))

    def apply(self, record: dict[str, np.ndarray], seed: int, epoch: int, record_id: int):
        """``fn`` on one record (with its generator when stochastic)."""
        if self.stochastic:
            return self.fn(record, self.rng(seed, epoch, record_id))
        return self.fn(record)

    def fingerprint(self) -> dict[str, Any]:
        fn = self.fn
        # With a digest of the code: two lambdas (or an edited function) differ, so a
        # state is not restored into a pipeline that computes other records.
        identity = function_identity(fn)
        return {
            "type": "HostOperator",
            "fn": f"{getattr(fn, '__module__', '?')}.{identity}",
            "stochastic": self.stochastic,
            "stream": self.stream_name,
        }
