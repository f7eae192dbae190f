"""Grain as its users write it: ``MapDataset.source(...)``, ``shuffle``, ``batch``, ``map``.

Records are read one by one through Grain (as from any random-access source), batched by
Grain, and the scenario's transform runs vectorised on each batch (``random_map`` when
it draws random numbers, with the generator Grain gives it). Iteration uses
``to_iter_dataset`` with no reader threads: on 2 cores Grain's default of 16 threads was
slower. W4 pads each record in a ``map`` before batching; AR reads the file through
``grain.sources.ArrayRecordDataSource`` and decodes each record in a ``map``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from datarax.benchmarking.adapters.base import BuildContext, MakePass
from datarax.benchmarking.records_file import decode_record, write_records
from datarax.benchmarking.scenarios import SEQUENCE_LENGTH, Scenario

UNSUPPORTED: dict[str, str] = {}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the Grain pipeline; each pass reseeds its shuffle and its random maps."""
    import grain

    source, per_record = _source(scenario, context, grain)
    read_options = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
    transform = _batch_transform(scenario, context.stats)
    passes = [0]

    def one_pass() -> Iterator[Any]:
        passes[0] += 1
        ds = grain.MapDataset.source(source).seed(passes[0])
        if scenario.shuffle:
            ds = ds.shuffle()
        if per_record is not None:
            ds = ds.map(per_record)
        ds = ds.batch(scenario.batch_size).repeat(scenario.epochs_per_pass)
        ds = ds.random_map(transform) if scenario.stochastic else ds.map(transform)
        return iter(ds.to_iter_dataset(read_options))

    return one_pass


def _source(scenario: Scenario, context: BuildContext, grain: Any) -> tuple[Any, Callable | None]:
    data = context.data
    if scenario.storage == "array_record":
        path = write_records(context.workdir / "records.array_record", data)
        return grain.sources.ArrayRecordDataSource(path), decode_record
    if scenario.storage == "ragged":
        return list(data["tokens"]), _pad_one
    return _Records(data), None


def _batch_transform(scenario: Scenario, stats: Any) -> Callable:
    if scenario.storage == "ragged":
        return lambda batch: batch  # padded record by record before batching
    if scenario.stochastic:
        return lambda batch, rng: scenario.numpy_fn(batch, rng, stats)
    unused = np.random.default_rng(0)  # a deterministic transform draws nothing from it
    return lambda batch: scenario.numpy_fn(batch, unused, stats)


def _pad_one(tokens: np.ndarray) -> dict[str, np.ndarray]:
    n = min(len(tokens), SEQUENCE_LENGTH)
    padded = np.zeros(SEQUENCE_LENGTH, np.int32)
    padded[:n] = tokens[:n]
    return {"tokens": padded, "tokens_length": np.asarray(n, np.int32)}


class _Records:
    """The scenario's arrays as a random-access sequence of record dicts."""

    def __init__(self, data: dict[str, np.ndarray]) -> None:
        self._data = data
        self._length = len(next(iter(data.values())))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {k: v[index] for k, v in self._data.items()}
