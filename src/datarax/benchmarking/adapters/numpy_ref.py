"""The NumPy reference: permute once per epoch, fancy-index each batch, vectorised transform.

For W4 it has two variants: a vectorised gather from one flat token array (built once),
and a per-record Python loop (the ``numpy-loop`` system). For the ArrayRecord scenario it
reads each batch with one batched read and decodes it with one ``frombuffer``. MEL runs
with one BLAS thread, as librosa does (see
:func:`~datarax.benchmarking.adapters.base.one_blas_thread`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from datarax.benchmarking.adapters.base import BuildContext, MakePass, one_blas_thread
from datarax.benchmarking.records_file import decode_batch, open_records, write_records
from datarax.benchmarking.scenarios import FlatTokens, Scenario

UNSUPPORTED: dict[str, str] = {}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the NumPy reference (``options["loop"]``: W4's per-record loop)."""
    rng = np.random.default_rng(1)
    n = context.num_records
    fetch, transform = _fetch_and_transform(scenario, context)

    def batches() -> Iterator[dict[str, np.ndarray]]:
        for _ in range(scenario.epochs_per_pass):
            order = rng.permutation(n) if scenario.shuffle else np.arange(n)
            for start in range(0, n, scenario.batch_size):
                idx = order[start : start + scenario.batch_size]
                yield transform(fetch(idx), rng, context.stats)

    def one_pass() -> Iterator[dict[str, np.ndarray]]:
        if scenario.name != "MEL":  # the only scenario whose transform multiplies matrices
            return batches()
        return _with_one_blas_thread(batches())

    return one_pass


def _with_one_blas_thread(batches: Iterator[dict[str, np.ndarray]]) -> Iterator[Any]:
    with one_blas_thread():
        yield from batches


def _fetch_and_transform(scenario: Scenario, context: BuildContext) -> tuple[Callable, Callable]:
    data = context.data
    if scenario.storage == "ragged" and not context.options.get("loop"):
        flat = FlatTokens.of(data["tokens"])  # the padding is done by the gather itself
        return flat.pad, lambda batch, _rng, _stats: batch
    if scenario.storage == "array_record":
        reader = open_records(write_records(context.workdir / "records.array_record", data))
        return lambda idx: decode_batch(reader.__getitems__(idx.tolist())), scenario.numpy_fn
    return lambda idx: {k: v[idx] for k, v in data.items()}, scenario.numpy_fn
