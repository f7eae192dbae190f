"""Fused training loops: the same batches, keys, parameters and states as the per-batch loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from datarax import from_source
from datarax.core.errors import ConfigError, FusionError, StateError
from datarax.dag.nodes import CacheNode, HostOperator, OperatorNode, RebatchNode
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.operators.image import (
    GaussianNoise,
    GaussianNoiseConfig,
    RandomCrop,
    RandomCropConfig,
    RandomFlip,
    RandomFlipConfig,
)
from datarax.sources import MemorySource, MemorySourceConfig, SequenceSource
from datarax.training import fuse, fuse_nnx

RECORDS, BATCH = 100, 16  # an epoch: 6 full batches and a short one of 4


def images(n: int = RECORDS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "image": rng.random((n, 8, 8, 1), dtype=np.float32),
        "label": (np.arange(n) % 10).astype(np.int32),
    }


def scale(element, key=None):
    return element.update_data({"image": element.data["image"] * 2.0 - 1.0})


def augmented(num_epochs: int | None = 3, drop_remainder: bool = False, **options):
    """Shuffled images through a user function and three stochastic built-in operators."""
    source = MemorySource(MemorySourceConfig(), data=images())
    return (
        from_source(
            source,
            BATCH,
            shuffle=True,
            seed=3,
            num_epochs=num_epochs,
            drop_remainder=drop_remainder,
            **options,
        )
        >> OperatorNode(ElementOperator(ElementOperatorConfig(), fn=scale))
        >> OperatorNode(RandomCrop(RandomCropConfig(size=6, padding=1), rngs=nnx.Rngs(1)))
        >> OperatorNode(RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(2)))
        >> OperatorNode(GaussianNoise(GaussianNoiseConfig(sigma=0.1, clip=False), rngs=nnx.Rngs(3)))
    )


def recording_step(count, batch):
    """Counts steps; returns the batch padded to BATCH rows, its ids and its epoch."""
    n = batch["image"].shape[0]
    pad = BATCH - n
    return count + 1, {
        "image": jnp.pad(batch["image"], ((0, pad), (0, 0), (0, 0), (0, 0))),
        "ids": jnp.pad(batch.record_ids, (0, pad), constant_values=-1),
        "epoch": batch.epoch,
        "size": jnp.int32(n),
    }


def per_batch_records(pipeline):
    out = []
    for batch in pipeline:
        n = batch.batch_size
        image = np.zeros((BATCH, 6, 6, 1), np.float32)
        image[:n] = np.asarray(batch["image"])
        ids = np.full(BATCH, -1, np.int64)
        ids[:n] = batch.record_ids
        out.append((image, ids, batch.epoch, n))
    return out


def test_the_fused_loop_feeds_the_step_exactly_the_per_batch_batches():
    expected = per_batch_records(augmented())
    assert len(expected) == 21  # 3 epochs of 7 batches, the last of each short
    loop = fuse(augmented(), recording_step)
    count, metrics = loop.run(jnp.int32(0), steps=100)  # stops where the epochs end
    assert int(count) == 21 and loop.done
    assert metrics["image"].shape == (21, BATCH, 6, 6, 1)
    for i, (image, ids, epoch, n) in enumerate(expected):
        np.testing.assert_array_equal(metrics["image"][i], image, err_msg=f"step {i}")
        np.testing.assert_array_equal(metrics["ids"][i], ids, err_msg=f"step {i}")
        assert (int(metrics["epoch"][i]), int(metrics["size"][i])) == (epoch, n)


def test_steps_per_call_and_stops_do_not_change_the_stream():
    whole = fuse(augmented(), recording_step).run(jnp.int32(0), steps=21)[1]
    loop = fuse(augmented(), recording_step, steps_per_call=4)
    parts = []
    for steps in (1, 5, 2, 9, 4):  # stops inside calls, at short batches, across epochs
        count, metrics = loop.run(jnp.int32(0), steps=steps)
        assert int(count) == len(metrics["ids"]) == steps
        parts.append(metrics)
    for key in ("image", "ids", "epoch"):
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])


def test_run_without_steps_finishes_the_epoch_and_an_ended_loop_runs_nothing():
    loop = fuse(augmented(num_epochs=1), recording_step)
    count, metrics = loop.run(jnp.int32(0), steps=2)
    count, metrics = loop.run(count)
    assert int(count) == 7 and metrics["ids"].shape == (5, BATCH) and loop.done
    count, metrics = loop.run(count)
    assert int(count) == 7 and metrics["ids"].shape == (0, BATCH)
    assert metrics["image"].dtype == np.float32


def test_epochs_without_short_batches_run_on_across_epochs(compile_counter):
    pipeline = augmented(num_epochs=None, drop_remainder=True)
    expected = per_batch_records(augmented(num_epochs=2, drop_remainder=True))
    loop = fuse(pipeline, recording_step)
    count, metrics = loop.run(jnp.int32(0), steps=12)
    assert loop.steps_per_call == 6  # the full batches of an epoch
    np.testing.assert_array_equal(metrics["ids"], np.stack([e[1] for e in expected]))
    np.testing.assert_array_equal(metrics["epoch"], [0] * 6 + [1] * 6)
    before = compile_counter.count
    for _ in range(3):  # epochs 2 to 7: nothing compiles again
        count, metrics = loop.run(count, steps=12)
        assert len(metrics["ids"]) == 12
    assert compile_counter.count == before
    assert loop.cursor.epoch == 8 and loop.cursor.position == 0


def test_nothing_compiles_after_the_first_epoch(compile_counter):
    def step(count, batch):  # a step of its own: nothing compiled for it yet
        return recording_step(count, batch)

    loop = fuse(augmented(num_epochs=None), step)
    count, _ = loop.run(jnp.int32(0))  # epoch 0: the scan and the short batch
    assert compile_counter.count >= 2
    before = compile_counter.count
    for _ in range(3):
        count, metrics = loop.run(count)
        assert len(metrics["ids"]) == 7
    assert compile_counter.count == before


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(36, 16, rngs=rngs)
        self.out = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.hidden(x.reshape(x.shape[0], -1))))


def train_step(model, optimizer, batch):
    def loss_fn(model):
        logits = model(batch["image"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def model_and_optimizer():
    model = MLP(nnx.Rngs(0))
    return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)


def per_batch_training(pipeline, steps=None):
    model, optimizer = model_and_optimizer()
    jitted = nnx.jit(train_step)
    losses = []
    for i, batch in enumerate(pipeline):
        if steps is not None and i == steps:
            break
        losses.append(float(jitted(model, optimizer, batch.data)))
    return model, np.array(losses)


def assert_same_parameters(a, b):
    for x, y in zip(
        jax.tree.leaves(nnx.state(a, nnx.Param)),
        jax.tree.leaves(nnx.state(b, nnx.Param)),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-5, atol=2e-6)


def test_training_fused_gives_the_per_batch_parameters_and_losses():
    reference, losses = per_batch_training(augmented())
    model, optimizer = model_and_optimizer()
    loop = fuse_nnx(augmented(), train_step, model, optimizer)
    fused = np.concatenate([loop.run(), loop.run(), loop.run()])
    assert loop.done and fused.shape == (21,)
    np.testing.assert_allclose(fused, losses, rtol=2e-5)
    assert len(set(losses.tolist())) == 21  # every step trained on a batch of its own
    assert_same_parameters(model, reference)


@pytest.mark.slow
def test_a_fused_run_checkpointed_at_a_step_resumes_to_the_same_parameters(tmp_path):
    import orbax.checkpoint as ocp

    from datarax.checkpoint import NNXCheckpointRestore, NNXCheckpointSave

    reference, _ = per_batch_training(augmented())
    for k in (3, 7, 10):
        model, optimizer = model_and_optimizer()
        loop = fuse_nnx(augmented(), train_step, model, optimizer, steps_per_call=5)
        loop.run(steps=k)
        with ocp.CheckpointManager(tmp_path / f"run{k}") as manager:
            manager.save(
                k,
                args=ocp.args.Composite(
                    data=NNXCheckpointSave(loop),
                    model=ocp.args.StandardSave(nnx.state((model, optimizer))),
                ),
            )
            manager.wait_until_finished()
        del loop, model, optimizer  # the run is gone: everything comes from the files
        model, optimizer = model_and_optimizer()
        resumed = fuse_nnx(augmented(), train_step, model, optimizer, steps_per_call=5)
        with ocp.CheckpointManager(tmp_path / f"run{k}") as manager:
            restored = manager.restore(
                k,
                args=ocp.args.Composite(
                    data=NNXCheckpointRestore(resumed),
                    model=ocp.args.StandardRestore(nnx.state((model, optimizer))),
                ),
            )
        nnx.update((model, optimizer), restored["model"])
        assert resumed.get_state()["position"] == (k % 7) * BATCH
        while not resumed.done:
            resumed.run()
        assert_same_parameters(model, reference)


def test_fused_and_per_batch_states_resume_each_other():
    iterator = iter(augmented())
    for _ in range(9):
        next(iterator)
    loop = fuse(augmented(), recording_step)
    loop.set_state(iterator.get_state())
    _, metrics = loop.run(jnp.int32(0), steps=3)
    rest = [next(iterator) for _ in range(3)]
    for got, batch in zip(metrics["ids"], rest, strict=True):
        np.testing.assert_array_equal(got[: batch.batch_size], batch.record_ids)
    continued = iter(augmented())
    continued.set_state(loop.get_state())
    np.testing.assert_array_equal(next(continued).record_ids, next(iterator).record_ids)


def scaled(batch_size: int):
    source = MemorySource(MemorySourceConfig(), data=images())
    return from_source(source, batch_size, shuffle=True, seed=3) >> OperatorNode(
        ElementOperator(ElementOperatorConfig(), fn=scale)
    )


def test_a_state_saved_with_other_batch_sizes_resumes_elastically():
    reference = iter(scaled(BATCH))
    next(reference)
    loop = fuse(
        scaled(12),
        lambda c, b: (
            c,
            jnp.pad(b.record_ids, (0, 12 - b.record_ids.shape[0]), constant_values=-1),
        ),
    )
    loop.set_state(reference.get_state())  # after one batch of 16
    _, ids = loop.run(jnp.int32(0))  # the rest of epoch 0, in batches of 12 from record 16
    assert ids.shape == (7, 12)  # 84 records: 7 batches of 12
    expected = np.concatenate([b.record_ids for b in reference])
    np.testing.assert_array_equal(ids.reshape(-1), expected)


def test_pipelines_that_cannot_be_fused_say_why():
    records = [{"x": np.float32(i)} for i in range(8)]
    host = from_source(SequenceSource(records), 4)
    with pytest.raises(
        FusionError, match="needs the records on the device.*records read on the host"
    ):
        fuse(host, recording_step)
    memory = MemorySource(MemorySourceConfig(), data={"x": np.arange(8.0)})
    hosted = from_source(memory, 4) >> HostOperator(lambda r: r)
    with pytest.raises(FusionError, match="by host operators"):
        fuse(hosted, recording_step)
    for node in (CacheNode(), RebatchNode(2)):
        pipeline = (
            from_source(MemorySource(MemorySourceConfig(), data={"x": np.arange(8.0)}), 4) >> node
        )
        with pytest.raises(FusionError, match=f"one batch per step.*found a {type(node).__name__}"):
            fuse(pipeline, recording_step)
    with pytest.raises(FusionError, match="not callable"):
        fuse(augmented(), "step")
    with pytest.raises(ConfigError, match="steps_per_call"):
        fuse(augmented(), recording_step, steps_per_call=0)


def test_a_step_that_changes_its_carry_is_refused_before_running():
    loop = fuse(augmented(), lambda c, b: (c.astype(jnp.float32), c))
    with pytest.raises(FusionError, match="carry unlike the one it was given"):
        loop.run(jnp.int32(0))
    assert loop.cursor.position == 0 and loop.cursor.epoch == 0


def test_a_state_of_another_pipeline_is_refused_and_changes_nothing():
    loop = fuse(augmented(), recording_step)
    loop.run(jnp.int32(0), steps=2)
    other = iter(from_source(MemorySource(MemorySourceConfig(), data=images()), BATCH))
    with pytest.raises(StateError, match="other records"):
        loop.set_state(other.get_state())
    assert loop.get_state()["position"] == 2 * BATCH
