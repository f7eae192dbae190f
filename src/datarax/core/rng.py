"""Key derivation: every random choice comes from (seed, stream, epoch, record id).

Host-side seeds (shuffle round keys) use a 64-bit SplitMix mix of all parts, applied
in sequence, so ``(seed=1, epoch=0)`` and ``(seed=0, epoch=1)`` give unrelated
values; nothing is ever derived as ``seed + epoch``. Device-side keys chain
:func:`jax.random.fold_in` over the same parts.

Example:
    >>> mix64(0, 1) != mix64(1, 0)
    True
    >>> stream_id("augmentations") == stream_id("augmentations")
    True
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import jax.numpy as jnp

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix64(*parts: int) -> int:
    """Hash a sequence of integers into one 64-bit integer, order-sensitively."""
    h = 0x243F6A8885A308D3
    for part in parts:
        h = _splitmix64(h ^ _splitmix64(int(part) & _MASK64))
    return h


def stream_id(name: str) -> int:
    """A stable 31-bit id for a stream name (Python's ``hash`` is salted per process)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def stream_key(base_key: jax.Array, name: str, seed: int) -> jax.Array:
    """The key of one named stream of one pipeline seed, derived from ``base_key``."""
    key = jax.random.fold_in(base_key, stream_id(name))
    return jax.random.fold_in(key, mix64(seed) & 0x7FFFFFFF)


def record_keys(key: jax.Array, epoch: jax.Array | int, record_ids: jax.Array) -> jax.Array:
    """One key per record: ``fold_in(fold_in(key, epoch), record_id)``.

    The result depends only on the record's identity and epoch, never on its position
    in a batch, so a record is augmented the same way at any batch size.
    """
    epoch_key = jax.random.fold_in(key, jnp.asarray(epoch, jnp.uint32))
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
        epoch_key, jnp.asarray(record_ids).astype(jnp.uint32)
    )


def mix32(xp: Any, x: Any, key: Any) -> Any:
    """A keyed 32-bit hash: murmur3's finaliser of ``x ^ key`` (full avalanche).

    ``xp`` is ``numpy`` or ``jax.numpy``; ``x`` and ``key`` are ``uint32`` values or
    arrays. Used for the Feistel rounds of the shuffle and for the extra random
    numbers of an operator's record.
    """
    x = x ^ key
    x = x ^ (x >> xp.uint32(16))
    x = x * xp.uint32(0x85EBCA6B)
    x = x ^ (x >> xp.uint32(13))
    x = x * xp.uint32(0xC2B2AE35)
    return x ^ (x >> xp.uint32(16))
