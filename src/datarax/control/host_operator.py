"""`HostFunction`: a per-record Python function as the host plane runs it.

Device operators are compiled by XLA; some work is not JAX at all: parsing bytes,
tokenising text, calling a C library. Such a function runs on each record before
batching, on the pipeline's worker pool. Its output for a record depends only on
the record (and, when stochastic, on the pipeline seed, the epoch and the record
id), never on the number of workers or the order they finish in.

Pipelines take it as a node, :class:`~datarax.dag.nodes.HostOperator`; this is
the picklable part the workers receive.

Example:
    >>> import numpy as np
    >>> double = HostFunction(lambda r: {"x": r["x"] * 2}, label="double")
    >>> double.apply({"x": np.arange(3)}, seed=0, epoch=0, record_id=0)["x"].tolist()
    [0, 2, 4]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from datarax.core.identity import function_identity
from datarax.core.rng import mix64, stream_id

RecordFn = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class HostFunction:
    """``fn`` applied to one record at a time, with its per-record generator.

    Args:
        fn: ``fn(record) -> record`` (dicts of field name to NumPy array), or with
            ``stochastic=True`` ``fn(record, rng)``. Picklable to run on worker
            processes (a module-level function or a picklable callable object).
        stochastic: Pass a ``numpy.random.Generator`` seeded from (pipeline seed,
            ``stream_name``, epoch, record id).
        stream_name: Names the random stream (default: ``label``).
        label: Shown in descriptions and errors (default: the function's name).
    """

    fn: RecordFn
    stochastic: bool = False
    stream_name: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        label = self.label or getattr(self.fn, "__name__", type(self.fn).__name__)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "stream_name", self.stream_name or label)
        object.__setattr__(self, "stochastic", bool(self.stochastic))

    @property
    def name(self) -> str:
        """``HostOperator(<label>)``, as errors name it."""
        return f"HostOperator({self.label})"

    def rng(self, seed: int, epoch: int, record_id: int) -> np.random.Generator:
        """The generator this function uses for one record of one epoch."""
        return np.random.default_rng(mix64(seed, stream_id(self.stream_name), epoch, record_id))

    def apply(
        self, record: dict[str, np.ndarray], seed: int, epoch: int, record_id: int
    ) -> Mapping[str, Any]:
        """``fn`` on one record (with its generator when stochastic)."""
        if self.stochastic:
            return self.fn(record, self.rng(seed, epoch, record_id))
        return self.fn(record)

    def fingerprint(self) -> dict[str, Any]:
        """What determines this function's output (with a digest of its code)."""
        fn = self.fn
        # Two lambdas (or an edited function) differ, so a state is not restored
        # into a pipeline that computes other records.
        return {
            "type": "HostOperator",
            "fn": f"{getattr(fn, '__module__', '?')}.{function_identity(fn)}",
            "stochastic": self.stochastic,
            "stream": self.stream_name,
        }
