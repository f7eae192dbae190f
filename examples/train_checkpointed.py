"""Train a small classifier with Flax NNX and Optax, checkpointing model, optimizer and data.

Every ``--checkpoint-every`` steps an Orbax ``CheckpointManager`` saves, as one
checkpoint, the model's parameters, the optimizer's state and the data iterator
(its position and its operators' state, with datarax's ``NNXCheckpointHandler``).
Saves are asynchronous: training goes on while the files are written. When the
checkpoint directory already holds a checkpoint, the run resumes from the latest
one, so a run killed at any point and started again ends with exactly the same
parameters as a run that was never interrupted.

Run it (and interrupt it, and run it again)::

    python examples/train_checkpointed.py --steps 200 --checkpoint-dir /tmp/ckpt

It prints one line per step (``step 17 loss 1.234567``), writes the final
parameters to ``--output`` (an ``.npz``) and prints a summary.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

from datarax import from_source
from datarax.checkpoint import NNXCheckpointRestore, NNXCheckpointSave
from datarax.dag.nodes import OperatorNode
from datarax.dag.pipeline import Pipeline
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig, synthetic_images
from datarax.typing import Element

IMAGE_SHAPE = (16, 16, 1)
NUM_CLASSES = 10


# -- data ----------------------------------------------------------------------------------
def normalize(element: Element) -> Element:
    """Scale the pixel values from [0, 255] to [0, 1]."""
    return element.update_data({"image": element.data["image"] / 255.0})


def random_flip(element: Element, key: jax.Array) -> Element:
    """Mirror the image left-right with probability 1/2."""
    image = element.data["image"]
    flip = jax.random.bernoulli(key, 0.5)
    return element.update_data({"image": jnp.where(flip, jnp.flip(image, axis=1), image)})


def build_pipeline(records: int, batch_size: int, seed: int) -> Pipeline:
    """Shuffled batches of synthetic images, normalised and randomly flipped, forever."""
    data = synthetic_images(records, seed=seed, image_shape=IMAGE_SHAPE, num_classes=NUM_CLASSES)
    source = MemorySource(MemorySourceConfig(), data=data)
    normalizer = ElementOperator(ElementOperatorConfig(), fn=normalize)
    flipper = ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name="augment"),
        fn=random_flip,
        rngs=nnx.Rngs(seed),
    )
    return (
        from_source(
            source, batch_size, shuffle=True, seed=seed, num_epochs=None, drop_remainder=True
        )
        >> OperatorNode(normalizer)
        >> OperatorNode(flipper)
    )


# -- model ---------------------------------------------------------------------------------
class MLP(nnx.Module):
    """Two dense layers on the flattened image."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(int(np.prod(IMAGE_SHAPE)), hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, NUM_CLASSES, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        return self.out(jax.nn.relu(self.hidden(x)))


@nnx.jit
def train_step(
    model: MLP, optimizer: nnx.Optimizer, images: jax.Array, labels: jax.Array
) -> jax.Array:
    """One Adam step on the cross-entropy; returns the batch's loss before the step."""

    def loss_fn(model: MLP) -> jax.Array:
        logits = model(images)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


# -- checkpoints ---------------------------------------------------------------------------
def checkpoint_args(model: MLP, optimizer: nnx.Optimizer, data) -> ocp.args.Composite:
    """What one checkpoint holds: model, optimizer and the data iterator."""
    return ocp.args.Composite(
        model=ocp.args.StandardSave(nnx.state(model)),
        optimizer=ocp.args.StandardSave(nnx.state(optimizer)),
        data=NNXCheckpointSave(data),
    )


def restore_latest(manager: ocp.CheckpointManager, model, optimizer, data) -> int:
    """Restore the latest checkpoint into model, optimizer and iterator; its step (0: none)."""
    step = manager.latest_step()
    if step is None:
        return 0
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            model=ocp.args.StandardRestore(nnx.state(model)),
            optimizer=ocp.args.StandardRestore(nnx.state(optimizer)),
            data=NNXCheckpointRestore(data),  # sets the iterator's position in place
        ),
    )
    nnx.update(model, restored.model)
    nnx.update(optimizer, restored.optimizer)
    return step


def report_step(step: int, loss: float) -> None:
    """Print one progress line (flushed, so a supervisor sees it at once)."""
    print(f"step {step} loss {loss:.6f}\n", end="", flush=True)  # one write per line


def accuracy(model: MLP, records: int, seed: int) -> float:
    """Share of the (unflipped) training images the model labels correctly."""
    data = synthetic_images(records, seed=seed, image_shape=IMAGE_SHAPE, num_classes=NUM_CLASSES)
    logits = model(jnp.asarray(data["image"]) / 255.0)
    return float(jnp.mean(jnp.argmax(logits, axis=-1) == data["label"]))


# -- the run -------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> dict[str, float | int | str]:
    """Train to ``args.steps`` steps, resuming from the latest checkpoint; returns a summary."""
    pipeline = build_pipeline(args.records, args.batch_size, args.seed)
    model = MLP(args.hidden, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.learning_rate), wrt=nnx.Param)
    data = iter(pipeline)

    options = ocp.CheckpointManagerOptions(
        max_to_keep=args.keep,
        enable_async_checkpointing=True,
        cleanup_tmp_directories=True,  # what a run killed while saving left behind
    )
    with ocp.CheckpointManager(Path(args.checkpoint_dir).absolute(), options=options) as manager:
        start = restore_latest(manager, model, optimizer, data)
        print(f"resuming from step {start}" if start else "starting from step 0", flush=True)
        loss = float("nan")
        for step in range(start + 1, args.steps + 1):
            batch = next(data)
            loss = float(train_step(model, optimizer, batch["image"], batch["label"]))
            report_step(step, loss)
            if step % args.checkpoint_every == 0:
                # After `step` steps: the iterator stands at batch `step` + 1. Returns
                # at once; the files are written in the background.
                manager.save(step, args=checkpoint_args(model, optimizer, data))
        manager.wait_until_finished()
        latest = manager.latest_step()

    params = {
        "/".join(map(str, path)): np.asarray(var.get_value())
        for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(output, **params)
    return {
        "steps": args.steps,
        "resumed_from": start,
        "final_loss": loss,
        "accuracy": accuracy(model, args.records, args.seed),
        "latest_checkpoint": -1 if latest is None else latest,
        "output": str(output),
    }


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags (defaults: a run of a few seconds on a CPU)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--steps", type=int, default=40, help="training steps in all (default: %(default)s)")
    add("--checkpoint-every", type=int, default=10, help="steps between checkpoints (10)")
    add("--checkpoint-dir", default="checkpoints", help="where checkpoints are kept")
    add("--keep", type=int, default=3, help="checkpoints kept (default: %(default)s)")
    add("--records", type=int, default=256, help="synthetic images (default: %(default)s)")
    add("--batch-size", type=int, default=32, help="images per step (default: %(default)s)")
    add("--hidden", type=int, default=64, help="hidden units (default: %(default)s)")
    add("--learning-rate", type=float, default=1e-3, help="Adam's learning rate (0.001)")
    add("--seed", type=int, default=0, help="seeds data, shuffle, flips and model (0)")
    add("--output", default="params.npz", help="where the final parameters are written")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    args = build_parser().parse_args(argv)
    summary = train(args)
    print(
        f"done: {summary['steps']} steps (resumed from step {summary['resumed_from']}), "
        f"final loss {summary['final_loss']:.6f}, accuracy {summary['accuracy']:.3f}, "
        f"latest checkpoint "
        f"{summary['latest_checkpoint']}, parameters written to {summary['output']}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
