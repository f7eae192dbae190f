"""Running one operator on a batch in tests, compiled once per operator structure."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def _run(graphdef, state, images, ids, epoch, seed, field):
    data, _ = nnx.merge(graphdef, state).apply_batch({field: images}, {}, ids, epoch, seed)
    return data[field]


def apply(op, images, ids=None, *, epoch: int, seed: int, field: str = "image") -> np.ndarray:
    """``op`` on one batch of ``images`` (records ``ids``, default ``0..B-1``), as NumPy."""
    images = jnp.asarray(images)
    ids = np.arange(images.shape[0]) if ids is None else ids
    graphdef, state = nnx.split(op)
    ids = jnp.asarray(ids, jnp.int32)
    return np.asarray(_run(graphdef, state, images, ids, jnp.uint32(epoch), seed, field))


@functools.partial(jax.jit, static_argnums=(0, 4))
def _words(graphdef, state, ids, epoch, seed):
    return nnx.merge(graphdef, state).random_words(ids, epoch, seed)


def words_of(op, ids, *, epoch: int, seed: int) -> jax.Array:
    """The records' random words, as the operator computes them."""
    graphdef, state = nnx.split(op)
    return _words(graphdef, state, jnp.asarray(ids, jnp.int32), jnp.uint32(epoch), seed)
