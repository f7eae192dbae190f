"""Fuzzing the public constructors and iterator states with hypothesis.

For every generated input: either it works and the stream equals a NumPy model of
it, or it raises a structured DataraxError; a witness iterator living through all
of them keeps giving the same batches as its control.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from witness import RECORDS, Pair, assert_structured, witness_pipeline

from datarax import DataraxError, from_source
from datarax.control import BadRecordPolicy
from datarax.operators.image import NormalizeConfig, RandomCropConfig, RandomFlipConfig
from datarax.samplers import RangeSamplerConfig, ShuffleSamplerConfig
from datarax.sources import MemorySource, MemorySourceConfig, MixedSourceConfig
from harness import record_stream, snapshot

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: Values of any kind a user might pass by mistake (and some right ones).
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.binary(max_size=3),
    st.lists(st.integers(-2, 5), max_size=3),
    st.tuples(st.integers(-2, 9), st.integers(-2, 9)),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.integers(0, 9).map(np.int64),
    st.floats(0, 2).map(np.float32),
)


@pytest.fixture(scope="module")
def pair() -> Pair:
    return Pair()


def attempt(build):
    """``build()``'s result, or ``None`` after checking that it raised a structured error."""
    try:
        return build()
    except DataraxError as error:
        assert_structured(error)
        return None


# -- from_source ----------------------------------------------------------------------------


def model_stream(n, batch_size, drop_remainder, num_epochs):
    """The record ids of every batch of every epoch, in order, without shuffling."""
    ids = np.arange(n)
    cuts = list(range(0, n, batch_size))
    epoch = [ids[c : c + batch_size] for c in cuts]
    if drop_remainder and epoch and len(epoch[-1]) < batch_size:
        epoch = epoch[:-1]
    return [epoch] * num_epochs


@FUZZ
@given(
    batch_size=st.one_of(st.integers(1, 12), anything),
    shuffle=st.one_of(st.booleans(), anything),
    seed=st.one_of(st.integers(0, 2**64 - 1), anything),
    drop_remainder=st.one_of(st.booleans(), anything),
    num_epochs=st.one_of(st.integers(1, 2), anything),
    prefetch=st.one_of(st.integers(0, 3), anything),
)
def test_from_source_builds_the_model_stream_or_refuses_clearly(
    pair, batch_size, shuffle, seed, drop_remainder, num_epochs, prefetch
):
    n = RECORDS
    source = MemorySource(MemorySourceConfig(), data={"x": np.arange(n, dtype=np.float32)})
    kwargs = dict(
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
        num_epochs=num_epochs,
        prefetch=prefetch,
    )
    pipeline = attempt(lambda: from_source(source, batch_size, **kwargs))
    if pipeline is not None:
        # Everything accepted is exactly what it says: ints, bools, in range.
        assert int(batch_size) == batch_size >= 1 and not isinstance(batch_size, bool)
        assert shuffle in (True, False) and drop_remainder in (True, False)
        assert 0 <= int(seed) < 2**64 and int(seed) == seed
        read = 2 if num_epochs is None else int(num_epochs)  # None: endless; read two
        expected = model_stream(n, int(batch_size), drop_remainder, read)
        epochs = list(itertools.islice(iter(pipeline), sum(len(e) for e in expected)))
        by_epoch: dict[int, list] = {}
        for b in epochs:
            by_epoch.setdefault(int(b.epoch), []).append(np.asarray(b.record_ids))
        assert len(by_epoch) == len(expected) or not expected[0]
        for e, want in enumerate(expected):
            got = by_epoch.get(e, [])
            assert [len(g) for g in got] == [len(w) for w in want]
            if shuffle:
                if not drop_remainder:
                    assert sorted(np.concatenate(got).tolist()) == list(range(n))
            else:
                assert [g.tolist() for g in got] == [w.tolist() for w in want]
            for b in [b for b in epochs if int(b.epoch) == e]:  # values follow the ids
                np.testing.assert_array_equal(np.asarray(b["x"]), np.asarray(b.record_ids))
    pair.assert_same_next()


# -- configs -------------------------------------------------------------------------------

CONFIGS = {
    RandomCropConfig: ("size", "padding", "fill", "field"),
    RandomFlipConfig: ("direction", "probability", "field"),
    NormalizeConfig: ("mean", "std", "dtype", "field"),
    ShuffleSamplerConfig: ("num_records", "seed"),
    RangeSamplerConfig: ("start", "stop", "step", "shuffle", "seed"),
    MemorySourceConfig: ("placement", "device_max_bytes", "pad_to", "pad_value"),
    MixedSourceConfig: ("weights", "window", "num_records", "shuffle", "seed", "source_field"),
    BadRecordPolicy: ("on_error", "max_skipped", "max_fraction"),
}


@FUZZ
@given(data=st.data(), config=st.sampled_from(sorted(CONFIGS, key=lambda c: c.__name__)))
def test_configs_accept_or_refuse_clearly(pair, data, config):
    fields = CONFIGS[config]
    chosen = data.draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields)))
    kwargs = {f: data.draw(anything, label=f) for f in chosen}
    try:
        built = config(**kwargs)
    except DataraxError as error:
        assert_structured(error, config.__name__)
    else:
        # An accepted config describes itself and holds no NaN where numbers go.
        described = built.to_dict()
        for value in described.values():
            if isinstance(value, float):
                assert not math.isnan(value) or config is RandomCropConfig
    pair.assert_same_next()


# -- iterator states -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded():
    """The witness pipeline's whole stream and the state before every step."""
    return record_stream(witness_pipeline())


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 2**65),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


@FUZZ
@given(data=st.data())
def test_any_state_is_restored_exactly_or_refused_without_changing_anything(pair, recorded, data):
    stream, states = recorded
    k = data.draw(st.integers(0, len(states) - 1), label="step")
    state = json.loads(json.dumps(states[k]))
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        key = data.draw(st.sampled_from(sorted(state) + ["epoch", "position", "extra"]))
        if data.draw(st.booleans(), label="drop"):
            state.pop(key, None)
        else:
            state[key] = data.draw(json_values, label=key)
    it = pair.witness
    before = it.get_state()
    try:
        it.set_state(state)
    except DataraxError as error:
        assert_structured(error, "PipelineIterator.set_state")
        assert it.get_state() == before
        pair.assert_same_next()
        return
    # Accepted: the state is one the pipeline really passes through, and the rest of
    # the stream is the recorded one from there.
    restored = it.get_state()
    assert restored in states, f"accepted a state the stream never reaches: {state}"
    j = states.index(restored)
    rest = [snapshot(b) for b in it]
    assert rest == stream[j:]
    it.set_state(before)  # back in step with the control
    pair.assert_same_next()
