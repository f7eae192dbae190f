"""Pipelines end to end: order, batching, augmentation keys, compilation, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from pipelines import augmented, flip, image_data, normalize, stream

from datarax import Batch, from_source
from datarax.core.errors import (
    ConfigError,
    OperatorError,
    PipelineBuildError,
    SchemaError,
    SourceError,
)
from datarax.dag.nodes import BatchNode, DataSourceNode, OperatorNode
from datarax.operators import ElementOperator, ElementOperatorConfig, MapOperator, MapOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig


def counting_source(n: int, placement: str = "auto") -> MemorySource:
    return MemorySource(
        MemorySourceConfig(placement=placement), data={"x": np.arange(n, dtype=np.int32)}
    )


def test_sequential_batches_are_exact_and_short_last_batch_is_true_size():
    batches = list(from_source(counting_source(10), batch_size=4))
    assert [b["x"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b.batch_size for b in batches] == [4, 4, 2]
    assert all(isinstance(b["x"], jax.Array) for b in batches)
    assert [b.record_ids.tolist() for b in batches][-1] == [8, 9]


def test_drop_remainder_drops_the_short_batch():
    batches = list(from_source(counting_source(10), batch_size=4, drop_remainder=True))
    assert [b["x"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize("placement", ["host", "device"])
def test_host_and_device_sources_give_the_same_stream(placement):
    reference = stream(augmented(placement="device", num_epochs=2))
    other = stream(augmented(placement=placement, num_epochs=2))
    assert len(reference) == len(other) == 26
    for (e1, ids1, im1), (e2, ids2, im2) in zip(reference, other, strict=True):
        assert e1 == e2
        np.testing.assert_array_equal(ids1, ids2)
        np.testing.assert_array_equal(im1, im2)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 300), batch_size=st.integers(1, 64), seed=st.integers(0, 2**31 - 1))
def test_every_shuffled_epoch_is_a_permutation(n, batch_size, seed):
    pipeline = from_source(
        counting_source(n), batch_size, shuffle=True, seed=seed, num_epochs=2, prefetch=0
    )
    seen: dict[int, list[int]] = {}
    for b in pipeline:
        seen.setdefault(b.epoch, []).extend(b["x"].tolist())
        assert b.batch_size <= batch_size
    assert sorted(seen) == [0, 1]
    for epoch_ids in seen.values():
        assert sorted(epoch_ids) == list(range(n))


def test_epochs_and_seeds_give_different_orders():
    def order(seed, epoch_index):
        batches = list(
            from_source(counting_source(1000), 100, shuffle=True, seed=seed, num_epochs=2)
        )
        epoch = [b for b in batches if b.epoch == epoch_index]
        return np.concatenate([np.asarray(b["x"]) for b in epoch])

    base = order(0, 0)
    for other in (order(0, 1), order(1, 0)):
        assert np.mean(base == other) < 0.02
        assert abs(np.corrcoef(base, other)[0, 1]) < 0.1
    np.testing.assert_array_equal(base, order(0, 0))


def test_a_records_augmentation_does_not_depend_on_batch_size_or_order():
    def by_record(batch_size, shuffle):
        out = {}
        for epoch, ids, images in stream(
            augmented(batch_size=batch_size, shuffle=shuffle, num_epochs=2)
        ):
            for rid, image in zip(ids.tolist(), images, strict=True):
                out[(epoch, rid)] = image
        return out

    a, b, c = by_record(16, True), by_record(32, True), by_record(7, False)
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k], c[k])


def test_flips_follow_the_record_key_and_change_between_epochs():
    data = image_data(100)
    flipped = {}
    for epoch, ids, images in stream(augmented(num_epochs=2)):
        for rid, image in zip(ids.tolist(), images, strict=True):
            plain = data["image"][rid] / 255.0
            if np.allclose(image, plain):
                flipped[(epoch, rid)] = False
            else:
                np.testing.assert_allclose(image, plain[:, ::-1], rtol=1e-6)
                flipped[(epoch, rid)] = True
    epoch0 = np.array([flipped[(0, r)] for r in range(100)])
    epoch1 = np.array([flipped[(1, r)] for r in range(100)])
    assert 0.3 < epoch0.mean() < 0.7 and 0.3 < epoch1.mean() < 0.7
    assert 0.2 < np.mean(epoch0 != epoch1) < 0.8


def test_chaining_returns_new_pipelines_and_leaves_the_base_unchanged():
    base = from_source(counting_source(6), 3)
    double = base >> OperatorNode(MapOperator(MapOperatorConfig(), fn=lambda x: x * 2))
    negate = base >> OperatorNode(MapOperator(MapOperatorConfig(), fn=lambda x: -x))
    assert len(base.nodes) == 2 and len(double.nodes) == len(negate.nodes) == 3
    assert [b["x"].tolist() for b in double] == [[0, 2, 4], [6, 8, 10]]
    assert [b["x"].tolist() for b in negate] == [[0, -1, -2], [-3, -4, -5]]
    assert [b["x"].tolist() for b in base] == [[0, 1, 2], [3, 4, 5]]


def test_pipeline_built_from_nodes_equals_from_source():
    src = counting_source(7)
    built = DataSourceNode(src, shuffle=True, seed=3) >> BatchNode(3)
    direct = from_source(src, 3, shuffle=True, seed=3)
    assert [b["x"].tolist() for b in built] == [b["x"].tolist() for b in direct]


def test_iterating_again_continues_with_the_next_epoch():
    pipeline = from_source(counting_source(5), 5, shuffle=True, seed=1, num_epochs=2)
    first = [(b.epoch, b["x"].tolist()) for b in pipeline]
    second = [(b.epoch, b["x"].tolist()) for b in pipeline]
    assert [e for e, _ in first] == [0, 1] and [e for e, _ in second] == [2, 3]
    fresh = from_source(counting_source(5), 5, shuffle=True, seed=1, num_epochs=4)
    assert [(b.epoch, b["x"].tolist()) for b in fresh] == first + second


def test_a_broken_loop_leaves_the_next_loop_at_the_next_epoch():
    pipeline = from_source(counting_source(10), 2, num_epochs=1)
    for i, _ in enumerate(pipeline):
        if i == 1:
            break
    assert [b.epoch for b in pipeline] == [1] * 5


def test_num_epochs_none_runs_forever():
    it = iter(from_source(counting_source(3), 2, num_epochs=None))
    epochs = [next(it).epoch for _ in range(20)]
    assert epochs[-1] == 9


def test_no_recompilation_after_the_first_epoch(compile_counter):
    def brighten(element, key):  # a function of its own, so nothing is compiled yet
        image = element.data["image"]
        return element.update_data({"image": image + jax.random.uniform(key)})

    op = ElementOperator(ElementOperatorConfig(stochastic=True), fn=brighten, rngs=nnx.Rngs(1))
    source = MemorySource(MemorySourceConfig(), data=image_data(100))
    # 100 = 6 * 16 + 4: every epoch ends with a short batch.
    pipeline = from_source(source, 16, shuffle=True, num_epochs=3) >> OperatorNode(op)
    counts = []
    for batch in pipeline:
        jax.block_until_ready(batch["image"])
        counts.append((batch.epoch, compile_counter.count))
    first_epoch_end = max(c for e, c in counts if e == 0)
    assert first_epoch_end > 0
    assert all(c == first_epoch_end for e, c in counts if e > 0)
    assert [b for b in counts if b[0] == 2][-1][1] == first_epoch_end


def test_batches_per_call_does_not_change_the_stream():
    reference = stream(augmented(batches_per_call=1, num_epochs=2))
    for k in (3, 13):
        other = stream(augmented(batches_per_call=k, num_epochs=2))
        assert len(other) == len(reference)
        for (e1, i1, x1), (e2, i2, x2) in zip(reference, other, strict=True):
            assert e1 == e2
            np.testing.assert_array_equal(i1, i2)
            np.testing.assert_array_equal(x1, x2)


def test_prefetch_depth_does_not_change_the_stream():
    reference = stream(augmented(prefetch=0))
    for depth in (1, 4):
        other = stream(augmented(prefetch=depth))
        for (_, i1, x1), (_, i2, x2) in zip(reference, other, strict=True):
            np.testing.assert_array_equal(i1, i2)
            np.testing.assert_array_equal(x1, x2)


def test_learnable_operator_parameters_receive_gradients():
    class Scale(ElementOperator):
        def __init__(self):
            super().__init__(ElementOperatorConfig())
            self.scale = nnx.Param(jnp.float32(2.0))

        def transform(self, element, key):
            return element.update_data({"x": element.data["x"] * self.scale[...]})

    op = Scale()
    pipeline = from_source(
        MemorySource(MemorySourceConfig(), data={"x": np.arange(4, dtype=np.float32)}), 4
    ) >> OperatorNode(op)
    batch = next(iter(pipeline))
    np.testing.assert_allclose(batch["x"], [0, 2, 4, 6])

    def loss(module):
        data, _ = module.apply_batch({"x": jnp.arange(4.0)}, {}, jnp.arange(4), 0, 0)
        return jnp.sum(data["x"])

    grads = nnx.grad(loss)(op)
    assert float(grads["scale"][...]) == pytest.approx(6.0)


def test_batch_reads_like_a_mapping():
    batch = next(iter(augmented()))
    assert isinstance(batch, Batch)
    assert set(batch.keys()) == {"image", "label"} and "image" in batch and len(batch) == 2
    assert batch.batch_size == 8 and batch["image"].shape == (8, 4, 6, 1)


# -- errors -------------------------------------------------------------------------


def test_batch_size_must_be_positive():
    for bad in (0, -3, 2.5):
        with pytest.raises(ConfigError, match=r"DefaultBatcherConfig\.batch_size.*found"):
            from_source(counting_source(4), bad)


def test_fields_with_different_lengths_are_rejected():
    with pytest.raises(SourceError, match=r"field 'label'.*expected 10 records.*found 9"):
        MemorySource(MemorySourceConfig(), data={"image": np.zeros((10, 2)), "label": np.zeros(9)})


def test_an_empty_source_is_rejected():
    with pytest.raises(SourceError, match=r"empty; expected at least one record"):
        MemorySource(MemorySourceConfig(), data={"x": np.zeros((0, 3))})


def test_non_array_fields_are_rejected():
    with pytest.raises(SourceError, match=r"field 'name'.*numeric array.*found"):
        MemorySource(MemorySourceConfig(), data={"name": ["a", "b"], "x": np.zeros(2)})


def test_a_stochastic_operator_needs_rngs():
    with pytest.raises(OperatorError, match=r"expected rngs=nnx.Rngs\(seed\), found rngs=None"):
        ElementOperator(ElementOperatorConfig(stochastic=True), fn=flip)


def test_a_function_changing_shape_between_calls_is_rejected():
    calls = []

    def unstable(element, key=None):
        calls.append(1)
        image = element.data["image"]
        return element.update_data({"image": image if len(calls) == 1 else image[:2]})

    op = ElementOperator(ElementOperatorConfig(), fn=unstable)
    pipeline = from_source(MemorySource(MemorySourceConfig(), data=image_data(20)), 4)
    pipeline = pipeline >> OperatorNode(op)  # first trace, at build time
    with pytest.raises(
        SchemaError,
        match=r"field 'image'.*changed between calls.*"
        r"expected float32\(4, 6, 1\), found float32\(2, 6, 1\)",
    ):
        next(iter(pipeline))


def test_a_function_changing_dtype_between_calls_is_rejected():
    calls = []

    def unstable(element, key=None):
        calls.append(1)
        image = element.data["image"]
        return element.update_data({"image": image if len(calls) == 1 else image.astype(jnp.int32)})

    pipeline = from_source(MemorySource(MemorySourceConfig(), data=image_data(20)), 4)
    pipeline = pipeline >> OperatorNode(ElementOperator(ElementOperatorConfig(), fn=unstable))
    with pytest.raises(SchemaError, match=r"expected float32\(4, 6, 1\), found int32\(4, 6, 1\)"):
        next(iter(pipeline))


def test_an_operator_error_surfaces_at_build_time():
    def wrong(element, key=None):
        return element.data  # not an Element

    with pytest.raises(SchemaError, match=r"must return an Element"):
        from_source(counting_source(4), 2) >> OperatorNode(
            ElementOperator(ElementOperatorConfig(), fn=wrong)
        )


def test_a_node_that_is_not_compilable_is_a_build_error():
    with pytest.raises(PipelineBuildError, match=r"expected DataSourceNode >> BatchNode"):
        DataSourceNode(counting_source(4)) >> OperatorNode(
            ElementOperator(ElementOperatorConfig(), fn=normalize)
        )
    with pytest.raises(PipelineBuildError, match=r"can only chain nodes"):
        from_source(counting_source(4), 2) >> (lambda x: x)


def test_drop_remainder_with_too_large_a_batch_is_a_build_error():
    with pytest.raises(PipelineBuildError, match=r"expected batch_size <= 4 records per epoch"):
        from_source(counting_source(4), 8, drop_remainder=True)


def test_an_error_inside_the_pipeline_is_raised_in_the_consumer():
    def explode(element, key=None):
        raise ValueError("boom at trace")

    op = ElementOperator(ElementOperatorConfig(), fn=explode)
    with pytest.raises(
        PipelineBuildError,
        match=r"^OperatorNode\(ElementOperator\(explode\)\): the node raised while it was "
        r"traced; expected a function of the batch's fields \(and a key when stochastic\), "
        r"found ValueError: boom at trace",
    ):
        from_source(counting_source(4), 2) >> OperatorNode(op)


@pytest.mark.parametrize("placement", ["host", "device"])
@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_failure_while_running_is_raised_again_and_leaves_the_state_unchanged(
    prefetch, placement
):
    source = MemorySource(MemorySourceConfig(placement=placement), data={"x": np.arange(8)})
    pipeline = from_source(source, 2, prefetch=prefetch)
    it = iter(pipeline)
    next(it)
    state = it.get_state()

    def broken(*args):
        raise OSError("disk went away")

    object.__setattr__(pipeline.source_node.sampler, "indices", broken)
    it.set_state(state)  # restart the host plane, which now fails
    for _ in range(2):
        with pytest.raises(OSError, match="disk went away"):
            next(it)
    assert it.get_state() == state


def test_a_pipeline_reads_as_its_chain():
    pipeline = augmented(n=100, batch_size=8)
    assert repr(pipeline) == (
        "Pipeline(MemorySource[100, shuffle, seed=0] >> Batch(8) >> "
        "OperatorNode(ElementOperator(normalize)) >> OperatorNode(ElementOperator(flip)))"
    )


def test_operator_changes_reach_the_next_iterator_and_only_then():
    class Affine(ElementOperator):
        def __init__(self):
            super().__init__(ElementOperatorConfig())
            self.scale = nnx.Param(jnp.float32(2.0))
            self.shift = 0.0  # a plain attribute: part of the compiled graph
            self.inner = nnx.Dict({"bias": nnx.Param(jnp.float32(0.0))})

        def transform(self, element, key):
            x = element.data["x"] * self.scale[...] + self.shift + self.inner["bias"][...]
            return element.update_data({"x": x})

    op = Affine()
    source = MemorySource(MemorySourceConfig(), data={"x": np.arange(4, dtype=np.float32)})
    pipeline = from_source(source, 4, num_epochs=None) >> OperatorNode(op)

    def first():
        return np.asarray(next(iter(pipeline))["x"]).tolist()

    assert first() == [0, 2, 4, 6]
    running = iter(pipeline)
    assert np.asarray(next(running)["x"]).tolist() == [0, 2, 4, 6]
    op.scale[...] = jnp.float32(3.0)  # in place
    assert first() == [0, 3, 6, 9]
    nnx.update(op, nnx.State({"scale": nnx.Param(jnp.float32(1.0))}))
    assert first() == [0, 1, 2, 3]
    op.shift = 10.0  # a static attribute reassigned
    assert first() == [10, 11, 12, 13]
    op.inner["bias"] = nnx.Param(jnp.float32(100.0))  # a nested module's variable replaced
    assert first() == [110, 111, 112, 113]
    # A running iterator keeps the parameters it started with.
    assert np.asarray(next(running)["x"]).tolist() == [0, 2, 4, 6]
