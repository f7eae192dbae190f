"""`FeistelPermutation`: a keyed pseudo-random permutation of ``range(size)``.

A balanced Feistel network permutes ``[0, 2**(2h))`` for the smallest ``h`` with
``2**(2h) >= size``; values that land outside ``[0, size)`` are encrypted again
("cycle walking") until they fall inside, which keeps the map a bijection on
``range(size)``. A last keyed step swaps neighbouring values pairwise, so that
orders of both parities are equally likely. Any position is mapped in O(1) time and
memory, so an epoch's order is never materialised unless asked for. NumPy and ``jax.numpy`` give
bit-identical results (all arithmetic is on ``uint32``).

Example:
    >>> import numpy as np
    >>> perm = FeistelPermutation(10, key=1234)
    >>> order = perm(np.arange(10))
    >>> sorted(order.tolist()) == list(range(10))
    True
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.errors import ConfigError
from datarax.core.rng import mix32, mix64

NUM_ROUNDS = 6
TABLE_MAX_HALF_BITS = 12
MAX_SIZE = 2**32 - 1


class FeistelPermutation:
    """Bijection of ``range(size)`` keyed by a 64-bit integer.

    Args:
        size: Number of elements permuted (1 to 2**32 - 1).
        key: Any integer; different keys give unrelated permutations.
    """

    def __init__(self, size: int, key: int) -> None:
        if not 1 <= size <= MAX_SIZE:
            raise ConfigError(
                "permutation size out of range",
                where="FeistelPermutation",
                expected=f"1 <= size <= {MAX_SIZE}",
                found=size,
            )
        self.size = int(size)
        self.half_bits = max(1, ((self.size - 1).bit_length() + 1) // 2)
        self.round_keys = np.array(
            [mix64(key, r) & 0xFFFFFFFF for r in range(NUM_ROUNDS)], dtype=np.uint32
        )
        self.swap_key = np.uint32(mix64(key, NUM_ROUNDS) & 0xFFFFFFFF)
        # For small halves every round function fits in a table of 2**half_bits words:
        # a round becomes one lookup and one xor. O(sqrt(size)) memory, capped small.
        self._tables = None
        if self.half_bits <= TABLE_MAX_HALF_BITS:
            domain = np.arange(1 << self.half_bits, dtype=np.uint32)
            mask = np.uint32((1 << self.half_bits) - 1)
            self._tables = np.stack([mix32(np, domain, k) & mask for k in self.round_keys])

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """Map positions (any int array with values in ``[0, size)``) to their images."""
        x = np.asarray(positions).astype(np.uint32)
        y = self._encrypt_np(x)
        outside = np.flatnonzero(y >= self.size)
        while outside.size:
            walked = self._encrypt_np(y[outside])
            y[outside] = walked
            outside = outside[walked >= self.size]
        return _swap_pairs(np, y, self.swap_key, self.size).astype(np.int64)

    def _encrypt_np(self, x: np.ndarray) -> np.ndarray:
        if self._tables is None:
            return _encrypt(np, x, self.round_keys, self.half_bits)
        shift = np.uint32(self.half_bits)
        left, right = x >> shift, x & np.uint32((1 << self.half_bits) - 1)
        for table in self._tables:
            left, right = right, left ^ table[right]
        return (left << shift) | right

    def jax(self, positions: jax.Array) -> jax.Array:
        """The same map with ``jax.numpy`` (usable inside ``jit``); returns ``int32``."""
        keys = jnp.asarray(self.round_keys)
        size = jnp.uint32(self.size)
        y = _encrypt(jnp, jnp.asarray(positions).astype(jnp.uint32), keys, self.half_bits)
        y = jax.lax.while_loop(
            lambda y: jnp.any(y >= size),
            lambda y: jnp.where(y >= size, _encrypt(jnp, y, keys, self.half_bits), y),
            y,
        )
        return _swap_pairs(jnp, y, jnp.uint32(self.swap_key), size).astype(jnp.int32)


def _swap_pairs(xp: Any, y: Any, key: Any, size: Any) -> Any:
    """Swap the values ``2i`` and ``2i + 1`` (both below ``size``) when a keyed bit of ``i`` is set.

    Every round of a Feistel network on halves of two bits or more is an even
    permutation, so without this step orders of one parity would be rare (or, when
    no value walks, impossible). Each pair flips the parity with probability 1/2,
    independently, which makes both parities equally likely.
    """
    partner = y ^ xp.uint32(1)
    flip = (mix32(xp, y >> xp.uint32(1), key) & xp.uint32(1)) == xp.uint32(1)
    return xp.where(flip & (partner < size), partner, y)


def _encrypt(xp: Any, x: Any, round_keys: Any, half_bits: int) -> Any:
    shift = xp.uint32(half_bits)
    mask = xp.uint32((1 << half_bits) - 1)
    left, right = x >> shift, x & mask
    for r in range(NUM_ROUNDS):
        left, right = right, left ^ (mix32(xp, right, round_keys[r]) & mask)
    return (left << shift) | right
