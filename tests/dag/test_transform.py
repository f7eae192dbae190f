"""`Pipeline.transform()`: the device plane inside a user's step, differentiable and bit-exact."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from datarax import from_source
from datarax.core.errors import PipelineBuildError
from datarax.dag.nodes import OperatorNode
from datarax.operators.image import (
    Brightness,
    BrightnessConfig,
    Contrast,
    ContrastConfig,
    GaussianNoise,
    GaussianNoiseConfig,
    Rotate,
    RotateConfig,
    Saturation,
    SaturationConfig,
)
from datarax.operators.relaxed import (
    RelaxedApply,
    RelaxedApplyConfig,
    RelaxedChoice,
    RelaxedChoiceConfig,
)
from datarax.sources import MemorySource, MemorySourceConfig

RECORDS, BATCH = 20, 8


def images(n: int = RECORDS, size: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0.05, 0.95, (n, size, size, 3)).astype(np.float32)


def learnable_pipeline(hard: bool = True, shuffle: bool = True):
    """Brightness and rotation with learnable ranges, a relaxed choice and a relaxed gate."""
    source = MemorySource(
        MemorySourceConfig(), data={"image": images(), "label": np.arange(RECORDS) % 3}
    )
    bright = Brightness(BrightnessConfig(factor=(0.8, 1.2), learnable=True), rngs=nnx.Rngs(1))
    rotate = Rotate(RotateConfig(angle=(-20.0, 20.0), learnable=True), rngs=nnx.Rngs(2))
    choice = RelaxedChoice(
        RelaxedChoiceConfig(weights=(1.0, 2.0), temperature=0.7, hard=hard),
        operators=[
            Contrast(ContrastConfig(factor=1.3, learnable=True)),
            Saturation(SaturationConfig(factor=0.6, learnable=True)),
        ],
        rngs=nnx.Rngs(3),
    )
    noise = RelaxedApply(
        RelaxedApplyConfig(probability=0.4, hard=hard),
        operator=GaussianNoise(GaussianNoiseConfig(sigma=0.05), rngs=nnx.Rngs(4)),
        rngs=nnx.Rngs(5),
    )
    pipeline = from_source(source, BATCH, shuffle=shuffle, seed=7, num_epochs=2)
    for op in (bright, rotate, choice, noise):
        pipeline = pipeline >> OperatorNode(op)
    return pipeline


def params_of(module) -> dict:
    return {k: np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def test_the_transform_gives_the_iterated_batches_bit_for_bit_short_batch_included():
    pipeline = learnable_pipeline()
    transform = pipeline.transform()
    batches = list(pipeline)
    assert [b.batch_size for b in batches] == [8, 8, 4] * 2
    apply = nnx.jit(lambda t, records, ids, epoch: t(records, ids, epoch))
    for batch in batches:
        records = transform.records(batch.record_ids, batch.epoch)
        out = apply(transform, records, batch.record_ids, batch.epoch)
        np.testing.assert_array_equal(np.asarray(out["image"]), np.asarray(batch["image"]))
        np.testing.assert_array_equal(np.asarray(out["label"]), np.asarray(batch["label"]))
        np.testing.assert_array_equal(np.asarray(out.record_ids), batch.record_ids)
        assert int(out.epoch) == batch.epoch


@pytest.mark.slow
def test_eager_calls_agree_with_the_compiled_batches_to_float32_rounding():
    # Op by op, without XLA's fusion, a few roundings differ.
    pipeline = learnable_pipeline()
    transform = pipeline.transform()
    for batch in pipeline:
        out = transform(
            transform.records(batch.record_ids, batch.epoch), batch.record_ids, batch.epoch
        )
        np.testing.assert_allclose(
            np.asarray(out["image"]), np.asarray(batch["image"]), rtol=0, atol=2e-6
        )


def test_the_batch_computed_under_value_and_grad_is_the_iterated_batch():
    pipeline = learnable_pipeline()
    transform = pipeline.transform()
    batch = next(iter(pipeline))
    records = transform.records(batch.record_ids)

    @nnx.jit
    def step(t, records, ids, epoch):
        def loss(t):
            out = t(records, ids, epoch)
            return jnp.mean(out["image"] ** 2), out["image"]

        return nnx.value_and_grad(loss, has_aux=True)(t)

    (_, image), grads = step(transform, records, batch.record_ids, batch.epoch)
    np.testing.assert_array_equal(np.asarray(image), np.asarray(batch["image"]))
    flat = params_of(grads)
    assert set(flat) == set(params_of(transform))
    for path, g in flat.items():
        assert np.all(np.isfinite(g)) and np.any(g != 0), path


@pytest.mark.slow
def test_gradients_equal_finite_differences_on_the_relaxed_pipeline():
    pipeline = learnable_pipeline(hard=False, shuffle=False)
    graphdef, params, rest = nnx.split(pipeline.transform(), nnx.Param, ...)
    ids = np.arange(BATCH)
    records = pipeline.transform().records(ids)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=(BATCH, 6, 6, 3)), jnp.float32)
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def loss(vector):
        t = nnx.merge(graphdef, unravel(vector), rest)
        return jnp.sum(t(records, ids)["image"] * weights)

    analytic = np.asarray(jax.grad(loss)(flat))
    eps = 2e-3
    for i in range(flat.size):
        step = jnp.zeros_like(flat).at[i].set(eps)
        numeric = (float(loss(flat + step)) - float(loss(flat - step))) / (2 * eps)
        assert analytic[i] == pytest.approx(numeric, rel=0.05, abs=0.05), i
    # A learnable fixed value (1.3, 1.3) draws low + 0 * (high - low): only low learns.
    assert flat.size == 11 and np.count_nonzero(analytic) == 9


def test_gradients_reach_the_records():
    pipeline = learnable_pipeline(shuffle=False)
    transform = pipeline.transform()
    ids = np.arange(BATCH)
    records = transform.records(ids)

    def loss(image):
        return jnp.sum(transform({**records, "image": image}, ids)["image"])

    g = jax.grad(loss)(jnp.asarray(records["image"]))
    assert g.shape == records["image"].shape and np.abs(np.asarray(g)).sum() > 0


def test_an_optimizer_over_the_transform_trains_the_pipelines_own_operators():
    pipeline = learnable_pipeline(shuffle=False)
    transform = pipeline.transform()
    before = params_of(transform)
    optimizer = nnx.Optimizer(transform, optax.sgd(0.5), wrt=nnx.Param)
    ids = np.arange(BATCH)
    records = transform.records(ids)

    def loss(t):
        return jnp.mean(t(records, ids)["image"])

    optimizer.update(transform, nnx.grad(loss)(transform))
    after = params_of(transform)
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    # The pipeline's operators are the transform's: a new iterator runs the new values.
    np.testing.assert_array_equal(
        np.asarray(next(iter(pipeline))["image"]),
        np.asarray(nnx.jit(lambda t: t(records, ids))(transform)["image"]),
    )
    own = params_of(nnx.List(pipeline.operators))
    assert [("operators", *k) for k in own] == list(after)
    for key, value in own.items():
        np.testing.assert_array_equal(value, after[("operators", *key)])


def test_bad_records_are_refused_with_the_field_named():
    transform = learnable_pipeline().transform()
    ids = np.arange(4)
    records = transform.records(ids)
    with pytest.raises(PipelineBuildError, match=r"field 'label': record field missing"):
        transform({"image": records["image"]}, ids)
    with pytest.raises(PipelineBuildError, match=r"records and record ids disagree in rows"):
        transform(records, np.arange(5))
    with pytest.raises(PipelineBuildError, match=r"found list"):
        transform([records["image"]], ids)


@pytest.mark.slow
def test_learned_values_are_saved_with_the_iterator_by_the_orbax_handler(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    from datarax.checkpoint import NNXCheckpointRestore, NNXCheckpointSave

    pipeline = learnable_pipeline()
    transform = pipeline.transform()
    optimizer = nnx.Optimizer(transform, optax.sgd(0.5), wrt=nnx.Param)
    it = iter(pipeline)
    batch = next(it)
    records = transform.records(batch.record_ids, batch.epoch)

    def loss(t):
        return jnp.mean(t(records, batch.record_ids, batch.epoch)["image"])

    optimizer.update(transform, nnx.grad(loss)(transform))
    learned = params_of(transform)
    with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
        manager.save(1, args=ocp.args.Composite(data=NNXCheckpointSave(it)))
        manager.wait_until_finished()
    it.set_state(it.get_state())  # a running iterator reads new values when set
    expected = [np.asarray(b["image"]) for b in it]

    fresh = learnable_pipeline()
    initial = params_of(fresh.transform())
    assert any(not np.array_equal(initial[k], learned[k]) for k in learned)
    resumed = iter(fresh)
    with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
        manager.restore(1, args=ocp.args.Composite(data=NNXCheckpointRestore(resumed)))
    restored = params_of(fresh.transform())
    for key, value in learned.items():
        np.testing.assert_array_equal(restored[key], value)
    got = [np.asarray(b["image"]) for b in resumed]
    assert len(got) == len(expected) == 5
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
