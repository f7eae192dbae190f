"""Samplers: Sequential, Shuffle, Range and EpochAware."""

from __future__ import annotations

import itertools
import re

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax.core.errors import ConfigError, StateError
from datarax.samplers import (
    EpochAwareSampler,
    EpochAwareSamplerConfig,
    RangeSampler,
    RangeSamplerConfig,
    SequentialSampler,
    SequentialSamplerConfig,
    ShuffleSampler,
    ShuffleSamplerConfig,
)


def shuffle(n: int, seed: int = 0, name: str | None = None) -> ShuffleSampler:
    return ShuffleSampler(ShuffleSamplerConfig(num_records=n, seed=seed), name=name)


def sequential(n: int, name: str | None = None) -> SequentialSampler:
    return SequentialSampler(SequentialSamplerConfig(num_records=n), name=name)


def _is_permutation(values: np.ndarray, n: int) -> bool:
    return values.shape == (n,) and np.array_equal(np.sort(values), np.arange(n))


def _split_points(n: int, cuts: list[int]) -> list[int]:
    return [0, *sorted({c % (n + 1) for c in cuts}), n]


# --------------------------------------------------------------------------- Shuffle


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5000), seed=st.integers(0, 2**64 - 1), epoch=st.integers(0, 10**6))
def test_shuffle_epoch_is_permutation_small_sizes(n, seed, epoch):
    order = shuffle(n, seed).epoch_order(epoch)
    assert order.dtype == np.int64
    assert _is_permutation(order, n)


@settings(max_examples=4, deadline=None)
@given(n=st.integers(5000, 10**6), seed=st.integers(0, 2**32), epoch=st.integers(0, 100))
def test_shuffle_epoch_is_permutation_large_sizes(n, seed, epoch):
    assert _is_permutation(shuffle(n, seed).epoch_order(epoch), n)


def test_shuffle_epoch_is_permutation_at_one_million():
    s = shuffle(10**6, seed=3)
    for epoch in (0, 1):
        assert _is_permutation(s.epoch_order(epoch), 10**6)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3000),
    seed=st.integers(0, 2**40),
    epoch=st.integers(0, 50),
    cuts=st.lists(st.integers(0, 10**6), max_size=12),
)
def test_shuffle_indices_over_any_split_concatenate_to_epoch_order(n, seed, epoch, cuts):
    s = shuffle(n, seed)
    points = _split_points(n, cuts)
    pieces = [s.indices(epoch, a, b) for a, b in itertools.pairwise(points)]
    np.testing.assert_array_equal(np.concatenate(pieces), s.epoch_order(epoch))


def test_shuffle_empty_slice_is_empty():
    out = shuffle(10).indices(0, 4, 4)
    assert out.shape == (0,) and out.dtype == np.int64


def test_shuffle_is_deterministic():
    a = shuffle(5000, seed=11).epoch_order(3)
    b = shuffle(5000, seed=11).epoch_order(3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(shuffle(5000, seed=11).indices(3, 100, 200), a[100:200])


def test_shuffle_is_not_identity():
    assert not np.array_equal(shuffle(1000).epoch_order(0), np.arange(1000))


def _assert_unrelated(a: np.ndarray, b: np.ndarray) -> None:
    assert not np.array_equal(a, b)
    assert np.mean(a == b) < 0.01
    # The orders are permutations, i.e. their own ranks: Pearson == Spearman here.
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**31 - 1, 2**40])
@pytest.mark.parametrize("epoch", [0, 1, 7])
def test_neighbouring_seeds_and_epochs_give_unrelated_orders(seed, epoch):
    n = 10_000
    base = shuffle(n, seed).epoch_order(epoch)
    _assert_unrelated(base, shuffle(n, seed + 1).epoch_order(epoch))  # seed s vs s+1
    _assert_unrelated(base, shuffle(n, seed).epoch_order(epoch + 1))  # epoch e vs e+1
    # (s+1, e) vs (s, e+1): never derived as seed + epoch.
    _assert_unrelated(
        shuffle(n, seed + 1).epoch_order(epoch), shuffle(n, seed).epoch_order(epoch + 1)
    )
    # Nor is an order correlated with the identity.
    assert abs(np.corrcoef(base, np.arange(n))[0, 1]) < 0.05


@pytest.mark.parametrize("n", [1, 7, 1000])
def test_shuffle_indices_jax_equals_indices(n):
    s = shuffle(n, seed=9)
    positions = np.arange(n)[::-1]
    got = s.indices_jax(2, jnp.asarray(positions))
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), s.epoch_order(2)[positions])


def test_shuffle_len_and_fingerprint():
    s = shuffle(17, seed=4)
    assert len(s) == 17
    assert s.fingerprint() == {"type": "ShuffleSampler", "num_records": 17, "seed": 4}


@pytest.mark.parametrize(
    ("epoch", "start", "stop"),
    [(-1, 0, 1), (0, -1, 2), (0, 5, 4), (0, 0, 11), (0, 11, 11)],
)
@pytest.mark.parametrize("make", [shuffle, sequential], ids=["shuffle", "sequential"])
def test_out_of_range_indices_raise_config_error(make, epoch, start, stop):
    s = make(10, name="train")
    expected = re.escape(
        "train: positions out of range; expected epoch >= 0 and 0 <= start <= stop <= 10, "
        f"found epoch={epoch}, start={start}, stop={stop}"
    )
    with pytest.raises(ConfigError, match=f"^{expected}$"):
        s.indices(epoch, start, stop)


@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10"])
def test_shuffle_config_rejects_bad_num_records(n):
    with pytest.raises(
        ConfigError,
        match=r"^ShuffleSamplerConfig\.num_records: must be a positive"
        rf" integer; expected an int > 0, found {re.escape(repr(n))}$",
    ):
        ShuffleSamplerConfig(num_records=n)


@pytest.mark.parametrize("seed", [1.5, True, "0", None])
def test_shuffle_config_rejects_non_int_seed(seed):
    with pytest.raises(
        ConfigError,
        match=r"^ShuffleSamplerConfig\.seed: seed must be an int; "
        rf"expected an int, found {re.escape(repr(seed))}$",
    ):
        ShuffleSamplerConfig(num_records=3, seed=seed)


def test_sampler_rejects_wrong_config_type():
    with pytest.raises(
        ConfigError,
        match=r"^ShuffleSampler: wrong config type; "
        r"expected ShuffleSamplerConfig, found SequentialSamplerConfig$",
    ):
        ShuffleSampler(SequentialSamplerConfig(num_records=3))


# --------------------------------------------------------------------------- Sequential


def test_sequential_maps_positions_to_themselves():
    s = sequential(10)
    np.testing.assert_array_equal(s.epoch_order(0), np.arange(10))
    np.testing.assert_array_equal(s.epoch_order(5), np.arange(10))
    out = s.indices(3, 2, 7)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.arange(2, 7))
    got = s.indices_jax(0, jnp.array([4, 1, 9]))
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), [4, 1, 9])
    assert len(s) == 10


def test_sequential_config_rejects_zero():
    with pytest.raises(ConfigError, match=r"SequentialSamplerConfig\.num_records.*found 0$"):
        SequentialSamplerConfig(num_records=0)


# --------------------------------------------------------------------------- Range


def rng_sampler(start, stop, step, shuffle=False, seed=0):
    return RangeSampler(
        RangeSamplerConfig(start=start, stop=stop, step=step, shuffle=shuffle, seed=seed)
    )


@settings(max_examples=40, deadline=None)
@given(
    start=st.integers(0, 1000),
    length=st.integers(1, 2000),
    step=st.integers(1, 9),
    do_shuffle=st.booleans(),
    seed=st.integers(0, 2**40),
    epoch=st.integers(0, 20),
    cuts=st.lists(st.integers(0, 10**6), max_size=6),
)
def test_range_sampler_is_permutation_of_its_range(
    start, length, step, do_shuffle, seed, epoch, cuts
):
    stop = start + length
    expected = np.arange(start, stop, step)
    s = rng_sampler(start, stop, step, do_shuffle, seed)
    assert len(s) == len(expected)
    order = s.epoch_order(epoch)
    if do_shuffle:
        np.testing.assert_array_equal(np.sort(order), expected)
    else:
        np.testing.assert_array_equal(order, expected)
    points = _split_points(len(s), cuts)
    pieces = [s.indices(epoch, a, b) for a, b in itertools.pairwise(points)]
    np.testing.assert_array_equal(np.concatenate(pieces), order)


def test_range_sampler_docstring_example():
    np.testing.assert_array_equal(rng_sampler(10, 20, 3).epoch_order(0), [10, 13, 16, 19])


def test_range_sampler_shuffle_changes_with_epoch_and_seed_but_is_deterministic():
    s = rng_sampler(5, 2005, 2, shuffle=True, seed=1)
    e0, e1 = s.epoch_order(0), s.epoch_order(1)
    assert not np.array_equal(e0, e1)
    assert not np.array_equal(e0, rng_sampler(5, 2005, 2, shuffle=True, seed=2).epoch_order(0))
    np.testing.assert_array_equal(e0, rng_sampler(5, 2005, 2, shuffle=True, seed=1).epoch_order(0))
    assert not np.array_equal(e0, np.arange(5, 2005, 2))


@pytest.mark.parametrize("do_shuffle", [False, True])
def test_range_sampler_indices_jax_equals_indices(do_shuffle):
    s = rng_sampler(3, 500, 4, shuffle=do_shuffle, seed=8)
    positions = np.array([0, len(s) - 1, 5, 17, 2])
    np.testing.assert_array_equal(
        np.asarray(s.indices_jax(4, jnp.asarray(positions))), s.epoch_order(4)[positions]
    )


def test_range_sampler_out_of_range_indices():
    s = RangeSampler(RangeSamplerConfig(start=10, stop=20, step=3), name="val")
    with pytest.raises(
        ConfigError,
        match=r"^val: positions out of range; expected epoch >= 0 and "
        r"0 <= start <= stop <= 4, found epoch=0, start=0, stop=5$",
    ):
        s.indices(0, 0, 5)


@pytest.mark.parametrize(
    ("start", "stop", "step"), [(0, 10, 0), (0, 10, -1), (-1, 10, 1), (5, 5, 1), (6, 5, 1)]
)
def test_range_sampler_config_rejects_empty_or_invalid_range(start, stop, step):
    expected = re.escape(
        "RangeSamplerConfig: empty or invalid range; expected 0 <= start < stop and step > 0, "
        f"found start={start}, stop={stop}, step={step}"
    )
    with pytest.raises(ConfigError, match=f"^{expected}$"):
        RangeSamplerConfig(start=start, stop=stop, step=step)


# --------------------------------------------------------------------------- EpochAware


def epoch_aware(base, num_epochs=1, name=None):
    return EpochAwareSampler(EpochAwareSamplerConfig(num_epochs=num_epochs), base, name=name)


@pytest.mark.parametrize("n", [1, 5, 37, 5000])
@pytest.mark.parametrize("num_epochs", [1, 3])
def test_epoch_aware_iterates_every_epoch_as_a_permutation(n, num_epochs):
    base = shuffle(n, seed=2)
    items = list(epoch_aware(base, num_epochs))
    assert len(items) == num_epochs * n
    epochs = np.array([e for e, _ in items])
    records = np.array([r for _, r in items])
    np.testing.assert_array_equal(epochs, np.repeat(np.arange(num_epochs), n))
    for e in range(num_epochs):
        chunk = records[e * n : (e + 1) * n]
        assert _is_permutation(chunk, n)
        np.testing.assert_array_equal(chunk, base.epoch_order(e))


def test_epoch_aware_sequential_docstring_example():
    assert [r for _, r in epoch_aware(sequential(3), 2)] == [0, 1, 2, 0, 1, 2]


def test_epoch_aware_forever():
    s = epoch_aware(sequential(3), num_epochs=None)
    items = list(itertools.islice(s, 10))
    assert items == [(e, r) for e in range(4) for r in range(3)][:10]


def test_next_indices_never_crosses_an_epoch_boundary():
    s = epoch_aware(sequential(10), num_epochs=2)
    calls = [s.next_indices(4) for _ in range(7)]
    assert [(e, ids.tolist()) for e, ids in calls] == [
        (0, [0, 1, 2, 3]),
        (0, [4, 5, 6, 7]),
        (0, [8, 9]),
        (1, [0, 1, 2, 3]),
        (1, [4, 5, 6, 7]),
        (1, [8, 9]),
        (2, []),
    ]
    assert s.get_state() == {"epoch": 2, "position": 0}


@pytest.mark.parametrize("consumed", [0, 1, 7, 29, 30, 31, 59])
def test_resume_from_state_yields_exactly_the_rest(consumed):
    n, num_epochs = 30, 2
    full = [(e, r) for e in range(num_epochs) for r in shuffle(n, seed=5).epoch_order(e).tolist()]
    first = epoch_aware(shuffle(n, seed=5), num_epochs)
    taken = []
    while len(taken) < consumed:
        epoch, ids = first.next_indices(min(4, consumed - len(taken)))
        taken += [(epoch, r) for r in ids.tolist()]
    state = first.get_state()
    assert state == {"epoch": consumed // n, "position": consumed % n}

    resumed = epoch_aware(shuffle(n, seed=5), num_epochs)
    resumed.set_state(state)
    assert resumed.get_state() == state
    rest = list(resumed)
    assert taken + rest == full
    assert rest == list(first)


def test_state_after_partial_iteration_resumes_exactly():
    s = epoch_aware(sequential(10), num_epochs=2)
    it = iter(s)
    taken = [next(it) for _ in range(3)]
    assert taken == [(0, 0), (0, 1), (0, 2)]
    assert s.get_state() == {"epoch": 0, "position": 3}


def test_finished_state_round_trips_and_yields_nothing():
    s = epoch_aware(sequential(4), num_epochs=2)
    assert len(list(s)) == 8
    state = s.get_state()
    assert state == {"epoch": 2, "position": 0}
    other = epoch_aware(sequential(4), num_epochs=2)
    other.set_state(state)
    assert list(other) == []


@pytest.mark.parametrize(
    "state", [{}, {"epoch": 0}, {"position": 0}, None, "x", {"epoch": "a", "position": 0}]
)
def test_malformed_state_raises_state_error(state):
    s = epoch_aware(sequential(5), name="sampler")
    expected = re.escape(
        "sampler: malformed sampler state; expected {'epoch': int, 'position': int}, "
        f"found {state!r}"
    )
    with pytest.raises(StateError, match=f"^{expected}$"):
        s.set_state(state)
    assert s.get_state() == {"epoch": 0, "position": 0}


@pytest.mark.parametrize(("epoch", "position"), [(-1, 0), (0, -1), (0, 5), (3, 99)])
def test_out_of_range_state_raises_state_error(epoch, position):
    s = epoch_aware(sequential(5), name="sampler")
    expected = re.escape(
        "sampler: sampler state out of range; expected epoch >= 0 and 0 <= position < 5, "
        f"found epoch={epoch}, position={position}"
    )
    with pytest.raises(StateError, match=f"^{expected}$"):
        s.set_state({"epoch": epoch, "position": position})
    assert s.get_state() == {"epoch": 0, "position": 0}


def test_state_error_is_value_error():
    with pytest.raises(ValueError):
        epoch_aware(sequential(5)).set_state({"epoch": 0, "position": 5})


@pytest.mark.parametrize("num_epochs", [0, -1, 1.0])
def test_epoch_aware_config_rejects_bad_num_epochs(num_epochs):
    with pytest.raises(
        ConfigError,
        match=r"^EpochAwareSamplerConfig\.num_epochs: must be a "
        r"positive integer; expected an int > 0 or None, found "
        f"{re.escape(repr(num_epochs))}$",
    ):
        EpochAwareSamplerConfig(num_epochs=num_epochs)
