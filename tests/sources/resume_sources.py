"""Pipelines over in-memory record sources, built the same way in any process."""

from __future__ import annotations

import numpy as np

from datarax import from_source
from datarax.dag.nodes import HostOperator
from datarax.sources import MemorySource, MemorySourceConfig, MixedSource, MixedSourceConfig

RECORDS = 45


def _rows(n: int, offset: int) -> dict[str, np.ndarray]:
    return {"x": offset + np.arange(n, dtype=np.int32), "y": np.full((n, 2), offset, np.float32)}


class Records:
    """Grain's random-access protocol: ``len`` and ``[i]`` (and a batched ``__getitems__``)."""

    def __len__(self) -> int:
        return RECORDS

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {"x": np.int32(i), "y": np.full(2, i / 2, np.float32)}

    def __getitems__(self, ids: list[int]) -> list[dict[str, np.ndarray]]:
        return [self[i] for i in ids]


def double(record: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**record, "x": record["x"] * 2}


def build(name: str):
    """The pipeline called ``name``: three epochs, shuffled, short last batches."""
    if name == "mixed":
        sources = [
            MemorySource(MemorySourceConfig(placement="host"), data=_rows(n, 100 * i))
            for i, n in enumerate((20, 7, 3))
        ]
        mix = MixedSource(
            MixedSourceConfig(weights=(5, 3, 2), window=10, num_records=RECORDS, seed=4),
            sources=sources,
        )
        return from_source(mix, 4, shuffle=True, seed=1, num_epochs=3)
    if name == "grain":
        return from_source(Records(), 4, shuffle=True, seed=2, num_epochs=3, workers=2) >> (
            HostOperator(double)
        )
    if name == "padded":
        rng = np.random.default_rng(0)
        tokens = [rng.integers(1, 50, rng.integers(0, 12)).astype(np.int32) for _ in range(RECORDS)]
        source = MemorySource(MemorySourceConfig(pad_to={"tokens": 8}), data={"tokens": tokens})
        return from_source(source, 4, shuffle=True, seed=3, num_epochs=3)
    raise ValueError(name)
