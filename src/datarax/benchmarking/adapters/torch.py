"""PyTorch's ``DataLoader`` as its users write it for arrays in memory.

A map-style ``Dataset`` answers a whole batch of indices at once (a ``BatchSampler`` as the
loader's sampler, ``batch_size=None``): one fancy-indexed gather and the scenario's NumPy
transform per batch, which the loader turns into tensors. W4 is the classic per-record
dataset with a ``collate_fn`` built on ``pad_sequence``. AR reads a batch of records with
one ``__getitems__`` call on the ArrayRecord data source (workers are spawned for it:
its reader does not survive a fork). Workers come from the system
(0, or 2 persistent workers); each worker process draws from its own generator. The
training scenarios drop short last batches (``drop_last=True``) and keep the batches as
NumPy arrays with a ``numpy_collate`` function, as JAX's guide to PyTorch data loading
does, for the jitted train step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from datarax.benchmarking.adapters.base import BuildContext, MakePass
from datarax.benchmarking.records_file import decode_batch, open_records, write_records
from datarax.benchmarking.scenarios import SEQUENCE_LENGTH, Scenario

UNSUPPORTED: dict[str, str] = {}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the DataLoader; ``context.options["workers"]`` worker processes."""
    return _passes(scenario, context, collate=None)


def build_training(scenario: Scenario, context: BuildContext) -> Any:
    """The training loop fed by the DataLoader: ``for batch in loader: train_step(...)``."""
    from datarax.benchmarking.training import PerBatchLoop

    return PerBatchLoop(scenario, _passes(scenario, context, collate=numpy_collate))


def numpy_collate(batch: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every field of ``batch`` as a NumPy array (JAX's guide's ``numpy_collate``; a batch
    arrives whole from the dataset, so there is nothing to stack). Pure NumPy: it runs
    in forked workers, where JAX must not be used."""
    return {k: np.asarray(v) for k, v in batch.items()}


def _passes(scenario: Scenario, context: BuildContext, collate: Any) -> MakePass:
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    torch.manual_seed(0)
    workers = int(context.options.get("workers", 0))
    extra: dict[str, Any] = {"persistent_workers": True} if workers else {}
    if workers and scenario.storage == "array_record":
        extra["multiprocessing_context"] = "spawn"  # the file reader crashes in forked workers
    if scenario.storage == "ragged":
        dataset: Any = _TokenLists(context.data["tokens"])
        sampler: Any = RandomSampler(dataset) if scenario.shuffle else None
        loader = DataLoader(
            dataset,
            batch_size=scenario.batch_size,
            sampler=sampler,
            collate_fn=_pad_collate,
            num_workers=workers,
            **extra,
        )
    else:
        dataset = _BatchDataset(scenario, context)
        order = RandomSampler(dataset) if scenario.shuffle else SequentialSampler(dataset)
        if collate is not None:
            extra["collate_fn"] = collate
        loader = DataLoader(
            dataset,
            sampler=BatchSampler(order, scenario.batch_size, drop_last=scenario.drop_remainder),
            batch_size=None,
            num_workers=workers,
            **extra,
        )

    def one_pass() -> Iterator[Any]:
        for _ in range(scenario.epochs_per_pass):
            yield from loader

    return one_pass


class _BatchDataset:
    """Indexed by a list of record ids; returns the transformed batch as NumPy arrays."""

    def __init__(self, scenario: Scenario, context: BuildContext) -> None:
        self._transform = scenario.numpy_fn
        self._stats = context.stats
        self._length = context.num_records
        self._rng: np.random.Generator | None = None
        self._reader: Any = None
        self._pid = -1
        self._data: dict[str, np.ndarray] = context.data
        self._path: str | None = None
        if scenario.storage == "array_record":
            self._path = write_records(context.workdir / "records.array_record", context.data)
            self._data = {}  # records come from the file (and spawned workers copy less)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, indices: list[int]) -> dict[str, np.ndarray]:
        if self._pid != os.getpid():  # first call in this (worker) process
            self._open()
        if self._reader is not None:
            batch = decode_batch(self._reader.__getitems__(indices))
        else:
            idx = np.asarray(indices)
            batch = {k: v[idx] for k, v in self._data.items()}
        rng = self._rng
        assert rng is not None  # drawn by _open, called above in every process
        return self._transform(batch, rng, self._stats)

    def _open(self) -> None:
        import torch

        # Each worker draws from its own stream (torch seeds workers differently) and
        # opens its own file reader: neither is shared across a fork.
        self._pid = os.getpid()
        self._rng = np.random.default_rng(torch.initial_seed() % 2**63)
        self._reader = None if self._path is None else open_records(self._path)


class _TokenLists:
    """One token list per index, truncated to the sequence length, as a tensor."""

    def __init__(self, tokens: np.ndarray) -> None:
        self._tokens = tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def __getitem__(self, index: int) -> Any:
        import torch

        return torch.from_numpy(self._tokens[index][:SEQUENCE_LENGTH])


def _pad_collate(records: list[Any]) -> dict[str, Any]:
    import torch
    from torch.nn.utils.rnn import pad_sequence

    lengths = torch.tensor([len(r) for r in records], dtype=torch.int32)
    tokens = pad_sequence(records, batch_first=True, padding_value=0)
    if tokens.shape[1] < SEQUENCE_LENGTH:  # every record of the batch was short
        tokens = torch.nn.functional.pad(tokens, (0, SEQUENCE_LENGTH - tokens.shape[1]))
    return {"tokens": tokens, "tokens_length": lengths}
