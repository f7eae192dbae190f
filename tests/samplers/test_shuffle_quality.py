"""Statistical quality of the shuffles: do they look like uniform random permutations?

Every test runs at fixed seeds, so it passes or fails deterministically. Each compares
a statistic with its distribution under the null hypothesis "each epoch's order is an
independent, uniformly random permutation" and rejects at ``ALPHA = 1e-4``; where a
test makes ``k`` comparisons the level of each is ``ALPHA / k`` (Bonferroni), so the
whole test still rejects a truly uniform shuffle with probability at most 1e-4. The
critical values come from ``scipy.stats`` (or a closed form stated where used).

Notation: ``pi`` is one epoch's order, ``pi[p]`` the record at position ``p``.
Feistel domain sizes: n = 8 is cycle-walked inside 16, n = 16 is exactly a 4 x 4
network (no walking), n = 100 walks inside 256, n = 10**5 inside 2**18, n = 10**6
inside 2**20 (half width 10 bits).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from scipy import stats

from datarax.samplers import (
    FeistelPermutation,
    SequentialSampler,
    SequentialSamplerConfig,
    ShuffleSampler,
    ShuffleSamplerConfig,
)
from datarax.samplers.window import WindowShuffleConfig, WindowShuffleSampler

ALPHA = 1e-4


def shuffle(n: int, seed: int) -> ShuffleSampler:
    return ShuffleSampler(ShuffleSamplerConfig(num_records=n, seed=seed))


@functools.cache
def orders(n: int, num_seeds: int = 40, num_epochs: int = 50) -> np.ndarray:
    """Epoch orders of seeds ``0..num_seeds-1`` x epochs ``0..num_epochs-1``: (M, n)."""
    samplers = [shuffle(n, seed) for seed in range(num_seeds)]
    return np.stack([s.epoch_order(epoch) for s in samplers for epoch in range(num_epochs)])


def z_crit(alpha: float) -> float:
    """Two-sided critical value of a standard normal statistic."""
    return float(stats.norm.isf(alpha / 2))


def pearson_chi2(observed: np.ndarray, expected: np.ndarray) -> float:
    observed, expected = np.asarray(observed, float), np.asarray(expected, float)
    return float(((observed - expected) ** 2 / expected).sum())


def corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(x, float), np.asarray(y, float))[0, 1])


def report(name: str, **values) -> None:
    """Printed figures (shown with ``pytest -rP``)."""
    print(
        name,
        " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()),
    )


# --------------------------------------------------------------------------- position x record


def permutation_table_chi2(records: np.ndarray, positions: np.ndarray, size: int) -> float:
    """Pearson statistic of the (record, position) table, rescaled to chi2((size-1)**2).

    Each permutation adds one permutation matrix P to the table, so its ``size`` entries
    are not independent multinomial draws. Under the null, Cov(vec P) = Q / (size - 1)
    with Q the projector onto doubly-centred matrices (rank (size-1)**2), hence the raw
    Pearson statistic X2 is distributed as size/(size-1) * chi2((size-1)**2), not as
    chi2((size-1)**2): X2 * (size-1)/size is the statistic with that law.
    """
    table = np.bincount(records * size + positions, minlength=size * size)
    expected = np.full(size * size, records.size / size**2)
    return pearson_chi2(table, expected) * (size - 1) / size


@pytest.mark.parametrize("n", [8, 16, 100])
def test_every_record_is_equally_likely_at_every_position(n):
    """M = 2000 orders (40 seeds x 50 epochs): count of record r at position p.

    Null: each cell has mean M/n (250, 125, 20) and the rescaled Pearson statistic is
    chi2 with (n-1)**2 dof (49, 225, 9801); reject above its 1 - 1e-4 quantile.
    """
    o = orders(n)
    positions = np.broadcast_to(np.arange(n), o.shape)
    stat = permutation_table_chi2(o.ravel(), positions.ravel(), n)
    dof = (n - 1) ** 2
    crit = float(stats.chi2.isf(ALPHA, dof))
    report(f"position-uniformity n={n}", chi2=stat, dof=dof, crit=crit)
    assert stat < crit


def test_a_fixed_record_lands_uniformly_in_a_large_epoch():
    """n = 10**5, M = 200 orders (10 seeds x 20 epochs): where do 5 fixed records land?

    Positions grouped in 10 bins of 10**4. Null per record: multinomial(M, 1/10), the
    Pearson statistic is chi2 with 9 dof. 5 records: each at level 1e-4 / 5.
    """
    n, bins = 10**5, 10
    records = np.array([0, 1, 2, n // 2, n - 1])
    landing = []
    for seed in range(10):
        s = shuffle(n, seed)
        for epoch in range(20):
            order = s.epoch_order(epoch)
            where = np.empty(n, np.int64)
            where[order] = np.arange(n)
            landing.append(where[records])
    landing = np.array(landing)  # (M, records)
    crit = float(stats.chi2.isf(ALPHA / len(records), bins - 1))
    for j, record in enumerate(records):
        counts = np.bincount(landing[:, j] * bins // n, minlength=bins)
        stat = pearson_chi2(counts, np.full(bins, len(landing) / bins))
        report(f"record {record} landing", chi2=stat, dof=bins - 1, crit=crit)
        assert stat < crit, (record, counts)


def test_a_fixed_position_holds_a_uniform_record_in_a_large_epoch():
    """n = 10**6, M = 2000 orders (40 seeds x 50 epochs): which record is at 4 positions?

    Positions 0, 1, 2**10 (the Feistel left half + 1) and n - 1. Record ids grouped in 20
    bins of 5 * 10**4. Null per position: Pearson statistic chi2 with 19 dof, each at
    level 1e-4 / 4.
    """
    n, bins = 10**6, 20
    positions = np.array([0, 1, 1024, n - 1])
    samplers = [shuffle(n, seed) for seed in range(40)]
    held = np.array([s.permutation(epoch)(positions) for s in samplers for epoch in range(50)])
    crit = float(stats.chi2.isf(ALPHA / len(positions), bins - 1))
    for j, position in enumerate(positions):
        counts = np.bincount(held[:, j] * bins // n, minlength=bins)
        stat = pearson_chi2(counts, np.full(bins, len(held) / bins))
        report(f"position {position} record", chi2=stat, dof=bins - 1, crit=crit)
        assert stat < crit, (position, counts)


# --------------------------------------------------------------------------- within one order


@functools.cache
def big_order() -> np.ndarray:
    return shuffle(10**6, seed=0).epoch_order(0)


@pytest.mark.parametrize("lag", [1, 2, 1024])
def test_values_at_nearby_positions_are_uncorrelated(lag):
    """Pearson correlation r of pi[i] and pi[i + lag] in one order of n = 10**6.

    Null: sqrt(m) * r ~ N(0, 1) (m = n - lag pairs; the exact mean, -1/(n-1), is
    negligible). Lag 1024 = 2**10 changes only the Feistel left half. Reject |z| >
    z_{1 - 1e-4/2} = 3.89.
    """
    pi = big_order()
    r = corr(pi[:-lag], pi[lag:])
    z = r * math.sqrt(pi.size - lag)
    report(f"lag-{lag} correlation", r=r, z=z, crit=z_crit(ALPHA))
    assert abs(z) < z_crit(ALPHA)


def test_successive_differences_behave_as_for_a_random_permutation():
    """Differences d_i = pi[i+1] - pi[i] in one order of n = 10**6; four statistics.

    1. lag-1 autocorrelation of d: for i.i.d. values d is an MA(1) with rho_1 = -1/2,
       and Bartlett's formula gives var(r_1) = (1 - 3 rho_1**2 + 4 rho_1**4) / m = 1/(2m).
    2. |d| over the disjoint pairs (pi[2j], pi[2j+1]): P(|d| = k) = 2(n-k) / (n(n-1))
       exactly; 20 bins of width n/20; Pearson chi2 with 19 dof.
    3. number of ascents (d_i > 0): mean (n-1)/2, variance (n+1)/12 (Eulerian numbers).
    4. number of turning points: mean 2(n-2)/3, variance (16n-29)/90.
    1, 3, 4 are normal approximations; all four at level 1e-4 / 4.
    """
    pi = big_order().astype(np.float64)
    n = pi.size
    d = np.diff(pi)
    level = ALPHA / 4

    r1 = corr(d[:-1], d[1:])
    z_r1 = (r1 + 0.5) / math.sqrt(0.5 / d.size)

    bins = 20
    pair_d = np.abs(pi[1::2] - pi[0::2]).astype(np.int64)
    k = np.arange(1, n)
    p_k = 2.0 * (n - k) / (n * (n - 1.0))
    expected = np.bincount(k * bins // n, weights=p_k, minlength=bins) * pair_d.size
    chi2_d = pearson_chi2(np.bincount(pair_d * bins // n, minlength=bins), expected)

    ascents = int((d > 0).sum())
    z_asc = (ascents - (n - 1) / 2) / math.sqrt((n + 1) / 12)

    turning = int((d[:-1] * d[1:] < 0).sum())
    z_turn = (turning - 2 * (n - 2) / 3) / math.sqrt((16 * n - 29) / 90)

    zc, chi_c = z_crit(level), float(stats.chi2.isf(level, bins - 1))
    report("differences", r1=r1, z_r1=z_r1, chi2_abs_d=chi2_d, z_ascents=z_asc, z_turning=z_turn)
    report("differences critical", z=zc, chi2=chi_c)
    assert abs(z_r1) < zc
    assert chi2_d < chi_c
    assert abs(z_asc) < zc
    assert abs(z_turn) < zc


# --------------------------------------------------------------------------- across seeds / epochs


# (seed a, epoch a) vs (seed b, epoch b): neighbouring seeds, neighbouring epochs, and the
# swapped pair (1, 0) / (0, 1) that a naive ``seed + epoch`` key would make identical.
PAIRS = [((s, 0), (s + 1, 0)) for s in range(4)]
PAIRS += [((0, e), (0, e + 1)) for e in range(4)]
PAIRS += [((1, 0), (0, 1))]


def test_orders_of_neighbouring_seeds_and_epochs_are_rank_uncorrelated():
    """Spearman rho between two orders of n = 10**5, for the 9 PAIRS.

    Null: rho has mean 0 and variance 1/(n-1) exactly, and is asymptotically normal:
    z = rho * sqrt(n-1); each pair at level 1e-4 / 9 (|z| < 4.39).
    """
    n = 10**5
    zc = z_crit(ALPHA / len(PAIRS))
    for (seed_a, epoch_a), (seed_b, epoch_b) in PAIRS:
        a = shuffle(n, seed_a).epoch_order(epoch_a)
        b = shuffle(n, seed_b).epoch_order(epoch_b)
        rho = float(stats.spearmanr(a, b).statistic)
        z = rho * math.sqrt(n - 1)
        report(f"spearman s{seed_a}e{epoch_a} vs s{seed_b}e{epoch_b}", rho=rho, z=z, crit=zc)
        assert abs(z) < zc


def poisson1_chi2(counts: np.ndarray) -> float:
    """Pearson statistic of counts in {0, 1, 2, 3, >= 4} against Poisson(1) (4 dof).

    The number of fixed points of a uniform permutation of n records (and so of common
    positions of two independent ones) differs from Poisson(1) by less than 1/n! in
    total variation: for n = 1000 the Poisson probabilities are exact for our purpose.
    """
    observed = np.bincount(np.minimum(counts, 4), minlength=5)
    p = stats.poisson.pmf(np.arange(4), 1.0)
    expected = np.append(p, 1 - p.sum()) * counts.size
    return pearson_chi2(observed, expected)


def test_fixed_points_and_common_positions_are_poisson_1():
    """n = 1000, 1000 samples each of three counts:

    - fixed points pi[i] == i of the orders (seed 3, epochs 0..999);
    - common positions of seeds s and s+1 (epoch 3, s = 0..999);
    - common positions of epochs e and e+1 (seed 7, e = 0..999).
    Consecutive pairs of a chain share an order, yet their counts are independent
    (they are fixed points of tau_s = pi_s^-1 pi_{s+1}, i.i.d. uniform under the null).
    Each: Pearson chi2 with 4 dof against Poisson(1) at level 1e-4 / 3, and the mean
    (null: 1, standard deviation 1/sqrt(1000)) within z_{1 - 1e-4/6}.
    """
    n, m = 1000, 1000
    seed3 = shuffle(n, 3)
    by_epoch = np.stack([seed3.epoch_order(e) for e in range(m)])
    by_seed = np.stack([shuffle(n, s).epoch_order(3) for s in range(m + 1)])
    seed7 = shuffle(n, 7)
    by_epoch7 = np.stack([seed7.epoch_order(e) for e in range(m + 1)])
    samples = {
        "fixed points": (by_epoch == np.arange(n)).sum(1),
        "common positions, seeds s/s+1": (by_seed[:-1] == by_seed[1:]).sum(1),
        "common positions, epochs e/e+1": (by_epoch7[:-1] == by_epoch7[1:]).sum(1),
    }
    level = ALPHA / len(samples)
    chi_c, zc = float(stats.chi2.isf(level, 4)), z_crit(level)
    for name, counts in samples.items():
        stat = poisson1_chi2(counts)
        z = (counts.mean() - 1) * math.sqrt(m)
        report(name, mean=float(counts.mean()), z=z, chi2=stat, crit=chi_c)
        assert stat < chi_c, name
        assert abs(z) < zc, name


# --------------------------------------------------------------------------- relative order


@pytest.mark.parametrize("n", [8, 16, 100])
def test_each_record_precedes_each_other_half_the_time(n):
    """M = 2000 orders: how often record a comes before record b, for every pair a < b.

    Null: Binomial(M, 1/2) per pair; n(n-1)/2 pairs (28, 120, 4950), each two-sided at
    level 1e-4 / pairs with exact binomial critical values.
    """
    o = orders(n)
    m = o.shape[0]
    where = np.argsort(o, axis=1)  # where[:, r] = position of record r
    pairs = n * (n - 1) // 2
    level = ALPHA / pairs
    low = int(stats.binom.ppf(level / 2, m, 0.5))  # reject below low
    high = m - low  # and above high (symmetric)
    worst = None
    for a in range(n - 1):
        before = (where[:, a : a + 1] < where[:, a + 1 :]).sum(0)
        extreme = int(before[np.argmax(np.abs(before - m / 2))])
        if worst is None or abs(extreme - m / 2) > abs(worst - m / 2):
            worst = extreme
        assert np.all((before >= low) & (before <= high)), (a, before)
    report(f"precedence n={n}", worst=worst, accept=f"[{low}, {high}]", M=m)


# --------------------------------------------------------------------------- permutation law


def parities(o: np.ndarray) -> np.ndarray:
    """Parity (0 even, 1 odd) of each row: (n - number of cycles) mod 2.

    Cycles are counted by pointer jumping: after k steps ``label[i]`` is the least id
    among the first 2**k images of i, so after ceil(log2 n) steps it is the least id of
    i's cycle, and each cycle has exactly one i with ``label[i] == i``.
    """
    n = o.shape[1]
    label, jump = np.broadcast_to(np.arange(n), o.shape).copy(), o.copy()
    for _ in range(max(1, (n - 1).bit_length())):
        label = np.minimum(label, np.take_along_axis(label, jump, axis=1))
        jump = np.take_along_axis(jump, jump, axis=1)
    cycles = (label == np.arange(n)).sum(1)
    return (n - cycles) % 2


# Why parity needs care: with half width h >= 2 bits, each Feistel round (a swap of
# halves, then xor of one half by a function of the other) is an even permutation of the
# 4**h domain, so the network alone is even: for n = 4**h every order would be even. The
# permutation's last step swaps neighbouring values pairwise, each pair by its own keyed
# bit, which makes odd and even orders equally likely.
@pytest.mark.parametrize("n", [3, 8, 16, 100, 1000])
def test_odd_and_even_orders_are_equally_likely(n):
    """M = 2000 orders (500 for n = 1000: 10 seeds x 50 epochs): how many are odd.

    Null: Binomial(M, 1/2); two-sided exact binomial critical values at level 1e-4.
    """
    o = orders(n, 10) if n == 1000 else orders(n)
    m = o.shape[0]
    odd = int(parities(o).sum())
    low = int(stats.binom.ppf(ALPHA / 2, m, 0.5))
    report(f"parity n={n}", odd=odd, fraction=odd / m, accept=f"[{low}, {m - low}]")
    assert low <= odd <= m - low


@pytest.mark.parametrize("n", [3, 5])
def test_every_order_of_a_tiny_epoch_is_equally_likely(n):
    """M = 4000 orders (40 seeds x 100 epochs) of n records: which of the n! orders.

    Null: multinomial(M, 1/n!), Pearson chi2 with n! - 1 dof (5, 119); reject above the
    1 - 1e-4 quantile (expected counts 667 and 33).
    """
    o = orders(n, 40, 100)
    code = np.zeros(o.shape[0], np.int64)
    for i in range(n):
        code = code * n + o[:, i]
    counts = np.unique(code, return_counts=True)[1]
    k = math.factorial(n)
    counts = np.append(counts, np.zeros(k - counts.size))
    stat = pearson_chi2(counts, np.full(k, o.shape[0] / k))
    crit = float(stats.chi2.isf(ALPHA, k - 1))
    report(f"full law n={n}", chi2=stat, dof=k - 1, crit=crit, seen=int((counts > 0).sum()))
    assert stat < crit


def test_feistel_keys_cover_the_domain_directly():
    """FeistelPermutation itself (no sampler): position 0 under 4000 keys 0..3999, n = 100.

    Null: uniform over 100 values; Pearson chi2 with 99 dof at level 1e-4.
    """
    n = 100
    images = np.array([FeistelPermutation(n, key)(np.zeros(1, np.int64))[0] for key in range(4000)])
    stat = pearson_chi2(np.bincount(images, minlength=n), np.full(n, images.size / n))
    crit = float(stats.chi2.isf(ALPHA, n - 1))
    report("feistel key sweep", chi2=stat, crit=crit)
    assert stat < crit


# --------------------------------------------------------------------------- window shuffle


def window_sampler(n: int, buffer_size: int, seed: int) -> WindowShuffleSampler:
    base = SequentialSampler(SequentialSamplerConfig(num_records=n))
    return WindowShuffleSampler(WindowShuffleConfig(buffer_size=buffer_size, seed=seed), base=base)


WINDOW_N, WINDOW_B = 100, 8


@functools.cache
def window_orders() -> tuple[np.ndarray, np.ndarray]:
    """Orders and phases of n = 100, buffer 8, seeds 0..9 x epochs 0..39."""
    got, phases = [], []
    for seed in range(10):
        s = window_sampler(WINDOW_N, WINDOW_B, seed)
        for epoch in range(40):
            got.append(s.epoch_order(epoch))
            phases.append(s.phase(epoch))
    return np.stack(got), np.array(phases)


def test_window_shuffle_is_a_permutation_that_keeps_records_in_their_window():
    """Every epoch is a permutation, and the records at positions [kB - phase, (k+1)B -
    phase) (clipped to [0, n)) are exactly the records of that range of the base order."""
    o, phases = window_orders()
    n, b = WINDOW_N, WINDOW_B
    for order, phase in zip(o, phases, strict=True):
        assert np.array_equal(np.sort(order), np.arange(n))
        assert np.all(np.abs(order - np.arange(n)) < b)
        edges = np.clip(np.arange(0, n + 2 * b, b) - phase, 0, n)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            assert np.array_equal(np.sort(order[lo:hi]), np.arange(lo, hi))


def test_window_shuffle_positions_within_a_full_window_are_uniform():
    """Full windows (B = 8) of 400 epochs (4660 windows): record offset vs position
    offset in the window. Rescaled Pearson statistic (see permutation_table_chi2) is
    chi2 with (B-1)**2 = 49 dof under the null; reject above its 1 - 1e-4 quantile."""
    o, phases = window_orders()
    n, b = WINDOW_N, WINDOW_B
    records, positions = [], []
    for order, phase in zip(o, phases, strict=True):
        starts = np.arange(0, n + b, b) - phase
        starts = starts[(starts >= 0) & (starts + b <= n)]
        for start in starts:
            records.append(order[start : start + b] - start)
            positions.append(np.arange(b))
    records, positions = np.concatenate(records), np.concatenate(positions)
    stat = permutation_table_chi2(records, positions, b)
    crit = float(stats.chi2.isf(ALPHA, (b - 1) ** 2))
    report("window position uniformity", windows=records.size // b, chi2=stat, crit=crit)
    assert stat < crit


def test_window_boundaries_move_between_epochs():
    """Phases of epochs (2j, 2j+1) for 100 seeds x j < 100 (10**4 disjoint pairs), B = 8.

    Null: the pair is uniform on the 8 x 8 grid (uniform phase, independent epochs);
    Pearson chi2 with 63 dof at level 1e-4. The fraction of pairs with unchanged
    boundaries is 1/8 under it.
    """
    b = WINDOW_B
    grid = np.zeros((b, b), np.int64)
    for seed in range(100):
        s = window_sampler(WINDOW_N, b, seed)
        phases = [s.phase(epoch) for epoch in range(200)]
        for j in range(100):
            grid[phases[2 * j], phases[2 * j + 1]] += 1
    stat = pearson_chi2(grid.ravel(), np.full(b * b, grid.sum() / b**2))
    crit = float(stats.chi2.isf(ALPHA, b * b - 1))
    same = np.trace(grid) / grid.sum()
    report("window phases", chi2=stat, crit=crit, unchanged=float(same))
    assert stat < crit
