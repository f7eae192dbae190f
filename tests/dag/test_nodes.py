"""DAG nodes: Parallel/Merge, Branch/Switch, Rebatch, Shuffle, Prefetch, Cache, build errors.

Every expectation is computed with NumPy from the source arrays: images are small
integer-valued float32 arrays (so sums, means and quarter weights are exact) and
``label`` is the record id.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from pipelines import flip, image_data

from datarax import from_source
from datarax.core.errors import PipelineBuildError
from datarax.dag.nodes import (
    BatchNode,
    Branch,
    CacheNode,
    DataSourceNode,
    Merge,
    Node,
    OperatorNode,
    Parallel,
    PrefetchNode,
    RebatchNode,
    Sequential,
    ShuffleNode,
    Switch,
)
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig

N = 20
IMAGES = image_data(N)["image"]  # (N, 4, 6, 1), integers 0..254 as float32
RECORD_SIZE = int(np.prod(IMAGES.shape[1:]))


# -- helpers ------------------------------------------------------------------------


def source(n: int = N, placement: str = "auto") -> MemorySource:
    return MemorySource(MemorySourceConfig(placement=placement), data=image_data(n))


def node(fn) -> OperatorNode:
    return OperatorNode(ElementOperator(ElementOperatorConfig(), fn=fn))


def times2(element):
    return element.update_data({"image": element.data["image"] * 2.0})


def plus10(element):
    return element.update_data({"image": element.data["image"] + 10.0})


def negate(element):
    return element.update_data({"image": -element.data["image"]})


def normalize(element):
    return element.update_data({"image": element.data["image"] / 255.0})


def fill(value: float) -> OperatorNode:
    """A node setting every pixel to ``value``."""

    def fill_image(element):
        return element.update_data({"image": jnp.full_like(element.data["image"], value)})

    return node(fill_image)


def random_flip(seed: int = 7) -> ElementOperator:
    config = ElementOperatorConfig(stochastic=True, stream_name="augment")
    return ElementOperator(config, fn=flip, rngs=nnx.Rngs(seed))


class Scale(ElementOperator):
    """Multiplies images by a learnable ``scale``."""

    def __init__(self, scale: float = 2.0) -> None:
        super().__init__(ElementOperatorConfig())
        self.scale = nnx.Param(jnp.float32(scale))

    def transform(self, element, key):
        return element.update_data({"image": element.data["image"] * self.scale[...]})


def collect(pipeline):
    """(batches, record ids, fields) of a whole run, fields concatenated over batches."""
    batches = list(pipeline)
    ids = np.concatenate([b.record_ids for b in batches])
    fields = {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
    return batches, ids, fields


def per_record(fn, *arrays):
    """``fn`` applied record by record (axes inside ``fn`` count within a record)."""
    return np.stack([fn(*(a[i] for a in arrays)) for i in range(len(arrays[0]))])


def by_epoch_and_record(pipeline) -> dict[tuple[int, int], np.ndarray]:
    out = {}
    for b in pipeline:
        for rid, image in zip(b.record_ids.tolist(), np.asarray(b["image"]), strict=True):
            out[(b.epoch, rid)] = image
    return out


def assert_same_stream(a, b) -> None:
    """Two lists of batches hold the same epochs, record ids and values, bit for bit."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.epoch == y.epoch
        np.testing.assert_array_equal(x.record_ids, y.record_ids)
        assert list(x.keys()) == list(y.keys())
        for k in x:
            np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]))


def image_sum_above(threshold: float):
    """Per record: the sum of the image's pixels exceeds ``threshold`` (exact in float32)."""

    def condition(element):
        return jnp.sum(element.data["image"]) > threshold

    return condition


# -- Parallel and Merge -------------------------------------------------------------

X2, X10 = IMAGES * np.float32(2), IMAGES + np.float32(10)

MERGES = {
    "mean": (Merge("mean"), lambda a, b: (a + b) / np.float32(2)),
    "sum": (Merge("sum"), lambda a, b: a + b),
    "max": (Merge("max"), np.maximum),
    "min": (Merge("min"), np.minimum),
    "weighted": (
        Merge("weighted", weights=[0.25, 0.75]),
        lambda a, b: a * np.float32(0.25) + b * np.float32(0.75),
    ),
    "concat-1": (Merge("concat", axis=-1), lambda a, b: np.concatenate([a, b], axis=-1)),
    "concat0": (Merge("concat", axis=0), lambda a, b: np.concatenate([a, b], axis=0)),
    "concat-default": (Merge("concat"), lambda a, b: np.concatenate([a, b], axis=-1)),
    "stack0": (Merge("stack", axis=0), lambda a, b: np.stack([a, b], axis=0)),
    "stack-1": (Merge("stack", axis=-1), lambda a, b: np.stack([a, b], axis=-1)),
    "stack-default": (Merge("stack"), lambda a, b: np.stack([a, b], axis=0)),
}


@pytest.mark.parametrize("name", list(MERGES))
def test_merge_strategies_equal_numpy_per_record(name):
    merge, reference = MERGES[name]
    pipeline = from_source(source(), 8) >> (node(times2) | node(plus10)) >> merge
    batches, ids, fields = collect(pipeline)
    want = per_record(reference, X2, X10)
    assert [b.batch_size for b in batches] == [8, 8, 4]
    np.testing.assert_array_equal(ids, np.arange(N))
    assert fields["image"].dtype == np.float32
    np.testing.assert_array_equal(fields["image"], want)  # shapes included
    assert pipeline.output_spec[0]["image"].shape == want.shape[1:]
    # The int label is not combined: it comes through from branch 0, unchanged.
    assert fields["label"].dtype == np.int32
    np.testing.assert_array_equal(fields["label"], np.arange(N))


def test_merge_shapes_count_axes_within_a_record():
    shapes = {}
    for name in ("concat-1", "concat0", "stack0", "stack-1"):
        pipeline = from_source(source(), 8) >> (node(times2) | node(plus10)) >> MERGES[name][0]
        shapes[name] = next(iter(pipeline))["image"].shape
    assert shapes == {
        "concat-1": (8, 4, 6, 2),
        "concat0": (8, 8, 6, 1),
        "stack0": (8, 2, 4, 6, 1),
        "stack-1": (8, 4, 6, 1, 2),
    }


def test_merge_fields_names_the_combined_fields():
    pipeline = (
        from_source(source(), 8) >> (node(times2) | node(plus10)) >> Merge("sum", fields=["label"])
    )
    _, _, fields = collect(pipeline)
    assert fields["label"].dtype == np.int32
    np.testing.assert_array_equal(fields["label"], 2 * np.arange(N))
    np.testing.assert_array_equal(fields["image"], X2)  # not combined: branch 0


def test_merge_fields_can_name_float_and_int_fields():
    pipeline = (
        from_source(source(), 8)
        >> (node(times2) | node(plus10))
        >> Merge("max", fields=["image", "label"])
    )
    _, _, fields = collect(pipeline)
    np.testing.assert_array_equal(fields["image"], np.maximum(X2, X10))
    np.testing.assert_array_equal(fields["label"], np.arange(N))


def test_merge_mean_of_an_int_field_keeps_its_dtype():
    pipeline = (
        from_source(source(), 8) >> (node(times2) | node(plus10)) >> Merge("mean", fields=["label"])
    )
    assert pipeline.output_spec[0]["label"].dtype == np.int32


def test_weighted_merge_of_an_int_field_uses_the_weights():
    pipeline = (
        from_source(source(), 8)
        >> (node(times2) | node(plus10))
        >> Merge("weighted", fields=["label"], weights=[0.5, 1.5])
    )
    _, _, fields = collect(pipeline)
    np.testing.assert_array_equal(fields["label"], 2 * np.arange(N))


def test_three_branches_are_flattened_into_one_parallel():
    a, b, c = node(times2), node(plus10), node(negate)
    par = a | b | c
    assert isinstance(par, Parallel) and par.branches == (a, b, c)
    _, _, summed = collect(from_source(source(), 8) >> par >> Merge("sum"))
    np.testing.assert_array_equal(summed["image"], X2 + X10 + -IMAGES)
    _, _, stacked = collect(from_source(source(), 8) >> par >> Merge("stack", axis=0))
    np.testing.assert_array_equal(stacked["image"], np.stack([X2, X10, -IMAGES], axis=1))
    np.testing.assert_array_equal(stacked["label"], np.arange(N))


def test_nested_parallel_merges_inside_a_branch():
    a, b, c = node(times2), node(plus10), node(negate)
    inner = (b | c) >> Merge("sum")
    par = a | inner
    assert isinstance(inner, Sequential) and len(par.branches) == 2
    _, _, fields = collect(from_source(source(), 8) >> par >> Merge("mean"))
    np.testing.assert_array_equal(fields["image"], (X2 + (X10 + -IMAGES)) / np.float32(2))
    np.testing.assert_array_equal(fields["label"], np.arange(N))


def test_an_unmerged_parallel_yields_one_batch_per_branch():
    pipeline = from_source(source(), 8) >> (node(times2) | node(plus10))
    batches = list(pipeline)
    assert len(batches) == 3
    for i, pair in enumerate(batches):
        assert isinstance(pair, tuple) and len(pair) == 2
        ids = np.arange(8 * i, min(8 * i + 8, N))
        for batch, want in zip(pair, (X2, X10), strict=True):
            np.testing.assert_array_equal(batch.record_ids, ids)
            assert batch.epoch == 0 and batch.batch_size == ids.size
            np.testing.assert_array_equal(np.asarray(batch["image"]), want[ids])
            np.testing.assert_array_equal(np.asarray(batch["label"]), ids)


# -- Branch and Switch, per record --------------------------------------------------

THRESHOLD = 127.0 * RECORD_SIZE  # mean pixel above 127
ABOVE = IMAGES.reshape(N, -1).sum(axis=1) > THRESHOLD


def test_the_data_takes_both_paths():
    assert 0 < ABOVE.sum() < N


def test_branch_per_record_sends_each_record_down_its_own_path():
    pipeline = from_source(source(), 8) >> Branch(
        image_sum_above(THRESHOLD), node(times2), node(negate)
    )
    _, ids, fields = collect(pipeline)
    np.testing.assert_array_equal(ids, np.arange(N))
    want = np.where(ABOVE[:, None, None, None], X2, -IMAGES)
    np.testing.assert_array_equal(fields["image"], want)
    np.testing.assert_array_equal(fields["label"], np.arange(N))


@pytest.mark.parametrize("true_path", ["node", "operator"])
def test_branch_without_false_path_passes_records_through(true_path):
    double = node(times2)
    path = double if true_path == "node" else double.operator
    pipeline = from_source(source(), 8, shuffle=True, seed=4) >> Branch(
        image_sum_above(THRESHOLD), path
    )
    _, ids, fields = collect(pipeline)
    assert sorted(ids.tolist()) == list(range(N))
    want = np.where(ABOVE[ids][:, None, None, None], X2[ids], IMAGES[ids])
    np.testing.assert_array_equal(fields["image"], want)
    np.testing.assert_array_equal(fields["label"], ids)


def test_switch_selects_a_path_per_record():
    pipeline = from_source(source(), 8) >> Switch(
        lambda e: e.data["label"] % 3, [node(times2), node(plus10), node(negate)]
    )
    _, _, fields = collect(pipeline)
    choices = np.stack([X2, X10, -IMAGES])
    want = choices[np.arange(N) % 3, np.arange(N)]
    np.testing.assert_array_equal(fields["image"], want)


def test_switch_clips_path_indices():
    # label - 1: record 0 asks for path -1 (clipped to 0), records >= 3 for paths > 2.
    pipeline = from_source(source(), 8) >> Switch(
        lambda e: e.data["label"] - 1, [node(times2), node(plus10), node(negate)]
    )
    _, _, fields = collect(pipeline)
    path = np.clip(np.arange(N) - 1, 0, 2)
    assert path.tolist()[:4] == [0, 0, 1, 2]
    want = np.stack([X2, X10, -IMAGES])[path, np.arange(N)]
    np.testing.assert_array_equal(fields["image"], want)


def test_a_random_operator_in_a_branch_flips_as_it_does_alone():
    def build(tail):
        return from_source(source(), 8, shuffle=True, seed=3, num_epochs=2) >> tail

    alone = by_epoch_and_record(build(OperatorNode(random_flip())))
    branched = by_epoch_and_record(
        build(Branch(lambda e: e.data["label"] % 2 == 0, random_flip(), None))
    )
    assert alone.keys() == branched.keys() == {(e, r) for e in (0, 1) for r in range(N)}
    flips = []
    for (epoch, rid), image in branched.items():
        if rid % 2 == 0:
            np.testing.assert_array_equal(image, alone[(epoch, rid)])
            flipped = not np.array_equal(image, IMAGES[rid])
            if flipped:
                np.testing.assert_array_equal(image, IMAGES[rid][:, ::-1])
            flips.append(flipped)
        else:
            np.testing.assert_array_equal(image, IMAGES[rid])
    assert 0 < sum(flips) < len(flips)


# -- Branch and Switch, per batch ---------------------------------------------------

BATCH_THRESHOLD = 127.5 * RECORD_SIZE  # mean pixel of the batch's real records


def batch_mean_above(element):
    valid = element.metadata["valid"]
    image = element.data["image"]
    total = jnp.sum(jnp.where(valid[:, None, None, None], image, 0.0))
    return total > BATCH_THRESHOLD * jnp.sum(valid).astype(jnp.float32)


@pytest.mark.parametrize("batches_per_call", [1, None])
def test_branch_per_batch_sends_whole_batches_down_one_path(batches_per_call):
    pipeline = from_source(
        source(), 8, shuffle=True, seed=1, num_epochs=3, batches_per_call=batches_per_call
    ) >> Branch(batch_mean_above, node(times2), node(plus10), per_batch=True)
    decisions = []
    for batch in pipeline:
        ids = batch.record_ids
        above = IMAGES[ids].sum() > BATCH_THRESHOLD * ids.size
        decisions.append(bool(above))
        want = X2[ids] if above else X10[ids]
        np.testing.assert_array_equal(np.asarray(batch["image"]), want)
        np.testing.assert_array_equal(np.asarray(batch["label"]), ids)
    assert len(decisions) == 9 and 0 < sum(decisions) < 9


def test_a_per_batch_decision_sees_which_rows_are_valid():
    # 10 records in batches of 4: the last batch has 2 real rows and 2 of padding.
    pipeline = from_source(source(10), 4) >> Switch(
        lambda e: jnp.sum(e.metadata["valid"]), [fill(k) for k in range(5)], per_batch=True
    )
    batches = list(pipeline)
    assert [b.batch_size for b in batches] == [4, 4, 2]
    assert [np.unique(np.asarray(b["image"])).tolist() for b in batches] == [[4.0], [4.0], [2.0]]


def test_a_per_batch_decision_after_a_rebatch_sees_the_new_batches():
    pipeline = (
        from_source(source(), 4)
        >> RebatchNode(8)
        >> Switch(
            lambda e: jnp.sum(e.metadata["valid"]), [fill(k) for k in range(9)], per_batch=True
        )
    )
    batches = list(pipeline)
    assert [b.batch_size for b in batches] == [8, 8, 4]
    assert [np.unique(np.asarray(b["image"])).tolist() for b in batches] == [[8.0], [8.0], [4.0]]


def test_a_per_batch_decision_sees_the_record_ids_and_epoch():
    # Path 1 when the batch holds record 0 in an odd epoch.
    def selector(e):
        has_zero = jnp.any((e.metadata["record_ids"] == 0) & e.metadata["valid"])
        return (has_zero & (e.metadata["epoch"] % 2 == 1)).astype(jnp.int32)

    pipeline = from_source(source(), 8, shuffle=True, seed=2, num_epochs=2) >> Switch(
        selector, [None, node(negate)], per_batch=True
    )
    for batch in pipeline:
        ids = batch.record_ids
        negated = batch.epoch == 1 and 0 in ids.tolist()
        want = -IMAGES[ids] if negated else IMAGES[ids]
        np.testing.assert_array_equal(np.asarray(batch["image"]), want)


# -- RebatchNode --------------------------------------------------------------------


def test_rebatch_regroups_records_in_order():
    pipeline = from_source(source(40), 8) >> node(times2) >> RebatchNode(12)
    batches, ids, fields = collect(pipeline)
    assert pipeline.batch_size == 12
    assert [b.batch_size for b in batches] == [12, 12, 12, 4]
    assert [b["image"].shape[0] for b in batches] == [12, 12, 12, 4]
    np.testing.assert_array_equal(ids, np.arange(40))
    np.testing.assert_array_equal(fields["label"], np.arange(40))
    np.testing.assert_array_equal(fields["image"], image_data(40)["image"] * 2)


def test_rebatch_drop_remainder_drops_the_short_batch():
    pipeline = from_source(source(40), 8) >> node(times2) >> RebatchNode(12, drop_remainder=True)
    batches, ids, _ = collect(pipeline)
    assert [b.batch_size for b in batches] == [12, 12, 12]
    np.testing.assert_array_equal(ids, np.arange(36))


def test_rebatch_to_a_size_that_does_not_divide():
    pipeline = from_source(source(37), 8) >> node(plus10) >> RebatchNode(5)
    batches, ids, fields = collect(pipeline)
    assert [b.batch_size for b in batches] == [5] * 7 + [2]
    np.testing.assert_array_equal(ids, np.arange(37))
    np.testing.assert_array_equal(fields["image"], image_data(37)["image"] + 10)


def test_rebatch_never_mixes_epochs():
    def run(*tail):
        pipeline = from_source(source(37), 8, shuffle=True, seed=5, num_epochs=2)
        for t in tail:
            pipeline = pipeline >> t
        return list(pipeline)

    plain = run(node(times2))
    rebatched = run(node(times2), RebatchNode(5))
    assert [b.batch_size for b in rebatched] == ([5] * 7 + [2]) * 2
    assert [b.epoch for b in rebatched] == [0] * 8 + [1] * 8
    for epoch in (0, 1):
        want = np.concatenate([b.record_ids for b in plain if b.epoch == epoch])
        got = np.concatenate([b.record_ids for b in rebatched if b.epoch == epoch])
        assert sorted(got.tolist()) == list(range(37))
        np.testing.assert_array_equal(got, want)
        for b in rebatched:
            np.testing.assert_array_equal(np.asarray(b["label"]), b.record_ids)


def rebatch_expectation(n, batch_size, drop, target, drop_target):
    """Record ids of an epoch and the output batch sizes, or None if no batch is left."""
    read = n // batch_size * batch_size if drop else n
    end = read // target * target if drop_target else read
    if read == 0 or end == 0:
        return None
    sizes = [min(target, end - start) for start in range(0, end, target)]
    return np.arange(end), sizes


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 90),
    batch_size=st.integers(1, 16),
    drop=st.booleans(),
    target=st.integers(1, 16),
    drop_target=st.booleans(),
    batches_per_call=st.sampled_from([None, 1, 3]),
)
def test_rebatch_geometry(n, batch_size, drop, target, drop_target, batches_per_call):
    src = MemorySource(MemorySourceConfig(), data={"x": np.arange(n, dtype=np.int32) * 3})
    expected = rebatch_expectation(n, batch_size, drop, target, drop_target)

    def build():
        return from_source(
            src,
            batch_size,
            drop_remainder=drop,
            num_epochs=2,
            batches_per_call=batches_per_call,
        ) >> RebatchNode(target, drop_remainder=drop_target)

    if expected is None:
        with pytest.raises(PipelineBuildError, match=r"drop_remainder leaves no batch"):
            build()
        return
    ids, sizes = expected
    batches = list(build())
    assert [b.batch_size for b in batches] == sizes * 2
    assert [b["x"].shape[0] for b in batches] == sizes * 2
    assert [b.epoch for b in batches] == [0] * len(sizes) + [1] * len(sizes)
    for epoch in (0, 1):
        epoch_batches = [b for b in batches if b.epoch == epoch]
        np.testing.assert_array_equal(np.concatenate([b.record_ids for b in epoch_batches]), ids)
        x = np.concatenate([np.asarray(b["x"]) for b in epoch_batches])
        np.testing.assert_array_equal(x, ids * 3)


# -- ShuffleNode --------------------------------------------------------------------


def window_shuffled(n=50, batch_size=7, buffer_size=8, seed=5, num_epochs=3):
    src = MemorySource(MemorySourceConfig(), data={"x": np.arange(n, dtype=np.int32)})
    pipeline = from_source(src, batch_size, num_epochs=num_epochs) >> ShuffleNode(
        buffer_size, seed=seed
    )
    orders: dict[int, list[int]] = {}
    for b in pipeline:
        assert b["x"].tolist() == b.record_ids.tolist()
        orders.setdefault(b.epoch, []).extend(b.record_ids.tolist())
    return [np.asarray(orders[e]) for e in sorted(orders)]


def test_shuffle_node_permutes_every_epoch_within_windows():
    epochs = window_shuffled(n=50, buffer_size=8)
    assert len(epochs) == 3
    for order in epochs:
        assert sorted(order.tolist()) == list(range(50))
        assert not np.array_equal(order, np.arange(50))
        # A sequential base: each record moves by less than one window.
        assert np.abs(order - np.arange(50)).max() < 8
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[1], epochs[2])


def test_shuffle_node_is_deterministic_for_a_seed():
    first, again, other = window_shuffled(seed=5), window_shuffled(seed=5), window_shuffled(seed=6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first, other, strict=True):
        assert not np.array_equal(a, b)


def test_shuffle_node_with_a_large_buffer_permutes_globally():
    (order,) = window_shuffled(n=30, buffer_size=64, num_epochs=1)
    assert sorted(order.tolist()) == list(range(30))
    assert np.abs(order - np.arange(30)).max() >= 8


def test_shuffle_node_before_or_after_batching_gives_the_same_stream():
    src = source(30)
    after = from_source(src, 4, num_epochs=2) >> ShuffleNode(6, seed=9) >> node(times2)
    before = DataSourceNode(src, num_epochs=2) >> ShuffleNode(6, seed=9) >> BatchNode(4)
    before = before >> node(times2)
    assert_same_stream(list(after), list(before))


def test_shuffle_node_after_a_shuffled_source_stays_a_permutation():
    src = MemorySource(MemorySourceConfig(), data={"x": np.arange(40, dtype=np.int32)})
    base = from_source(src, 5, shuffle=True, seed=2, num_epochs=2)
    plain = [b.record_ids for b in base]
    shuffled = [
        b for b in from_source(src, 5, shuffle=True, seed=2, num_epochs=2) >> ShuffleNode(4)
    ]
    for epoch in (0, 1):
        order = np.concatenate([b.record_ids for b in shuffled if b.epoch == epoch])
        ref = np.concatenate(plain[8 * epoch : 8 * epoch + 8])
        assert sorted(order.tolist()) == list(range(40))
        assert not np.array_equal(order, ref)
        position_in_ref = np.argsort(ref)[order]  # where each record sat before
        assert np.abs(position_in_ref - np.arange(40)).max() < 4


# -- PrefetchNode -------------------------------------------------------------------


def prefetch_pipeline(*tail):
    pipeline = from_source(source(), 4, shuffle=True, seed=1, num_epochs=2) >> node(normalize)
    pipeline = pipeline >> OperatorNode(random_flip())
    for t in tail:
        pipeline = pipeline >> t
    return pipeline


def test_prefetch_node_sets_the_depth_and_nothing_else():
    base = prefetch_pipeline()
    shallow, deep, none = (prefetch_pipeline(PrefetchNode(d)) for d in (1, 4, 0))
    assert base.prefetch == 2
    assert (shallow.prefetch, deep.prefetch, none.prefetch) == (1, 4, 0)
    digests = {p.fingerprint_digest() for p in (base, shallow, deep, none)}
    assert len(digests) == 1
    reference = list(base)
    for pipeline in (shallow, deep, none):
        assert_same_stream(list(pipeline), reference)


def test_prefetch_node_anywhere_at_the_top_level():
    pipeline = from_source(source(), 4) >> PrefetchNode(3) >> node(times2) >> PrefetchNode(0)
    assert pipeline.prefetch == 0
    _, _, fields = collect(pipeline)
    np.testing.assert_array_equal(fields["image"], X2)


def test_a_state_saved_with_one_prefetch_depth_restores_with_another():
    saver = iter(prefetch_pipeline(PrefetchNode(1)))
    for _ in range(3):
        next(saver)
    state = saver.get_state()
    rest = list(saver)
    restored = iter(prefetch_pipeline(PrefetchNode(4)))
    restored.set_state(state)
    assert_same_stream(list(restored), rest)
    assert len(rest) == 2 * 5 - 3


@pytest.mark.parametrize("placement", ["host", "device"])
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetch_keeps_that_many_chunks_dispatched_ahead(placement, depth, monkeypatch):
    """After the first batch, ``depth`` more chunks are already dispatched to the device."""
    import time

    from datarax.dag.program import Program

    calls = []
    real_run = Program.run

    def counting_run(self, *args):
        calls.append(args[4])  # the epoch
        return real_run(self, *args)

    monkeypatch.setattr(Program, "run", counting_run)
    src = MemorySource(MemorySourceConfig(placement=placement), data=image_data(40))
    pipeline = (
        from_source(src, 4, num_epochs=None, batches_per_call=1)
        >> node(times2)
        >> PrefetchNode(depth)
    )
    it = iter(pipeline)
    next(it)
    deadline = time.monotonic() + 10
    while len(calls) < 1 + depth and time.monotonic() < deadline:
        time.sleep(0.01)  # the host plane's thread works ahead on its own
    time.sleep(0.05)
    assert len(calls) == 1 + depth
    it.close()


# -- CacheNode ----------------------------------------------------------------------


def cached_pipeline(n, cache, placement="auto", *, upstream=None, num_epochs=3, prefetch=2):
    pipeline = from_source(
        source(n, placement), 8, shuffle=True, seed=2, num_epochs=num_epochs, prefetch=prefetch
    ) >> (upstream or node(normalize))
    if cache is not None:
        pipeline = pipeline >> cache
    return pipeline >> OperatorNode(random_flip())


@pytest.mark.parametrize("placement", ["host", "device"])
def test_a_cache_does_not_change_the_stream(placement):
    reference = list(cached_pipeline(N, None, placement))
    pipeline = cached_pipeline(N, CacheNode(), placement)
    cached = list(pipeline)
    assert_same_stream(cached, reference)
    assert [b.epoch for b in cached] == [0] * 3 + [1] * 3 + [2] * 3
    assert pipeline.runtime.stores[0].size == N


def test_the_upstream_runs_only_in_the_first_epoch():
    calls: list[int] = []

    def counted(element):
        jax.debug.callback(lambda rid: calls.append(int(rid)), element.metadata["record_id"])
        return element.update_data({"image": element.data["image"] / 255.0})

    pipeline = cached_pipeline(N, CacheNode(), upstream=node(counted), prefetch=0)
    after_first_epoch = None
    for batch in pipeline:
        if batch.epoch == 1 and after_first_epoch is None:
            jax.effects_barrier()
            after_first_epoch = len(calls)
            assert pipeline.runtime.stores[0].size == N
            assert set(calls) == set(range(N))
    jax.effects_barrier()
    assert after_first_epoch is not None and after_first_epoch >= N
    assert len(calls) == after_first_epoch


@pytest.mark.parametrize("placement", ["host", "device"])
def test_a_bounded_cache_keeps_the_stream_and_its_bound(placement):
    reference = list(cached_pipeline(100, None, placement))
    pipeline = cached_pipeline(100, CacheNode(max_records=30), placement)
    cached = list(pipeline)
    assert_same_stream(cached, reference)
    assert 0 < pipeline.runtime.stores[0].size <= 30


@pytest.mark.parametrize("placement", ["host", "device"])
def test_a_changed_upstream_parameter_is_never_served_stale(placement):
    scale = Scale(2.0)
    pipeline = (
        from_source(source(N, placement), 8, num_epochs=2) >> OperatorNode(scale) >> CacheNode()
    )
    _, _, fields = collect(pipeline)
    np.testing.assert_array_equal(fields["image"], np.concatenate([X2, X2]))
    assert pipeline.runtime.stores[0].size == N

    scale.scale[...] = jnp.float32(3.0)
    _, _, fields = collect(pipeline)
    np.testing.assert_array_equal(fields["image"], np.concatenate([IMAGES * 3] * 2))

    nnx.update(scale, nnx.State({"scale": nnx.Param(jnp.float32(0.5))}))
    _, _, fields = collect(pipeline)
    np.testing.assert_array_equal(fields["image"], np.concatenate([IMAGES * 0.5] * 2))


def test_a_cache_before_a_rebatch_keeps_the_stream():
    def build(cache):
        pipeline = from_source(source(37), 8, shuffle=True, seed=2, num_epochs=2) >> node(times2)
        if cache is not None:
            pipeline = pipeline >> cache
        return pipeline >> RebatchNode(5) >> OperatorNode(random_flip())

    pipeline = build(CacheNode())
    assert_same_stream(list(pipeline), list(build(None)))
    assert pipeline.runtime.stores[0].size == 37


def test_a_shared_cache_node_is_not_stale_for_another_upstream():
    def scaled(factor):
        def scale_image(element):
            return element.update_data({"image": element.data["image"] * factor})

        return node(scale_image)

    cache = CacheNode()
    base = from_source(source(), 8)
    _, _, doubled = collect(base >> scaled(2.0) >> cache)
    np.testing.assert_array_equal(doubled["image"], X2)
    _, _, tripled = collect(base >> scaled(3.0) >> cache)
    np.testing.assert_array_equal(tripled["image"], IMAGES * 3)  # found IMAGES * 2


class PlainScale(ElementOperator):
    """Multiplies images by ``factor``, a plain Python attribute (not an nnx.Variable)."""

    def __init__(self, factor: float) -> None:
        super().__init__(ElementOperatorConfig())
        self.factor = factor

    def transform(self, element, key):
        return element.update_data({"image": element.data["image"] * self.factor})


def test_a_changed_plain_operator_attribute_is_never_served_stale():
    scale = PlainScale(2.0)
    base = from_source(source(), 8)
    cached = base >> OperatorNode(scale) >> CacheNode()
    np.testing.assert_array_equal(collect(cached)[2]["image"], X2)
    scale.factor = 3.0
    np.testing.assert_array_equal(collect(base >> OperatorNode(scale))[2]["image"], IMAGES * 3)
    np.testing.assert_array_equal(collect(cached)[2]["image"], IMAGES * 3)  # found IMAGES * 2


# -- immutability -------------------------------------------------------------------


def test_pipelines_from_one_base_are_independent():
    base = from_source(source(), 8) >> node(times2)
    merged = base >> (node(plus10) | node(negate)) >> Merge("sum")
    branched = base >> Branch(image_sum_above(THRESHOLD / 2), node(negate))
    assert len(base.nodes) == 3 and len(merged.nodes) == 5 and len(branched.nodes) == 4
    _, _, m = collect(merged)
    _, _, b = collect(branched)
    _, _, plain = collect(base)
    np.testing.assert_array_equal(m["image"], (X2 + 10) + -X2)
    above = X2.reshape(N, -1).sum(axis=1) > THRESHOLD / 2
    np.testing.assert_array_equal(b["image"], np.where(above[:, None, None, None], -X2, X2))
    np.testing.assert_array_equal(plain["image"], X2)


def test_combining_nodes_does_not_change_them():
    a, b, c = node(times2), node(plus10), node(negate)
    op_a = a.operator
    par = a | b
    wider = par | c
    merged = par >> Merge("sum")
    assert par.branches == (a, b) and wider.branches == (a, b, c)
    assert isinstance(merged, Sequential) and merged.nodes == (par, merged.nodes[1])
    assert a.operator is op_a and isinstance(a, OperatorNode) and isinstance(b, OperatorNode)
    with pytest.raises(AttributeError, match="immutable"):
        par.branches = (a,)
    with pytest.raises(AttributeError, match="immutable"):
        Merge("sum").strategy = "max"


# -- build-time errors --------------------------------------------------------------


def base_pipeline():
    return from_source(source(), 8)


def test_merge_of_different_fields_is_a_build_error():
    def extra(element):
        return element.update_data({"extra": element.data["image"]})

    with pytest.raises(
        PipelineBuildError,
        match=r"Merge\(sum\): branches produce different fields; "
        r"expected fields \['image', 'label'\] \(as branch 0\), "
        r"found \['extra', 'image', 'label'\] in branch 1",
    ):
        base_pipeline() >> (node(times2) | node(extra)) >> Merge("sum")


def test_merge_of_different_shapes_is_a_build_error():
    def crop(element):
        return element.update_data({"image": element.data["image"][:2]})

    with pytest.raises(
        PipelineBuildError,
        match=r"Merge\(max\), field 'image': branches produce different shapes; "
        r"expected records of shape \(4, 6, 1\) \(as branch 0\), found \(2, 6, 1\) in branch 1",
    ):
        base_pipeline() >> (node(times2) | node(crop)) >> Merge("max")
    # concat only tolerates a different size along its axis
    crop_pipeline = base_pipeline() >> (node(times2) | node(crop))
    _, _, fields = collect(crop_pipeline >> Merge("concat", axis=0))
    np.testing.assert_array_equal(fields["image"], np.concatenate([X2, IMAGES[:, :2]], axis=1))
    with pytest.raises(PipelineBuildError, match=r"apart from the concat axis"):
        crop_pipeline >> Merge("concat", axis=1)


def test_merge_of_different_dtypes_is_a_build_error():
    def half(element):
        return element.update_data({"image": element.data["image"].astype(jnp.float16)})

    with pytest.raises(
        PipelineBuildError,
        match=r"field 'image': branches produce different dtypes; "
        r"expected float32 \(as branch 0\), found float16 in branch 1",
    ):
        base_pipeline() >> (node(times2) | node(half)) >> Merge("mean")


@pytest.mark.parametrize(
    ("merge", "message"),
    [
        (Merge("concat", axis=3), r"axis out of range for concat; expected -3 <= axis < 3"),
        (Merge("concat", axis=-4), r"axis out of range for concat; expected -3 <= axis < 3"),
        (Merge("stack", axis=4), r"axis out of range for stack; expected -4 <= axis < 4"),
    ],
)
def test_merge_axis_out_of_range_is_a_build_error(merge, message):
    with pytest.raises(PipelineBuildError, match=message):
        base_pipeline() >> (node(times2) | node(plus10)) >> merge


def test_invalid_merge_arguments_are_build_errors():
    with pytest.raises(
        PipelineBuildError,
        match=r"Merge: unknown merge strategy; expected one of mean, sum, max, min, "
        r"weighted, concat, stack, found 'median'",
    ):
        Merge("median")
    with pytest.raises(PipelineBuildError, match=r"axis applies only to concat and stack"):
        Merge("sum", axis=0)
    with pytest.raises(PipelineBuildError, match=r"weights go with the 'weighted' strategy"):
        Merge("weighted")
    with pytest.raises(PipelineBuildError, match=r"weights go with the 'weighted' strategy"):
        Merge("mean", weights=[1.0, 2.0])
    with pytest.raises(
        PipelineBuildError, match=r"one weight per branch is needed; expected 2 weights, found 3"
    ):
        base_pipeline() >> (node(times2) | node(plus10)) >> Merge("weighted", weights=[1, 2, 3])
    with pytest.raises(
        PipelineBuildError, match=r"unknown field to merge; expected one of .*, found 'nope'"
    ):
        base_pipeline() >> (node(times2) | node(plus10)) >> Merge("sum", fields=["nope"])


def test_merge_without_parallel_is_a_build_error():
    with pytest.raises(
        PipelineBuildError,
        match=r"Merge\(sum\): nothing to merge; expected the outputs of a Parallel node",
    ):
        base_pipeline() >> node(times2) >> Merge("sum")


def test_an_operator_after_an_unmerged_parallel_is_a_build_error():
    with pytest.raises(
        PipelineBuildError,
        match=r"OperatorNode\(ElementOperator\(negate\)\): the outputs of parallel branches "
        r"must be merged first; expected Merge\(...\) after a Parallel node, "
        r"found 2 unmerged branch outputs",
    ):
        base_pipeline() >> (node(times2) | node(plus10)) >> node(negate)
    for tail in (RebatchNode(4), CacheNode()):
        with pytest.raises(PipelineBuildError, match=r"must be merged first"):
            base_pipeline() >> (node(times2) | node(plus10)) >> tail


def test_branch_paths_with_different_outputs_are_a_build_error():
    def crop(element):
        return element.update_data({"image": element.data["image"][:2]})

    def extra(element):
        return element.update_data({"extra": element.data["label"]})

    with pytest.raises(
        PipelineBuildError,
        match=r"paths produce different outputs; expected image: float32\[4, 6, 1\], "
        r"label: int32\[\] \(as path 0\), found image: float32\[2, 6, 1\], "
        r"label: int32\[\] from path 1",
    ):
        base_pipeline() >> Branch(image_sum_above(THRESHOLD), node(times2), node(crop))
    with pytest.raises(PipelineBuildError, match=r"paths produce different outputs"):
        base_pipeline() >> Branch(image_sum_above(THRESHOLD), node(extra))
    with pytest.raises(PipelineBuildError, match=r"paths produce different outputs"):
        base_pipeline() >> Switch(
            lambda e: jnp.sum(e.data["label"]) % 2, [node(times2), node(crop)], per_batch=True
        )


def test_a_cache_after_a_random_operator_is_a_build_error():
    with pytest.raises(
        PipelineBuildError,
        match=r"Cache\(all\): a cache needs deterministic nodes before it; .*"
        r"found OperatorNode\(ElementOperator\(flip\)\): it draws random numbers",
    ):
        base_pipeline() >> node(times2) >> OperatorNode(random_flip()) >> CacheNode()
    with pytest.raises(
        PipelineBuildError,
        match=r"found Branch: OperatorNode\(ElementOperator\(flip\)\): it draws random",
    ):
        base_pipeline() >> Branch(image_sum_above(0), random_flip()) >> CacheNode()


def test_a_cache_after_a_per_batch_branch_is_a_build_error():
    with pytest.raises(
        PipelineBuildError,
        match=r"a cache needs deterministic nodes before it; .*it decides per batch",
    ):
        (
            base_pipeline()
            >> Branch(batch_mean_above, node(times2), node(plus10), per_batch=True)
            >> CacheNode(max_records=10)
        )


@pytest.mark.parametrize("nested", [RebatchNode(4), CacheNode()], ids=repr)
def test_rebatch_and_cache_nodes_inside_a_branch_are_build_errors(nested):
    what = "RebatchNode" if isinstance(nested, RebatchNode) else "CacheNode"
    match = rf"{what} inside a Parallel, Branch or operator"
    with pytest.raises(PipelineBuildError, match=match):
        base_pipeline() >> (node(times2) | nested) >> Merge("sum")
    with pytest.raises(PipelineBuildError, match=match):
        base_pipeline() >> (node(times2) | (node(plus10) >> nested)) >> Merge("sum")
    with pytest.raises(PipelineBuildError, match=match):
        base_pipeline() >> Branch(image_sum_above(THRESHOLD), nested)


def test_a_host_node_after_a_device_node_is_a_build_error():
    for host_node in (ShuffleNode(4), BatchNode(4)):
        with pytest.raises(
            PipelineBuildError,
            match=r"a host-plane node cannot run inside the device plane; .*"
            r"after a device node",
        ):
            base_pipeline() >> node(times2) >> host_node


def test_a_node_without_lower_cannot_be_compiled():
    class Custom(Node):
        __slots__ = ()

    with pytest.raises(
        PipelineBuildError,
        match=r"Custom: node cannot be compiled into the device plane; "
        r"expected a node that implements lower\(flow, ctx\)",
    ):
        base_pipeline() >> Custom()


def test_python_branching_on_traced_values_cannot_be_compiled():
    def branchy(element):
        if element.data["label"] > 3:
            return element
        return element.update_data({"image": element.data["image"] * 2})

    with pytest.raises(
        PipelineBuildError,
        match=r"OperatorNode\(ElementOperator\(branchy\)\): node cannot be compiled; "
        r"expected a function JAX can trace .*found TracerBoolConversionError",
    ):
        base_pipeline() >> node(branchy)


def test_a_branch_condition_must_decide_once_per_record():
    with pytest.raises(
        PipelineBuildError,
        match=r"one decision per record is needed; expected a scalar, found shape \(4, 6, 1\)",
    ):
        base_pipeline() >> Branch(lambda e: e.data["image"] > 100, node(times2))
    with pytest.raises(
        PipelineBuildError,
        match=r"one decision per batch is needed; expected a scalar, found shape \(8,\)",
    ):
        base_pipeline() >> Switch(
            lambda e: e.data["label"] % 2, [None, node(times2)], per_batch=True
        )
    with pytest.raises(
        PipelineBuildError,
        match=r"the selector must return an integer; expected an int32 path index, found float32",
    ):
        base_pipeline() >> Switch(lambda e: e.data["image"][0, 0, 0], [None, node(times2)])


def test_a_per_batch_decision_does_not_depend_on_how_batches_are_chunked():
    """The short last batch's padding rows are the same whichever chunk computes it."""

    def odd_sum(e):  # reads every row, padding included
        return jnp.sum(e.data["label"]) % 2 == 1

    def build(**options):
        src = MemorySource(MemorySourceConfig(), data=image_data(61))
        return from_source(src, 8, shuffle=True, num_epochs=2, **options) >> Branch(
            odd_sum, node(times2), None, per_batch=True
        )

    reference = [np.asarray(b["image"]) for b in build(batches_per_call=1)]
    for k in (2, 3, 8, None):
        images = [np.asarray(b["image"]) for b in build(batches_per_call=k)]
        assert all(np.array_equal(a, b) for a, b in zip(images, reference, strict=True)), k
