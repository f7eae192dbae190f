"""HuggingFace ``datasets`` as a JAX user writes it: ``Dataset.from_dict(...)`` with typed
features, ``with_format("jax")``, ``shuffle(seed=epoch)`` and ``iter(batch_size=...)``.

Each batch arrives as JAX arrays and goes through the JAX reference's jitted, vmapped
per-record transform (keys from an ``id`` column, as the reference derives them). W4's
token lists are ragged, which the JAX format cannot stack, so W4 reads them in the NumPy
format and pads each batch with a loop. ``datasets`` has no ArrayRecord reader: AR is
skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from datarax.benchmarking.adapters.base import BuildContext, MakePass
from datarax.benchmarking.adapters.jax_ref import keyed_transform
from datarax.benchmarking.scenarios import Scenario, pad_records

UNSUPPORTED = {"AR": "HF datasets has no ArrayRecord reader"}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes over a ``datasets.Dataset`` built from the scenario's arrays."""
    import datasets

    columns: dict[str, Any] = dict(context.data)
    ragged = scenario.storage == "ragged"
    if ragged:
        columns["tokens"] = list(columns["tokens"])
    else:
        columns["id"] = np.arange(context.num_records, dtype=np.int32)
    features = datasets.Features({k: _feature(v, datasets) for k, v in columns.items()})
    table = datasets.Dataset.from_dict(columns, features=features)
    table = table.with_format("numpy" if ragged else "jax")
    transform = jax.jit(keyed_transform(scenario, context.stats))
    epochs = [0]

    def one_pass() -> Iterator[Any]:
        for _ in range(scenario.epochs_per_pass):
            epoch = epochs[0]
            epochs[0] += 1
            order = table.shuffle(seed=epoch) if scenario.shuffle else table
            for batch in order.iter(batch_size=scenario.batch_size):
                if ragged:
                    yield pad_records(batch["tokens"])
                else:
                    ids = batch.pop("id")
                    yield transform(batch, ids, np.uint32(epoch))

    return one_pass


def _feature(values: Any, datasets: Any) -> Any:
    if isinstance(values, list):  # ragged token lists
        return datasets.List(datasets.Value(str(values[0].dtype)))
    dtype = str(values.dtype)
    if values.ndim == 1:
        return datasets.Value(dtype)
    if values.ndim == 2:
        return datasets.List(datasets.Value(dtype), length=values.shape[1])
    array_feature = getattr(datasets, f"Array{values.ndim - 1}D")
    return array_feature(shape=values.shape[1:], dtype=dtype)
