"""Checks run in a process with 8 simulated CPU devices (started by test_sharding.py).

Each check prints ``ok <name>``; any failure raises and ends the process non-zero.
With the argument ``pending`` it runs the checks of :data:`PENDING` instead.
"""

from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dag"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from pipelines import augmented, flip, image_data, normalize  # noqa: E402

from datarax import from_source  # noqa: E402
from datarax.core.errors import ConfigError, PipelineBuildError  # noqa: E402
from datarax.dag.nodes import Branch, CacheNode, OperatorNode, RebatchNode, SharderNode  # noqa: E402
from datarax.dag.program import compile  # noqa: E402
from datarax.operators import ElementOperator, ElementOperatorConfig  # noqa: E402
from datarax.sharding import ArraySharder, DeviceMesh, JaxProcessSharder  # noqa: E402
from datarax.sources import MemorySource, MemorySourceConfig  # noqa: E402
from harness import assert_resumes_at_every_step  # noqa: E402

MESH = DeviceMesh({"data": 8})


DATA = P("data")


def equal_fields(a, b):
    """``(batch, field)`` of every field of ``a``, each checked equal to ``b``'s."""
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert x.epoch == y.epoch
        np.testing.assert_array_equal(x.record_ids, y.record_ids)
        for field in y.data:
            np.testing.assert_array_equal(np.asarray(x[field]), np.asarray(y[field]))
            yield x, field


def same_stream(sharded, plain, spec=DATA):
    a = list(sharded)
    for x, field in equal_fields(a, list(plain)):
        if x.batch_size % 8 == 0:
            sharding = x[field].sharding
            assert isinstance(sharding, NamedSharding), sharding
            assert sharding.spec == spec or field == "label", (field, sharding.spec)
            shard_rows = {s.data.shape[0] for s in x[field].addressable_shards}
            assert shard_rows == {x.batch_size // 8}, shard_rows
    return a


def check_both_ways_equal_the_unsharded_stream():
    for placement in ("device", "host"):
        plain = augmented(100, 16, placement=placement)
        by_node = augmented(100, 16, placement=placement) >> SharderNode(ArraySharder(MESH))
        by_arg = augmented(
            100, 16, placement=placement, sharding=NamedSharding(MESH.mesh, P("data"))
        )
        assert compile(by_node).layout is not None and compile(by_arg).layout is not None
        same_stream(by_node, plain)
        same_stream(by_arg, augmented(100, 16, placement=placement))
        print("ok", f"sharded_equals_unsharded_{placement}")


def check_a_model_axis_splits_the_last_axis():
    mesh = DeviceMesh({"data": 4, "model": 2})
    sharder = ArraySharder(mesh, "data", "model")
    double = ElementOperator(
        ElementOperatorConfig(),
        fn=lambda e: e.update_data({"image": jnp.concatenate([e.data["image"]] * 2, -1)}),
    )
    plain = augmented(40, 8, shuffle=False) >> OperatorNode(double)
    sharded = plain >> SharderNode(sharder)
    for x, y in zip(sharded, plain, strict=True):
        np.testing.assert_array_equal(np.asarray(x["image"]), np.asarray(y["image"]))
        assert x["image"].sharding.spec == P("data", None, None, "model")
        assert x["label"].sharding.spec == P("data")
        assert {s.data.shape for s in x["image"].addressable_shards} == {(2, 4, 6, 1)}
    print("ok", "model_axis")


def bright(e):
    return jnp.mean(e.data["image"]) > 0.5


def check_batch_order_nodes_are_placed_after_computing():
    def build(sharded):
        source = MemorySource(MemorySourceConfig(), data=image_data(60))
        normalizer = ElementOperator(ElementOperatorConfig(), fn=normalize)
        flipper = ElementOperator(
            ElementOperatorConfig(stochastic=True, stream_name="augment"),
            fn=flip,
            rngs=nnx.Rngs(7),
        )
        pipeline = (
            from_source(source, 8, shuffle=True, num_epochs=2)
            >> OperatorNode(normalizer)
            >> CacheNode()
            >> Branch(bright, OperatorNode(flipper), None, per_batch=True)
            >> RebatchNode(16)
        )
        return pipeline >> SharderNode(ArraySharder(MESH)) if sharded else pipeline

    sharded = build(True)
    assert compile(sharded).layout is None
    same_stream(sharded, build(False))
    print("ok", "fallback_nodes")


def check_data_parallel_training_step():
    from datarax.distributed import DataParallel

    dp = DataParallel(MESH)
    params = dp.replicate({"w": jnp.ones((4, 6, 1))})
    step = jax.jit(lambda p, x: jnp.mean(jnp.sum(p["w"] * x, axis=(1, 2, 3))))
    plain = augmented(64, 16, shuffle=False)
    losses = [float(step(params, b["image"])) for b in dp.pipeline(plain)]
    expected = [float(np.mean(np.asarray(b["image"]).sum((1, 2, 3)))) for b in plain]
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    assert dp.shard_batch({"x": np.zeros((16, 2))})["x"].sharding.spec == P("data")
    print("ok", "data_parallel")


def check_prefetched_batches_are_already_on_the_devices():
    import time

    from datarax.dag.program import Program

    calls = []
    real_call = Program.run

    def counting(self, *args):
        out = real_call(self, *args)
        calls.append(out)
        return out

    Program.run = counting
    try:
        pipeline = augmented(64, 16, placement="host", batches_per_call=1, num_epochs=None)
        it = iter(pipeline >> SharderNode(ArraySharder(MESH)))
        next(it)
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) == 3, len(calls)  # the batch handed out and 2 ahead (prefetch=2)
        ahead = calls[-1][0][0][0]["image"]  # next chunk's first batch, already dispatched
        assert ahead.sharding.spec == P("data") and len(ahead.sharding.device_set) == 8
        it.close()
    finally:
        Program.run = real_call
    print("ok", "prefetch")


def check_the_batch_must_split_evenly():
    try:
        augmented(40, 12) >> SharderNode(ArraySharder(MESH))
    except PipelineBuildError as error:
        assert "divisible by 8" in str(error), error
    else:
        raise AssertionError("a batch of 12 over 8 devices was accepted")
    for bad in ({"data": 3}, {"data": 0}, {"data": -1, "model": -1}):
        try:
            DeviceMesh(bad)
        except ConfigError:
            continue
        raise AssertionError(f"DeviceMesh({bad}) was accepted")
    print("ok", "errors")


def check_sharded_pipelines_resume_exactly():
    def make():
        return augmented(43, 8, num_epochs=2, placement="host") >> SharderNode(ArraySharder(MESH))

    assert_resumes_at_every_step(make)
    plain_state = iter(augmented(43, 8, num_epochs=2, placement="host")).get_state()
    assert iter(make()).get_state() == plain_state  # placement is not part of the state
    print("ok", "resume")


def same_stream_on(sharder, sharded, plain):
    """Bit-equal batches, each array placed exactly as ``sharder`` hands them out."""
    a = list(sharded)
    for x, field in equal_fields(a, list(plain)):
        array = x[field]
        assert array.sharding == sharder.sharding_for(array.shape), (field, array.sharding)
        assert array.sharding.mesh == sharder.output_mesh
        assert jax.typeof(array).sharding.spec == sharder.spec_for(array.shape)
        rows = {s.data.shape[0] for s in array.addressable_shards}
        assert rows == {x.batch_size // sharder.data_size}, rows
        assert len(array.sharding.device_set) == 8
    return a


EXPLICIT = jax.make_mesh((8,), ("data",))


def check_make_mesh_pipelines_equal_the_unsharded_stream():
    assert EXPLICIT.axis_types == (AxisType.Explicit,)  # jax.make_mesh's default
    sharder = ArraySharder(EXPLICIT)
    assert sharder.mesh.axis_types == (AxisType.Auto,)  # computed on the Auto twin
    for placement in ("device", "host"):
        wrapped = DeviceMesh({"data": 8}, devices=EXPLICIT.devices, axis_types="explicit")
        assert wrapped.mesh == EXPLICIT
        for sharding in (
            NamedSharding(EXPLICIT, P("data")),
            ArraySharder(EXPLICIT),
            ArraySharder(wrapped),
            JaxProcessSharder(EXPLICIT),
        ):
            sharded = augmented(96, 16, placement=placement, sharding=sharding)
            assert compile(sharded).layout is not None
            same_stream_on(sharder, sharded, augmented(96, 16, placement=placement))
        by_node = augmented(96, 16, placement=placement) >> SharderNode(ArraySharder(EXPLICIT))
        same_stream_on(sharder, by_node, augmented(96, 16, placement=placement))
    print("ok", "make_mesh_equals_unsharded")


def check_make_mesh_model_axis_and_batch_order_nodes():
    mesh = jax.make_mesh((4, 2), ("data", "model"))
    sharder = ArraySharder(mesh, "data", "model")
    double = ElementOperator(
        ElementOperatorConfig(),
        fn=lambda e: e.update_data({"image": jnp.concatenate([e.data["image"]] * 2, -1)}),
    )
    plain = augmented(40, 8, shuffle=False) >> OperatorNode(double)
    batches = same_stream_on(sharder, plain >> SharderNode(sharder), plain)
    assert jax.typeof(batches[0]["image"]).sharding.spec == P("data", None, None, "model")
    assert {s.data.shape for s in batches[0]["image"].addressable_shards} == {(2, 4, 6, 1)}

    def build(sharded):
        source = MemorySource(MemorySourceConfig(), data=image_data(64))
        normalizer = ElementOperator(ElementOperatorConfig(), fn=normalize)
        pipeline = (
            from_source(source, 8, shuffle=True, num_epochs=2)
            >> OperatorNode(normalizer)
            >> CacheNode()
            >> RebatchNode(16)
        )
        return pipeline >> SharderNode(ArraySharder(EXPLICIT)) if sharded else pipeline

    sharded = build(True)
    assert compile(sharded).layout is None  # computed on one device, then placed
    same_stream_on(ArraySharder(EXPLICIT), sharded, build(False))
    print("ok", "make_mesh_model_axis")


def check_make_mesh_data_parallel_training_step():
    from datarax.distributed import DataParallel

    dp = DataParallel(EXPLICIT)
    assert dp.mesh == EXPLICIT
    params = dp.replicate({"w": jnp.ones((4, 6, 1))})
    assert params["w"].sharding == NamedSharding(EXPLICIT, P())
    step = jax.jit(lambda p, x: jnp.mean(jnp.sum(p["w"] * x, axis=(1, 2, 3))))
    plain = augmented(64, 16, shuffle=False)
    losses = [float(step(params, b["image"])) for b in dp.pipeline(plain)]
    expected = [float(np.mean(np.asarray(b["image"]).sum((1, 2, 3)))) for b in plain]
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    print("ok", "make_mesh_data_parallel")


def check_make_mesh_sharder_helpers():
    sharder = ArraySharder(EXPLICIT)
    batch = sharder.shard({"x": np.arange(48.0).reshape(16, 3)})
    assert jax.typeof(batch["x"]).sharding.spec == P("data", None)
    inside = jax.jit(lambda t: sharder.constrain(jax.tree_util.tree_map(lambda v: v * 2, t)))
    doubled = inside(jax.device_put(batch, NamedSharding(sharder.mesh, P("data"))))
    assert doubled["x"].sharding == sharder.sharding_for((16, 3))
    np.testing.assert_array_equal(np.asarray(doubled["x"]), np.arange(48.0).reshape(16, 3) * 2)
    for size, spec in ((8, P("data", None)), (12, P(None, None)), (3, P(None, None))):
        rows = sharder.first_rows(batch, size)["x"]
        np.testing.assert_array_equal(np.asarray(rows), np.arange(48.0).reshape(16, 3)[:size])
        assert jax.typeof(rows).sharding.spec == spec, (size, jax.typeof(rows))
    with jax.set_mesh(EXPLICIT):  # a caller's mesh does not reach the compiled function
        with sharder.computing():
            computed = inside(jax.device_put(batch, NamedSharding(sharder.mesh, P("data"))))
        assert jax.sharding.get_abstract_mesh() == EXPLICIT.abstract_mesh
    assert computed["x"].sharding == sharder.sharding_for((16, 3))
    for axis_types, bad in (
        ((AxisType.Explicit, AxisType.Auto), "mix axis types"),
        ((AxisType.Manual, AxisType.Auto), "Manual axes"),
    ):
        mixed = jax.make_mesh((4, 2), ("data", "model"), axis_types=axis_types)
        try:
            ArraySharder(mixed, "data", "model")
        except ConfigError as error:
            assert bad in str(error), error
        else:
            raise AssertionError(f"a mesh with axis types {axis_types} was accepted")
    print("ok", "make_mesh_helpers")


def check_make_mesh_short_batches_and_a_callers_mesh():
    """A short last batch, and iterating inside the caller's ``jax.set_mesh``."""
    sharder = ArraySharder(EXPLICIT)
    for placement in ("device", "host"):
        plain = list(augmented(100, 16, placement=placement))
        on_mesh = NamedSharding(EXPLICIT, P("data"))
        sharded = list(augmented(100, 16, placement=placement, sharding=on_mesh))
        for x, y in zip(sharded, plain, strict=True):
            np.testing.assert_array_equal(np.asarray(x["image"]), np.asarray(y["image"]))
        assert jax.typeof(sharded[-1]["image"]).sharding.spec == P(None, None, None, None)
    with jax.set_mesh(EXPLICIT):
        batches = list(augmented(64, 16) >> SharderNode(sharder))
    assert all(b["image"].sharding == sharder.sharding_for(b["image"].shape) for b in batches)
    print("ok", "make_mesh_pending")


def check_fused_training_on_a_mesh():
    """A fused loop on a sharded pipeline: batches split over the mesh, same training."""
    from datarax.training import fuse

    def step(w, batch):
        image = batch["image"]
        loss = lambda w: jnp.mean((jnp.sum(w * image, axis=(1, 2, 3)) - 1.0) ** 2)  # noqa: E731
        value, grad = jax.value_and_grad(loss)(w)
        return w - 0.1 * grad, {"loss": value}

    w0 = jnp.zeros((4, 6, 1))
    plain_w, plain = fuse(augmented(100, 16), step).run(w0, steps=100)
    sharded = augmented(100, 16, sharding=NamedSharding(MESH.mesh, P("data")))
    sharded_w, metrics = fuse(sharded, step, steps_per_call=4).run(w0, steps=100)
    assert metrics["loss"].shape == (21,)
    np.testing.assert_allclose(metrics["loss"], plain["loss"], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(sharded_w), np.asarray(plain_w), rtol=1e-5, atol=1e-6)
    # Per-batch training on the same sharded pipeline gives the same losses.
    w, losses = w0, []
    for batch in augmented(100, 16, sharding=NamedSharding(MESH.mesh, P("data"))):
        w, out = jax.jit(step)(w, batch)
        losses.append(float(out["loss"]))
    np.testing.assert_allclose(metrics["loss"], losses, rtol=1e-5)
    print("ok", "fused_training")


PENDING = [check_make_mesh_short_batches_and_a_callers_mesh]


if __name__ == "__main__":
    assert len(jax.devices()) == 8, jax.devices()
    if sys.argv[1:] == ["pending"]:
        for check in PENDING:
            check()
        sys.exit(0)
    check_both_ways_equal_the_unsharded_stream()
    check_fused_training_on_a_mesh()
    check_a_model_axis_splits_the_last_axis()
    check_batch_order_nodes_are_placed_after_computing()
    check_the_batch_must_split_evenly()
    check_data_parallel_training_step()
    check_prefetched_batches_are_already_on_the_devices()
    check_sharded_pipelines_resume_exactly()
    check_make_mesh_pipelines_equal_the_unsharded_stream()
    check_make_mesh_model_axis_and_batch_order_nodes()
    check_make_mesh_data_parallel_training_step()
    check_make_mesh_sharder_helpers()
