"""The JAX reference: data on the device, one jitted gather + vmapped transform per batch.

Keys are ``fold_in(fold_in(key(0), epoch), record id)``. W4 keeps one flat token array
and the record offsets on the device and pads in the gather. The ArrayRecord scenario
reads and decodes on the host (as the NumPy reference does) and transforms on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from datarax.benchmarking.adapters.base import BuildContext, MakePass
from datarax.benchmarking.records_file import decode_batch, open_records, write_records
from datarax.benchmarking.scenarios import SEQUENCE_LENGTH, FlatTokens, Scenario

UNSUPPORTED: dict[str, str] = {}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the JAX reference."""
    rng = np.random.default_rng(1)
    n = context.num_records
    step = _step(scenario, context)
    epoch = [0]

    def one_pass() -> Iterator[dict[str, jax.Array]]:
        for _ in range(scenario.epochs_per_pass):
            order = rng.permutation(n) if scenario.shuffle else np.arange(n)
            order = order.astype(np.int32)
            for start in range(0, n, scenario.batch_size):
                yield step(order[start : start + scenario.batch_size], np.uint32(epoch[0]))
            epoch[0] += 1

    return one_pass


def batch_passes(scenario: Scenario, context: BuildContext, fn: Callable[..., Any]) -> MakePass:
    """The reference's passes with a batch function ``(batch, keys) -> batch`` instead.

    The arrays go to the device once; each batch is one jitted gather and ``fn``,
    given the records' keys ``fold_in(fold_in(key(0), epoch), record id)`` (the
    JAX-library peers of the operator scenarios run this way).
    """
    rng = np.random.default_rng(1)
    n = context.num_records
    arrays = jax.device_put(context.data)

    @jax.jit
    def gather(arrays: dict[str, jax.Array], idx: jax.Array, epoch: Any) -> Any:
        batch = {k: jnp.take(v, idx, axis=0) for k, v in arrays.items()}
        return fn(batch, record_keys(idx, epoch))

    epoch = [0]

    def one_pass() -> Iterator[Any]:
        for _ in range(scenario.epochs_per_pass):
            order = rng.permutation(n) if scenario.shuffle else np.arange(n)
            order = order.astype(np.int32)
            for start in range(0, n, scenario.batch_size):
                yield gather(
                    arrays, order[start : start + scenario.batch_size], np.uint32(epoch[0])
                )
            epoch[0] += 1

    return one_pass


def record_keys(ids: jax.Array, epoch: Any) -> jax.Array:
    """One key per record: ``fold_in(fold_in(key(0), epoch), record id)``."""
    epoch_key = jax.random.fold_in(jax.random.key(0), epoch)
    return jax.vmap(jax.random.fold_in, (None, 0))(epoch_key, ids.astype(jnp.uint32))


def keyed_transform(scenario: Scenario, stats: Any) -> Callable[..., Any]:
    """``(batch, record ids, epoch) -> batch``: the vmapped per-record transform, traceable."""
    fn = scenario.record_fn(stats)

    def transform(batch: Any, ids: jax.Array, epoch: Any) -> Any:
        return jax.vmap(fn)(batch, record_keys(ids, epoch))

    return transform


def _step(scenario: Scenario, context: BuildContext) -> Callable:
    transform = keyed_transform(scenario, context.stats)
    if scenario.storage == "array_record":
        path = write_records(context.workdir / "records.array_record", context.data)
        reader = open_records(path)
        compiled = jax.jit(transform)
        return lambda idx, epoch: compiled(
            decode_batch(reader.__getitems__(idx.tolist())), idx, epoch
        )
    if scenario.storage == "ragged":
        flat = FlatTokens.of(context.data["tokens"])
        tokens, offsets = jax.device_put((flat.tokens, flat.offsets.astype(np.int32)))

        @jax.jit
        def pad(tokens: jax.Array, offsets: jax.Array, idx: jax.Array) -> dict[str, jax.Array]:
            start = offsets[idx]
            lengths = jnp.minimum(offsets[idx + 1] - start, SEQUENCE_LENGTH)
            positions = jnp.arange(SEQUENCE_LENGTH)
            valid = positions < lengths[:, None]
            gathered = jnp.take(tokens, jnp.where(valid, start[:, None] + positions, 0))
            return {"tokens": jnp.where(valid, gathered, 0), "tokens_length": lengths}

        return lambda idx, epoch: pad(tokens, offsets, idx)
    arrays = jax.device_put(context.data)  # arguments, not constants baked into the program

    @jax.jit
    def gather(arrays: dict[str, jax.Array], idx: jax.Array, epoch: Any) -> Any:
        batch = {k: jnp.take(v, idx, axis=0) for k, v in arrays.items()}
        return transform(batch, idx, epoch)

    return lambda idx, epoch: gather(arrays, idx, epoch)
