"""Lowering a pipeline's device nodes into one jitted pure function.

The operators are split into ``(graphdef, state)`` once; the compiled function takes
``(state, inputs, record_ids, epoch)`` and computes a chunk of ``k`` batches in one
XLA dispatch. A second small compiled function cuts the chunk into its ``k``
batches (kept apart from the main function: fused, XLA recomputes the chunk per
slice). Shapes are fixed (``k * batch_size`` rows, padded when short), so an epoch
never recompiles.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax.operators.base import Fields, Operator

#: Output bytes one compiled call aims to produce; bounds latency and memory per call.
TARGET_CHUNK_BYTES = 4 * 1024**2
MAX_BATCHES_PER_CALL = 32


@dataclass(frozen=True)
class ChunkProgram:
    """The compiled functions for one chunk size, and the operator state they run with."""

    run: Callable[..., tuple[Fields, Fields]]
    split: Callable[..., list[tuple[Fields, Fields]]] | None
    state_leaves: tuple
    batches_per_call: int
    gather: bool

    def __call__(self, inputs: Fields, record_ids: np.ndarray, epoch: int):
        """Dispatch one chunk; returns ``[(data, states), ...]``, one pair per batch."""
        out = self.run(self.state_leaves, inputs, record_ids, np.uint32(epoch))
        return self.split(out) if self.split is not None else [out]


@functools.lru_cache(maxsize=64)
def build_run_fn(graphdef: Any, state_treedef: Any, seed: int, gather: bool) -> Callable:
    """The jitted chunk function of one operator graph and input placement.

    The operator state arrives as a flat tuple of leaves: flattening an ``nnx.State``
    on every call would cost more than a small batch's whole computation.
    """

    def run(state_leaves, inputs, record_ids, epoch):
        state = jax.tree_util.tree_unflatten(state_treedef, state_leaves)
        operators = nnx.merge(graphdef, state)
        if gather:
            data = {k: jnp.take(v, record_ids, axis=0, mode="clip") for k, v in inputs.items()}
        else:
            data = dict(inputs)
        return apply_operators(operators, data, {}, record_ids, epoch, seed)

    return jax.jit(run)


@functools.cache
def split_fn(parts: int) -> Callable:
    """A jitted function cutting every leaf of a chunk into ``parts`` equal batches."""

    def split(chunk):
        pieces = jax.tree_util.tree_map(lambda x: jnp.split(x, parts, axis=0), chunk)
        return [
            jax.tree_util.tree_map(
                lambda p, i=i: p[i], pieces, is_leaf=lambda x: isinstance(x, list)
            )
            for i in range(parts)
        ]

    return jax.jit(split)


def apply_operators(
    operators: Sequence[Operator],
    data: Fields,
    states: Fields,
    record_ids: jax.Array,
    epoch: jax.Array,
    seed: int,
) -> tuple[Fields, Fields]:
    """Run operators in order on one batch (pure; usable under ``jit`` and ``grad``).

    Adjacent operators of one fusion group (for example geometric image operators
    on the same field) run as one: see :meth:`Operator.fusion_group`.
    """
    i = 0
    while i < len(operators):
        group = operators[i].fusion_group()
        j = i + 1
        while group is not None and j < len(operators) and operators[j].fusion_group() == group:
            j += 1
        run = operators[i:j]
        data, states = type(run[0]).apply_fused(run, data, states, record_ids, epoch, seed)
        i = j
    return data, states


def choose_batches_per_call(
    record_bytes: int, batch_size: int, batches_per_epoch: int, requested: int | None
) -> int:
    """How many batches one compiled call computes."""
    if requested is not None:
        return max(1, min(requested, batches_per_epoch))
    by_size = TARGET_CHUNK_BYTES // max(1, record_bytes * batch_size)
    return max(1, min(by_size, MAX_BATCHES_PER_CALL, batches_per_epoch))
