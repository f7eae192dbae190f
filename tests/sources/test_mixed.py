"""MixedSource: exact proportions per window, components cycling through their own
epochs, determinism, resume, and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax import from_source
from datarax.core.errors import ConfigError, SourceError
from datarax.core.rng import mix64
from datarax.samplers.feistel import FeistelPermutation
from datarax.sources import MemorySource, MemorySourceConfig, MixedSource, MixedSourceConfig
from datarax.sources.mixed import _MIX_STREAM, window_counts
from harness import assert_resumes_at_every_step, snapshot


def component(offset: int, n: int) -> MemorySource:
    return MemorySource(
        MemorySourceConfig(placement="host"),
        data={"x": offset + np.arange(n, dtype=np.int32), "y": np.full(n, offset, np.float32)},
    )


def mixed(weights=(3, 1), sizes=(10, 4), window=4, **config) -> MixedSource:
    sources = [component(1000 * i, n) for i, n in enumerate(sizes)]
    return MixedSource(
        MixedSourceConfig(weights=tuple(weights), window=window, source_field="src", **config),
        sources=sources,
    )


@given(
    weights=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=5).filter(lambda w: sum(w) > 0),
    window=st.integers(1, 500),
)
@settings(max_examples=60, deadline=None)
def test_window_counts_are_the_largest_remainder_rounding(weights, window):
    counts = window_counts(weights, window)
    exact = np.asarray(weights) / sum(weights) * window
    assert counts.sum() == window
    assert np.all(np.abs(counts - exact) < 1.0)  # never more than one away from exact
    assert np.all(counts >= np.floor(exact))


@given(
    weights=st.lists(st.integers(1, 9), min_size=2, max_size=4),
    window=st.integers(2, 60),
    windows=st.integers(1, 4),
    shift=st.integers(0, 50),
)
@settings(max_examples=40, deadline=None)
def test_every_window_has_exact_proportions(weights, window, windows, shift):
    mix = mixed(weights=weights, sizes=[7] * len(weights), window=window, shuffle=True)
    counts = window_counts(weights, window)
    for w in range(windows):
        positions = np.arange(w * window, (w + 1) * window)
        src = mix.read(positions)["src"]
        assert np.bincount(src, minlength=len(weights)).tolist() == counts.tolist()


def test_components_cycle_through_their_own_epochs():
    mix = mixed(weights=(1, 1), sizes=(6, 2), window=2, num_records=8, shuffle=False)
    x = mix.read(np.arange(8))["x"].tolist()
    # component 0 gets one record per window, in order; component 1 (2 records) cycles
    assert x == [0, 1000, 1, 1001, 2, 1000, 3, 1001]
    # the pipeline's next epoch continues the components where epoch 0 stopped
    epoch1 = mix.read_epoch(np.arange(8), 1)["x"].tolist()
    assert epoch1 == [4, 1000, 5, 1001, 0, 1000, 1, 1001]


def test_shuffled_components_are_a_permutation_per_component_epoch():
    mix = mixed(weights=(1, 1), sizes=(6, 3), window=2, num_records=12, seed=5)
    component, ids = mix.locate(np.arange(12))
    for c, n in ((0, 6), (1, 3)):
        mine = ids[component == c]
        for e in range(len(mine) // n):
            block = mine[e * n : (e + 1) * n]
            assert sorted(block.tolist()) == list(range(n))
            expected = FeistelPermutation(n, mix64(_MIX_STREAM, 5, c, e))(np.arange(n))
            assert block.tolist() == expected.tolist()
    # component 1 has 6 records in 12 positions: two of its epochs, in different orders
    ones = ids[component == 1]
    assert ones[:3].tolist() != ones[3:].tolist()


def test_values_come_from_the_located_records():
    mix = mixed(weights=(2, 1, 1), sizes=(5, 3, 4), window=8, num_records=24, seed=1)
    out = mix.read_epoch(np.arange(24), 2)
    component, ids = mix.locate(np.arange(24), 2)
    assert out["x"].tolist() == (1000 * component + ids).tolist()
    assert out["y"].tolist() == (1000.0 * component).tolist()
    assert out["src"].tolist() == component.tolist()


def test_a_pipeline_over_a_mix_is_deterministic_and_resumes_exactly():
    def build():
        return from_source(
            mixed(weights=(3, 1), sizes=(10, 4), window=4, num_records=16),
            4,
            shuffle=True,
            seed=3,
            num_epochs=3,
        )

    first = [snapshot(b) for b in build()]
    assert first == [snapshot(b) for b in build()]
    epochs = [[b for b in first if b[0] == e] for e in range(3)]
    assert epochs[0] != epochs[1]  # the components move on between epochs
    assert_resumes_at_every_step(build)


def test_unshuffled_pipeline_windows_are_exact_in_batches():
    p = from_source(mixed(weights=(3, 1), sizes=(9, 5), window=4, num_records=40), 4)
    for batch in p:
        assert sorted(np.asarray(batch["src"]).tolist()) == [0, 0, 0, 1]


def test_errors_name_what_is_wrong():
    a = component(0, 4)
    other = MemorySource(MemorySourceConfig(), data={"x": np.zeros(3, np.int64) + 1})
    with pytest.raises(SourceError, match=r"component 1 .*different field"):
        MixedSource(MixedSourceConfig(weights=(1, 1)), sources=[a, other])
    floats = MemorySource(
        MemorySourceConfig(), data={"x": np.zeros(3, np.float32), "y": np.zeros(3, np.float32)}
    )
    with pytest.raises(SourceError, match=r"field 'x'.*expected int32\(\) as in component 0"):
        MixedSource(MixedSourceConfig(weights=(1, 1)), sources=[a, floats])
    with pytest.raises(ConfigError, match="one weight per source; expected 2 weights, found 1"):
        MixedSource(MixedSourceConfig(weights=(1,)), sources=[a, a])
    with pytest.raises(ConfigError, match="weights sum to zero"):
        MixedSourceConfig(weights=(0, 0))
    with pytest.raises(ConfigError, match="invalid weights"):
        MixedSourceConfig(weights=(1, -1))
    with pytest.raises(SourceError, match="not a data source"):
        MixedSource(MixedSourceConfig(weights=(1, 1)), sources=[a, [1, 2]])


def _negate(record):
    return {**record, "x": -record["x"]}


def test_host_operators_see_each_epochs_records_of_the_mix():
    from datarax.control import HostOperator

    def build(host: bool):
        mix = mixed(weights=(1, 1), sizes=(6, 2), window=2, num_records=8, shuffle=False)
        pipeline = from_source(mix, 4, num_epochs=2)
        return pipeline >> HostOperator(_negate) if host else pipeline

    plain = [np.asarray(b["x"]).tolist() for b in build(False)]
    negated = [(-np.asarray(b["x"])).tolist() for b in build(True)]
    assert negated == plain
    assert plain[2] == [4, 1000, 5, 1001]  # epoch 1 continues the components
