"""Grain as its users write it: ``MapDataset.source(...)``, ``shuffle``, ``batch``, ``map``.

Records are read one by one through Grain (as from any random-access source), batched by
Grain, and the scenario's transform runs vectorised on each batch (``random_map`` when
it draws random numbers, with the generator Grain gives it). Iteration uses
``to_iter_dataset`` with no reader threads: on 2 cores Grain's default of 16 threads was
slower. W4 pads each record in a ``map`` before batching; AR reads the file through
``grain.sources.ArrayRecordDataSource`` and decodes each record in a ``map``. PACK packs
the token lists with Grain's own first-fit packer, ``FirstFitPackIterDataset``. The
training scenarios run the same pipeline (short last batches dropped) and feed its NumPy
batches to the jitted train step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from datarax.benchmarking.adapters.base import BuildContext, MakePass
from datarax.benchmarking.records_file import decode_record, write_records
from datarax.benchmarking.scenarios import PACK_SEQ_LEN, SEQUENCE_LENGTH, Scenario

UNSUPPORTED: dict[str, str] = {}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the Grain pipeline; each pass reseeds its shuffle and its random maps."""
    import grain

    if scenario.name == "PACK":
        return packing_passes(scenario, context)
    return _passes(scenario, context, grain)


def build_training(scenario: Scenario, context: BuildContext) -> Any:
    """The training loop fed by the Grain pipeline: ``for batch in ds: train_step(...)``."""
    import grain

    from datarax.benchmarking.training import PerBatchLoop

    return PerBatchLoop(scenario, _passes(scenario, context, grain))


#: PACK: bins Grain's first-fit packer fills before it hands them out (rows close as
#: often as datarax's windows of ``PACK_WINDOW_BATCHES`` x ``PACK_READ_BATCH`` records).
PACK_BINS = 64


def packing_passes(scenario: Scenario, context: BuildContext) -> MakePass:
    """PACK: ``grain.experimental.FirstFitPackIterDataset`` over the token lists, batched.

    Records are ``{"tokens": array}`` read through Grain in order; the packer fills
    ``PACK_BINS`` rows of ``PACK_SEQ_LEN`` tokens first-fit and emits them in order
    (``shuffle_bins=False``, as datarax does); ``batch`` stacks ``scenario.batch_size``
    rows with their ``tokens_segment_ids`` and ``tokens_positions``, padding the last
    batch of an epoch with empty rows (``batch_and_pad``), as datarax does.
    """
    import grain

    source = _TokenRecords(context.data["tokens"])
    # Every batch full size, the last one padded with empty rows, as datarax's.
    pad_batch = functools.partial(grain.experimental.batch_and_pad, batch_size=scenario.batch_size)
    read_options = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)

    def one_pass() -> Iterator[Any]:
        for _ in range(scenario.epochs_per_pass):  # rows never mix two epochs, as datarax's
            packed = grain.experimental.FirstFitPackIterDataset(
                grain.MapDataset.source(source).to_iter_dataset(read_options),
                length_struct={"tokens": PACK_SEQ_LEN},
                num_packing_bins=PACK_BINS,
                shuffle_bins=False,
            )
            yield from packed.batch(scenario.batch_size, batch_fn=pad_batch)

    return one_pass


def _passes(scenario: Scenario, context: BuildContext, grain: Any) -> MakePass:
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
        ds = ds.batch(scenario.batch_size, drop_remainder=scenario.drop_remainder)
        ds = ds.repeat(scenario.epochs_per_pass)
        ds = ds.random_map(transform) if scenario.stochastic else ds.map(transform)
        return iter(ds.to_iter_dataset(read_options))

    return one_pass


class _TokenRecords:
    """The token lists as a random-access sequence of ``{"tokens": array}`` records."""

    def __init__(self, tokens: np.ndarray) -> None:
        self._tokens = tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {"tokens": self._tokens[index]}


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
