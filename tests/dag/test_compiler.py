"""The compiler: device plans, the staleness walk, jitted chunk functions, cutting chunks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from pipelines import image_data, normalize

from datarax import from_source
from datarax.dag.compiler import (
    MAX_BATCHES_PER_CALL,
    TARGET_CHUNK_BYTES,
    build_run_fn,
    choose_batches_per_call,
    module_parts,
    same_parts,
    split_fn,
)
from datarax.dag.nodes import CacheNode, OperatorNode, RebatchNode
from datarax.dag.program import device_plan
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig


def times(k):
    def fn(element):
        return element.update_data({"image": element.data["image"] * k})

    fn.__name__ = f"times{k}"
    return ElementOperator(ElementOperatorConfig(), fn=fn)


def pipeline_with(*nodes, n=16, batch=4):
    src = MemorySource(MemorySourceConfig(), data=image_data(n))
    p = from_source(src, batch)
    for node in nodes:
        p = p >> node
    return p


def test_plans_are_cut_at_caches_and_compare_by_structure():
    op = times(2)
    plan = device_plan(pipeline_with(OperatorNode(op), CacheNode(), RebatchNode(8)))
    assert plan.num_caches == 1
    assert [len(s) for s in plan.segments] == [1, 1] and plan.batch_sizes == (4, 4)
    again = device_plan(pipeline_with(OperatorNode(times(3)), CacheNode(), RebatchNode(8)))
    assert again == plan and hash(again) == hash(plan)  # operators' values are not structure
    other = device_plan(pipeline_with(OperatorNode(op), CacheNode(), RebatchNode(2)))
    assert other != plan


def test_module_parts_see_a_reassigned_attribute_at_any_depth():
    outer = times(2)
    outer.inner = times(3)
    before = module_parts((outer,))
    outer.inner.scale = nnx.Param(jnp.float32(1.0))
    assert not same_parts(before, module_parts((outer,)))
    same = module_parts((outer,))
    outer.inner.scale[...] = jnp.float32(4.0)  # a value changed in place: same objects
    assert same_parts(same, module_parts((outer,)))


def test_a_chunk_function_gathers_and_computes_its_rows():
    pipeline = pipeline_with(OperatorNode(times(2)))
    plan = device_plan(pipeline)
    graphdef, state = nnx.split(tuple(pipeline.operators))
    run = build_run_fn(plan, graphdef, jax.tree_util.tree_structure(state), 0, gather=True)
    images = jnp.asarray(image_data(16)["image"])
    index = np.array([5, 1, 1, 9, 0, 2, 3, 4], np.int32)
    leaves = tuple(jax.tree_util.tree_leaves(state))
    (data, states), cached = run(
        leaves,
        ({"image": images, "label": images[:, 0, 0, 0]}, {}),
        index,
        index,
        np.uint32(0),
        np.int32(8),
    )
    np.testing.assert_array_equal(np.asarray(data["image"]), np.asarray(images[index] * 2))
    assert cached == () and states == {}


@settings(max_examples=25, deadline=None)
@given(parts=st.integers(1, 6), batch=st.integers(1, 5))
def test_split_cuts_every_leaf_into_equal_batches_in_order(parts, batch):
    chunk = ({"a": jnp.arange(parts * batch * 2).reshape(parts * batch, 2)}, {})
    pieces = split_fn(parts)(chunk)
    assert len(pieces) == parts
    for j, (data, _) in enumerate(pieces):
        np.testing.assert_array_equal(
            np.asarray(data["a"]), np.asarray(chunk[0]["a"][j * batch : (j + 1) * batch])
        )


@pytest.mark.parametrize(
    ("record_bytes", "batch", "per_epoch", "requested", "expected"),
    [
        (4, 32, 100, None, MAX_BATCHES_PER_CALL),  # small records: as many as allowed
        (TARGET_CHUNK_BYTES // 64, 32, 100, None, 2),  # by the chunk's byte target
        (TARGET_CHUNK_BYTES, 32, 100, None, 1),  # one batch is already larger
        (4, 32, 3, None, 3),  # never more than an epoch
        (4, 32, 100, 5, 5),  # a request wins ...
        (4, 32, 3, 5, 3),  # ... within the epoch
    ],
)
def test_batches_per_call(record_bytes, batch, per_epoch, requested, expected):
    assert choose_batches_per_call(record_bytes, batch, per_epoch, requested) == expected


def test_normalize_and_times_compile_to_one_function_per_start():
    pipeline = pipeline_with(
        OperatorNode(ElementOperator(ElementOperatorConfig(), fn=normalize)),
        CacheNode(),
        OperatorNode(times(2)),
    )
    plan = device_plan(pipeline)
    graphdef, state = nnx.split(tuple(pipeline.operators))
    treedef = jax.tree_util.tree_structure(state)
    from_cache = build_run_fn(plan, graphdef, treedef, 1, gather=True)
    stored = {"image": jnp.ones((4, 28, 28, 1)), "label": jnp.arange(4, dtype=jnp.int32)}
    index = np.arange(4, dtype=np.int32)
    (data, _), cached = from_cache(
        tuple(jax.tree_util.tree_leaves(state)),
        (stored, {}),
        index,
        index,
        np.uint32(0),
        np.int32(4),
    )
    np.testing.assert_array_equal(np.asarray(data["image"]), np.full((4, 28, 28, 1), 2.0))
    assert cached == ()  # no cache after the one it starts at
