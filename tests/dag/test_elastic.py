"""Elastic resume: a state saved with one batch size restores with another.

The record stream continues from the same record with every record's values
unchanged (randomness follows record ids, not batches); the rest of that epoch is
batched from the restored position, later epochs from their start. What changes the
records themselves is refused.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipelines import augmented

from datarax.core.errors import StateError
from datarax.dag.nodes import RebatchNode
from harness import assert_same_rest, snapshot

N = 43


def records(iterator):
    """(epoch, record id) -> image, and the order of (epoch, id) pairs, for the rest."""
    values, order, sizes = {}, [], []
    for batch in iterator:
        images = np.asarray(batch["image"])
        for rid, image in zip(batch.record_ids.tolist(), images, strict=True):
            values[(batch.epoch, rid)] = image
            order.append((batch.epoch, rid))
        sizes.append((batch.epoch, batch.batch_size))
    return values, order, sizes


def saved_after(batch_size, steps, **options):
    it = iter(augmented(N, batch_size, **options))
    for _ in range(steps):
        next(it)
    return json.loads(json.dumps(it.get_state())), it


@pytest.mark.parametrize(("old", "new"), [(8, 12), (8, 5), (8, 16), (12, 8), (8, 1)])
def test_the_record_stream_continues_from_the_same_record(old, new):
    state, original = saved_after(old, 3)
    expected, expected_order, _ = records(original)
    restored = iter(augmented(N, new))
    restored.set_state(state)
    values, order, sizes = records(restored)
    assert order == expected_order
    for key, image in values.items():
        np.testing.assert_array_equal(image, expected[key])
    # The rest of epoch 0 is batched from the restored position, later epochs from 0.
    rest = N - 3 * old
    epoch0 = [size for epoch, size in sizes if epoch == 0]
    assert epoch0 == [new] * (rest // new) + ([rest % new] if rest % new else [])
    epoch1 = [size for epoch, size in sizes if epoch == 1]
    assert epoch1 == [new] * (N // new) + ([N % new] if N % new else [])


def test_rebatch_sizes_may_change_too():
    def build(target):
        return augmented(N, 8) >> RebatchNode(target)

    it = iter(build(16))
    next(it)
    state = it.get_state()
    expected, expected_order, _ = records(it)
    restored = iter(build(6))
    restored.set_state(state)
    values, order, _ = records(restored)
    assert order == expected_order
    for key, image in values.items():
        np.testing.assert_array_equal(image, expected[key])


def test_states_after_an_elastic_restore_restore_exactly():
    state, _ = saved_after(8, 2)
    first = iter(augmented(N, 12))
    first.set_state(state)
    assert first.get_state()["origin"] == 16
    stream = [snapshot(batch) for batch in first]
    # Re-saving with batch size 12 and restoring with 12 continues exactly, origin kept.
    again = iter(augmented(N, 12))
    again.set_state(state)
    kept = []
    for k in range(len(stream)):
        saved = again.get_state()
        other = iter(augmented(N, 12))
        other.set_state(saved)
        assert_same_rest([snapshot(b) for b in other], stream[k:], f"step {k}")
        kept.append(snapshot(next(again)))
    assert kept == stream


def test_drop_remainder_may_change_and_an_empty_rest_moves_to_the_next_epoch():
    state, _ = saved_after(8, 5)  # 40 of 43 records handed out
    restored = iter(augmented(N, 16, drop_remainder=True))
    restored.set_state(state)
    assert (restored.get_state()["epoch"], restored.get_state()["position"]) == (1, 0)
    batch = next(restored)
    assert batch.epoch == 1 and batch.batch_size == 16


def test_the_number_of_epochs_may_change():
    state, original = saved_after(8, 3, num_epochs=2)
    _, order_two, _ = records(original)
    restored = iter(augmented(N, 8, num_epochs=3))
    restored.set_state(state)
    _, order_three, _ = records(restored)
    assert order_three[: len(order_two)] == order_two
    assert len(order_three) == len(order_two) + N


@pytest.mark.parametrize(
    "change",
    [{"seed": 1}, {"shuffle": False}, {"n": 44}],
)
def test_changes_to_the_records_are_refused_and_leave_the_iterator_unchanged(change):
    state, _ = saved_after(8, 3)
    options = {"n": N, **change}
    target = iter(augmented(options.pop("n"), 8, **options))
    before = target.get_state()
    with pytest.raises(StateError, match="produces other records"):
        target.set_state(state)
    assert target.get_state() == before


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(
    old=st.integers(1, 20),
    new=st.integers(1, 20),
    steps=st.integers(0, 12),
    drop=st.booleans(),
)
def test_any_batch_size_continues_the_record_order(old, new, steps, drop):
    it = iter(augmented(N, old, num_epochs=2))
    for _ in range(steps):
        next(it, None)
    state = it.get_state()
    expected = [(b.epoch, r) for b in it for r in b.record_ids.tolist()]
    restored = iter(augmented(N, new, num_epochs=2, drop_remainder=drop))
    restored.set_state(state)
    got = [(b.epoch, r) for b in restored for r in b.record_ids.tolist()]
    if not drop:
        assert got == expected
    else:  # each epoch's rest loses its short last batch of the new size, nothing else
        for epoch in (0, 1):
            want = [r for e, r in expected if e == epoch]
            have = [r for e, r in got if e == epoch]
            assert have == want[: len(want) // new * new]
