"""Resume through every node kind: a state saved before any step continues exactly.

:func:`assert_resumes_at_every_step` is the reusable check: it records a pipeline's
whole stream with the state saved before every step, then restores each state in a
fresh iterator of a freshly built pipeline and compares the rest of the stream bit
for bit. It is applied here to a pipeline per node kind (operators, Parallel/Merge,
unmerged Parallel, Branch, Switch, CacheNode, RebatchNode, ShuffleNode,
PrefetchNode) and to one combining them, on tiny shuffled datasets whose epochs end
with short batches, so the restore points cross epoch boundaries.

Every function used by an operator or a decision is defined at module level: two
pipelines built alike then share compiled code, which keeps the many rebuilt
pipelines cheap.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from datarax import from_source
from datarax.dag.nodes import (
    Branch,
    CacheNode,
    Merge,
    OperatorNode,
    PrefetchNode,
    RebatchNode,
    ShuffleNode,
    Switch,
)
from datarax.dag.pipeline import Pipeline
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig
from harness import (
    assert_reset_replays,
    assert_resumes_at_every_step,
    assert_same_rest,
    record_stream,
    snapshot,
)

NUM_RECORDS = 43  # batches of 8: five full and a short one of 3 per epoch
BATCH_SIZE = 8
NUM_EPOCHS = 3

# -- data and operators (module level, so rebuilt pipelines share compiled code) ---------


def make_source(n: int = NUM_RECORDS, placement: str = "auto") -> MemorySource:
    rng = np.random.default_rng(0)
    data = {
        "x": rng.standard_normal((n, 3)).astype(np.float32),
        "label": np.arange(n, dtype=np.int32),
    }
    return MemorySource(MemorySourceConfig(placement=placement), data=data)


def scale(element):
    return element.update_data({"x": element.data["x"] * 1.5 + 0.25})


def square(element):
    return element.update_data({"x": element.data["x"] * element.data["x"] - 1.0})


def negate(element):
    return element.update_data({"x": -element.data["x"]})


def noise(element, key):
    x = element.data["x"]
    return element.update_data({"x": x + jax.random.normal(key, x.shape, x.dtype)})


def tag(element, key):
    """Stochastic: adds a random per-record value to the state."""
    return element.update_state({"u": jax.random.uniform(key, ())})


def is_even(element):
    return element.data["label"] % 2 == 0


def by_three(element):
    return element.data["label"] % 3


def batch_ids_even(element):
    """One decision per batch: the parity of the sum of its (real) record ids."""
    ids = jnp.where(element.metadata["valid"], element.metadata["record_ids"], 0)
    return jnp.sum(ids) % 2 == 0


def op(fn) -> OperatorNode:
    return OperatorNode(ElementOperator(ElementOperatorConfig(), fn=fn))


def random_op(fn, seed: int = 7, stream: str = "augment") -> OperatorNode:
    config = ElementOperatorConfig(stochastic=True, stream_name=stream)
    return OperatorNode(ElementOperator(config, fn=fn, rngs=nnx.Rngs(seed)))


def base(*, shuffle: bool = True, placement: str = "auto", seed: int = 3, **options) -> Pipeline:
    return from_source(
        make_source(placement=placement),
        BATCH_SIZE,
        shuffle=shuffle,
        seed=seed,
        num_epochs=NUM_EPOCHS,
        **options,
    )


def combined(placement: str = "auto", seed: int = 3) -> Pipeline:
    """Window shuffle, cache, Parallel + Merge, Branch, Switch and Rebatch together."""
    return (
        base(placement=placement, seed=seed)
        >> ShuffleNode(16, seed=11)
        >> PrefetchNode(3)
        >> op(scale)
        >> CacheNode()
        >> (random_op(noise) | op(negate))
        >> Merge("mean")
        >> Branch(is_even, random_op(tag, 5, "tag"), random_op(tag, 6, "tag"))
        >> Switch(by_three, [op(square), None, op(negate)])
        >> RebatchNode(12)
    )


PIPELINES: dict[str, Callable[[], Pipeline]] = {
    "operators": lambda: base() >> op(scale) >> random_op(noise) >> op(square),
    "operators_one_batch_per_call": lambda: (
        base(batches_per_call=1) >> op(scale) >> random_op(noise) >> op(square)
    ),
    "parallel_merge_mean": lambda: base() >> (op(scale) | random_op(noise)) >> Merge("mean"),
    "parallel_merge_concat": lambda: (
        base() >> (op(scale) | random_op(noise)) >> Merge("concat") >> random_op(noise)
    ),
    "parallel_tuple": lambda: base() >> op(scale) >> (random_op(noise) | op(negate) | op(square)),
    "branch_per_record": lambda: base() >> Branch(is_even, random_op(noise), op(negate)),
    "branch_per_batch": lambda: (
        base() >> Branch(batch_ids_even, random_op(noise), op(square), per_batch=True)
    ),
    "switch_3_paths": lambda: base() >> Switch(by_three, [op(scale), random_op(noise), None]),
    "cache_all": lambda: base() >> op(scale) >> CacheNode() >> random_op(noise),
    # A chunk holds the whole epoch here, so the small cache never serves one.
    "cache_bounded_10": lambda: (
        base() >> op(scale) >> CacheNode(max_records=10) >> random_op(noise)
    ),
    # One batch per chunk: some chunks are served by the cache, others evict.
    "cache_bounded_40_one_batch_per_call": lambda: (
        base(batches_per_call=1) >> op(scale) >> CacheNode(max_records=40) >> random_op(noise)
    ),
    "rebatch_larger": lambda: base() >> random_op(noise) >> RebatchNode(16),
    "rebatch_smaller": lambda: base() >> random_op(noise) >> RebatchNode(4),
    "rebatch_non_dividing": lambda: base() >> random_op(noise) >> RebatchNode(6),
    "rebatch_non_dividing_two_batches_per_call": lambda: (
        base(batches_per_call=2) >> random_op(noise) >> RebatchNode(6)
    ),
    "rebatch_larger_drop": lambda: (
        base() >> random_op(noise) >> RebatchNode(16, drop_remainder=True)
    ),
    "rebatch_smaller_drop": lambda: (
        base() >> random_op(noise) >> RebatchNode(4, drop_remainder=True)
    ),
    "rebatch_non_dividing_drop": lambda: (
        base() >> random_op(noise) >> RebatchNode(6, drop_remainder=True)
    ),
    "rebatch_twice_then_branch_per_batch": lambda: (
        base(drop_remainder=True)
        >> RebatchNode(4)
        >> random_op(noise)
        >> RebatchNode(6)
        >> Branch(batch_ids_even, op(negate), random_op(noise), per_batch=True)
    ),
    "window_shuffle_sequential_source": lambda: (
        base(shuffle=False) >> ShuffleNode(12, seed=5) >> random_op(noise)
    ),
    "prefetch_0": lambda: base() >> PrefetchNode(0) >> random_op(noise),
    "prefetch_3": lambda: base() >> PrefetchNode(3) >> random_op(noise),
    "combined_host": lambda: combined("host"),
    "combined_device": lambda: combined("device"),
    "combined_one_batch_per_call": lambda: combined("device").with_options(batches_per_call=1),
}


# -- every node kind ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PIPELINES))
def test_resumes_at_every_step(name):
    stream = assert_resumes_at_every_step(PIPELINES[name])
    epochs = sorted({batches[0][0] for _, batches in stream})
    assert epochs == list(range(NUM_EPOCHS)), "every epoch is in the stream"


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_reset_replays_from_the_start(name):
    assert_reset_replays(PIPELINES[name])


def test_streams_have_the_expected_shape():
    """The pipelines above really cross epochs with short batches, tuples and regrouping."""

    def sizes(name):
        return [len(batches[0][1]) for _, batches in record_stream(PIPELINES[name]())[0]]

    assert sizes("operators") == [8, 8, 8, 8, 8, 3] * NUM_EPOCHS
    assert sizes("rebatch_larger") == [16, 16, 11] * NUM_EPOCHS
    assert sizes("rebatch_larger_drop") == [16, 16] * NUM_EPOCHS
    assert sizes("rebatch_smaller") == [4] * 10 + [3] + ([4] * 10 + [3]) * (NUM_EPOCHS - 1)
    assert sizes("rebatch_smaller_drop") == [4] * 10 * NUM_EPOCHS
    assert sizes("rebatch_non_dividing") == ([6] * 7 + [1]) * NUM_EPOCHS
    assert sizes("rebatch_non_dividing_drop") == [6] * 7 * NUM_EPOCHS
    assert sizes("rebatch_twice_then_branch_per_batch") == ([6] * 6 + [4]) * NUM_EPOCHS
    assert sizes("combined_device") == [12, 12, 12, 7] * NUM_EPOCHS
    stream, _ = record_stream(PIPELINES["parallel_tuple"]())
    assert all(is_tuple and len(batches) == 3 for is_tuple, batches in stream)
    # Every epoch is a permutation of the records, shuffled differently each epoch.
    stream, _ = record_stream(PIPELINES["combined_host"]())
    orders = {}
    for _, ((epoch, ids, _),) in stream:
        orders.setdefault(epoch, []).extend(ids)
    assert all(sorted(o) == list(range(NUM_RECORDS)) for o in orders.values())
    assert orders[0] != orders[1] != orders[2] != list(range(NUM_RECORDS))


def test_host_and_device_sources_give_the_same_combined_stream():
    host, _ = record_stream(combined("host"))
    device, _ = record_stream(combined("device"))
    assert host == device


# -- several breaks, exhausted and unused iterators ---------------------------------------


@pytest.mark.parametrize("name", ["combined_host", "combined_device", "rebatch_non_dividing"])
def test_several_breaks_in_one_run(name):
    make = PIPELINES[name]
    full, _ = record_stream(make())
    first_break, second_break = 3, len(full) - 4  # the second is in the last epoch
    it = iter(make())
    seen = [snapshot(next(it)) for _ in range(first_break)]
    state_1 = it.get_state()
    seen += [snapshot(next(it)) for _ in range(second_break - first_break)]
    state_2 = it.get_state()
    seen += [snapshot(b) for b in it]
    assert_same_rest(seen, full, "the iterator that saved two states")

    for k, state in [(first_break, state_1), (second_break, state_2)]:
        restored = iter(make())
        restored.set_state(state)
        assert_same_rest([snapshot(b) for b in restored], full[k:], f"state after {k} steps")
    # One iterator restored twice, after being used in between.
    again = iter(make())
    again.set_state(state_2)
    assert_same_rest([snapshot(next(again))], full[second_break : second_break + 1], "state 2")
    again.set_state(state_1)
    assert_same_rest([snapshot(b) for b in again], full[first_break:], "state 1 after state 2")


@pytest.mark.parametrize(
    "name", ["combined_device", "parallel_tuple", "cache_bounded_40_one_batch_per_call"]
)
def test_an_exhausted_iterators_state_restores_exhausted(name):
    make = PIPELINES[name]
    it = iter(make())
    assert len(list(it)) > 0
    state = it.get_state()
    restored = iter(make())
    restored.set_state(state)
    assert list(restored) == []
    with pytest.raises(StopIteration):
        next(restored)
    assert restored.get_state() == state


@pytest.mark.parametrize("name", ["combined_host", "parallel_tuple", "rebatch_smaller_drop"])
def test_an_unused_iterators_state_restores_the_full_stream(name):
    make = PIPELINES[name]
    full, _ = record_stream(make())
    state = iter(make()).get_state()
    restored = iter(make())
    restored.set_state(state)
    assert_same_rest([snapshot(b) for b in restored], full, "unused iterator's state")


def test_an_unused_iterator_of_an_iterated_pipeline_restores_its_own_epochs():
    """A second loop over a pipeline starts at the next epochs; so does its state."""
    pipeline = combined("device")
    first = [snapshot(b) for b in pipeline]
    second_it = iter(pipeline)
    state = second_it.get_state()
    assert state["first_epoch"] == state["epoch"] == NUM_EPOCHS
    second = [snapshot(b) for b in second_it]
    assert {b[0][0] for _, b in second} == set(range(NUM_EPOCHS, 2 * NUM_EPOCHS))
    assert second != first
    restored = iter(combined("device"))
    restored.set_state(state)
    assert_same_rest([snapshot(b) for b in restored], second, "second loop's state")


# -- caches and prefetching do not change the stream ----------------------------------


@pytest.mark.parametrize(
    "name", ["cache_all", "cache_bounded_40_one_batch_per_call", "combined_device"]
)
def test_restoring_into_a_pipeline_whose_cache_is_filled(name):
    """A restored iterator reading from a filled cache continues exactly as well."""
    pipeline = PIPELINES[name]()
    full, states = record_stream(pipeline)  # fills the pipeline's cache
    for k, state in enumerate(states):
        restored = iter(pipeline)
        restored.set_state(state)
        assert_same_rest([snapshot(b) for b in restored], full[k:], f"filled cache, step {k}")


def test_the_bounded_cache_pipeline_is_served_by_its_cache_and_evicts(monkeypatch):
    """``cache_bounded_40_one_batch_per_call`` exercises hits, misses and evictions."""
    from datarax.dag import chunks

    starts = []
    chunk_inputs = chunks.chunk_inputs

    def spy(*args):
        out = chunk_inputs(*args)
        starts.append(out[0])
        return out

    monkeypatch.setattr(chunks, "chunk_inputs", spy)
    pipeline = PIPELINES["cache_bounded_40_one_batch_per_call"]()
    list(pipeline)
    assert 0 < sum(starts) < len(starts), f"chunk starts (1 = from the cache): {starts}"
    assert pipeline.runtime.stores[0].size == 40


def test_states_restore_across_prefetch_depths():
    """The prefetch depth is not part of the stream: its states restore at any depth."""
    makers = [
        PIPELINES["prefetch_0"],
        PIPELINES["prefetch_3"],
        lambda: base() >> random_op(noise),
    ]
    full, states = record_stream(makers[0]())
    for make in makers:
        assert record_stream(make())[0] == full
        for k in (0, 5, 6, 7, len(full)):
            restored = iter(make())
            restored.set_state(states[k])
            assert_same_rest([snapshot(b) for b in restored], full[k:], f"step {k}")


# -- compilation ------------------------------------------------------------------------


def compilations_by_epoch(pipeline: Pipeline, counter) -> dict[int, int]:
    """The compilation count after the last batch of each epoch (computed to the end)."""
    count_after_epoch: dict[int, int] = {}
    for output in pipeline:
        jax.block_until_ready(output.data)
        count_after_epoch[output.epoch] = counter.count
    assert sorted(count_after_epoch) == list(range(NUM_EPOCHS))
    return count_after_epoch


@pytest.mark.parametrize(("placement", "seed"), [("host", 12345), ("device", 12346)])
def test_no_compilation_after_the_first_epoch_of_the_combined_pipeline(
    compile_counter, placement, seed
):
    # A seed of its own: its functions are compiled by this test, during epoch 0.
    counts = compilations_by_epoch(combined(placement, seed=seed), compile_counter)
    assert counts[0] > 0, "nothing was compiled: the counter sees no compilation"
    assert counts[2] == counts[0], f"compilations after epoch 0: {counts}"


CACHE_COMPILED_LAZILY = (
    "library bug: the functions starting at a CacheNode are compiled ahead only by "
    "_ProgramSchedule._warm_up (compile_cache_programs), which runs only when the "
    "pipeline's chunk is larger than one batch and its (run function, rows) was not "
    "warmed before; otherwise the first chunk served by the cache compiles in epoch 1"
)


@pytest.mark.parametrize(("placement", "seed"), [("host", 22345), ("device", 22346)])
def test_no_compilation_after_the_first_epoch_with_one_batch_per_call(
    compile_counter, placement, seed
):
    # One batch per call is also the default for batches of 4 MiB or more.
    # prefetch=0: nothing is computed ahead, so each compilation shows in its epoch.
    pipeline = combined(placement, seed=seed).with_options(batches_per_call=1, prefetch=0)
    counts = compilations_by_epoch(pipeline, compile_counter)
    assert counts[0] > 0
    assert counts[2] == counts[0], f"compilations after epoch 0: {counts}"


def test_no_compilation_after_the_first_epoch_of_a_pipeline_built_like_an_earlier_one(
    compile_counter,
):
    def build(num_records):
        return (
            from_source(
                make_source(num_records),
                BATCH_SIZE,
                shuffle=True,
                seed=32345,
                num_epochs=NUM_EPOCHS,
                prefetch=0,
            )
            >> op(scale)
            >> CacheNode()
            >> random_op(noise)
        )

    list(build(NUM_RECORDS))
    # One record more: the same structure and chunk size, a store of another shape.
    counts = compilations_by_epoch(build(NUM_RECORDS + 1), compile_counter)
    assert counts[2] == counts[0], f"compilations after epoch 0: {counts}"
