"""FeistelPermutation: a keyed bijection of range(n), identical in NumPy and JAX."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax.core.errors import ConfigError
from datarax.samplers import FeistelPermutation
from datarax.samplers.feistel import MAX_SIZE


def _is_permutation(values: np.ndarray, n: int) -> bool:
    return values.shape == (n,) and np.array_equal(np.sort(values), np.arange(n))


def test_bijection_for_every_size_up_to_300():
    for n in range(1, 301):
        for key in (0, 1, 2**63 + 5):
            out = FeistelPermutation(n, key)(np.arange(n))
            assert out.dtype == np.int64
            assert _is_permutation(out, n), (n, key)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 10**6), key=st.integers(-(2**70), 2**70), data=st.data())
def test_bijection_on_random_positions_for_large_sizes(n, key, data):
    perm = FeistelPermutation(n, key)
    positions = np.asarray(
        data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=200, unique=True))
    )
    out = perm(positions)
    # In range, and distinct inputs map to distinct outputs.
    assert out.min() >= 0 and out.max() < n
    assert len(np.unique(out)) == len(positions)
    # A position maps to the same image whatever batch it is computed in.
    singles = np.array([perm(np.array([p]))[0] for p in positions[:5]])
    np.testing.assert_array_equal(singles, out[:5])


@settings(max_examples=5, deadline=None)
@given(n=st.integers(300, 10**6), key=st.integers(0, 2**64 - 1))
def test_bijection_on_full_range_for_large_sizes(n, key):
    assert _is_permutation(FeistelPermutation(n, key)(np.arange(n)), n)


@pytest.mark.parametrize("n", [10**6, 2**20, 2**20 + 1, 2**16 - 1])
def test_bijection_on_full_range_at_power_of_two_edges(n):
    assert _is_permutation(FeistelPermutation(n, 99)(np.arange(n)), n)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 300, 4097])
def test_jax_matches_numpy_bit_for_bit_on_full_range(n):
    perm = FeistelPermutation(n, 1234)
    expected = perm(np.arange(n))
    found = perm.jax(jnp.arange(n))
    assert found.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(found), expected)


@settings(max_examples=6, deadline=None)  # each new size compiles a while_loop (~0.4 s)
@given(n=st.integers(1, 10**6), key=st.integers(0, 2**64 - 1), data=st.data())
def test_jax_matches_numpy_bit_for_bit_property(n, key, data):
    perm = FeistelPermutation(n, key)
    positions = np.asarray(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=64)))
    np.testing.assert_array_equal(np.asarray(perm.jax(jnp.asarray(positions))), perm(positions))


def test_numpy_call_does_not_modify_its_input():
    positions = np.arange(50)
    FeistelPermutation(50, 3)(positions)
    np.testing.assert_array_equal(positions, np.arange(50))


def test_deterministic_for_same_key():
    a = FeistelPermutation(1000, 42)(np.arange(1000))
    b = FeistelPermutation(1000, 42)(np.arange(1000))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [20, 21, 100, 1000, 65537])
def test_different_keys_give_different_orders(n):
    orders = [FeistelPermutation(n, key)(np.arange(n)) for key in range(8)]
    for i in range(len(orders)):
        for j in range(i + 1, len(orders)):
            assert not np.array_equal(orders[i], orders[j]), (n, i, j)
    # Not the identity either.
    assert not any(np.array_equal(o, np.arange(n)) for o in orders)


def test_keys_differing_only_above_32_bits_give_different_orders():
    n = 1000
    a = FeistelPermutation(n, 5)(np.arange(n))
    b = FeistelPermutation(n, 5 + 2**40)(np.arange(n))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("size", [0, -1, 2**32, MAX_SIZE + 10])
def test_invalid_size_raises_config_error(size):
    with pytest.raises(
        ConfigError,
        match=r"^FeistelPermutation: permutation size out of range"
        rf"; expected 1 <= size <= {MAX_SIZE}, found {size}$",
    ):
        FeistelPermutation(size, 0)


def test_maximum_size_is_accepted():
    perm = FeistelPermutation(MAX_SIZE, 7)
    out = perm(np.array([0, 1, MAX_SIZE - 1]))
    assert out.min() >= 0 and out.max() < MAX_SIZE
    assert len(set(out.tolist())) == 3
