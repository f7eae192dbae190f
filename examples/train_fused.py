"""Train a digit classifier with the data pipeline and the train step fused into one program.

scikit-learn's 8x8 handwritten digits (1,797 real images, shipped with the
package) are split into a training and a test set. The training pipeline
shuffles them and shifts each image by up to one pixel (``RandomCrop`` of a
padded image). ``fuse_nnx`` compiles the pipeline's transform and the Flax NNX
train step into one program per epoch: the batches of the epoch are computed at
once, then a ``lax.scan`` runs the step on each. The same training, batch by
batch, gives the same losses; the script checks that and prints both timings.

Run it::

    python examples/train_fused.py --epochs 20
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits

from datarax import from_source
from datarax.dag.nodes import OperatorNode
from datarax.dag.pipeline import Pipeline
from datarax.operators.image import RandomCrop, RandomCropConfig
from datarax.sources import MemorySource, MemorySourceConfig
from datarax.training import fuse_nnx

BATCH = 64


def digits() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Training and test arrays: images in [0, 1] of shape (8, 8, 1), integer labels."""
    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)[..., None]
    labels = d.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:1500], order[1500:]
    return (
        {"image": images[train], "label": labels[train]},
        {"image": images[test], "label": labels[test]},
    )


def pipeline(train: dict[str, np.ndarray], epochs: int) -> Pipeline:
    """Shuffled batches, each image shifted by up to one pixel."""
    source = MemorySource(MemorySourceConfig(), data=train)
    shift = RandomCrop(RandomCropConfig(size=8, padding=1), rngs=nnx.Rngs(1))
    return from_source(source, BATCH, shuffle=True, seed=0, num_epochs=epochs) >> OperatorNode(
        shift
    )


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(64, 64, rngs=rngs)
        self.out = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.hidden(x.reshape(x.shape[0], -1))))


def train_step(model: MLP, optimizer: nnx.Optimizer, batch) -> jax.Array:
    def loss_fn(model: MLP) -> jax.Array:
        logits = model(batch["image"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def fresh() -> tuple[MLP, nnx.Optimizer]:
    model = MLP(nnx.Rngs(0))
    return model, nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)


def accuracy(model: MLP, test: dict[str, np.ndarray]) -> float:
    predicted = jnp.argmax(model(jnp.asarray(test["image"])), axis=-1)
    return float(jnp.mean(predicted == test["label"]))


def train_fused(train: dict[str, np.ndarray], epochs: int) -> tuple[MLP, np.ndarray, float]:
    """Train with one fused call per epoch; returns the model, the losses and the seconds."""
    model, optimizer = fresh()
    start = time.perf_counter()
    loop = fuse_nnx(pipeline(train, epochs), train_step, model, optimizer)
    losses = []
    while not loop.done:
        losses.append(loop.run())  # one epoch: one dispatch, and one for its short batch
    losses = np.concatenate(jax.device_get(losses))
    return model, losses, time.perf_counter() - start


def train_per_batch(train: dict[str, np.ndarray], epochs: int) -> tuple[MLP, np.ndarray, float]:
    """The same training, one batch and one ``nnx.jit`` step at a time."""
    model, optimizer = fresh()
    start = time.perf_counter()
    step = nnx.jit(train_step)
    losses = [step(model, optimizer, batch.data) for batch in pipeline(train, epochs)]
    return model, np.asarray(jax.device_get(losses)), time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    train, test = digits()
    fused_model, fused_losses, fused_s = train_fused(train, args.epochs)
    plain_model, plain_losses, plain_s = train_per_batch(train, args.epochs)
    np.testing.assert_allclose(fused_losses, plain_losses, rtol=1e-4, atol=1e-6)
    result = {
        "steps": float(len(fused_losses)),
        "first_loss": float(fused_losses[0]),
        "last_loss": float(fused_losses[-1]),
        "fused_accuracy": accuracy(fused_model, test),
        "per_batch_accuracy": accuracy(plain_model, test),
        "fused_s": fused_s,
        "per_batch_s": plain_s,
    }
    print(
        f"{int(result['steps'])} steps, loss {result['first_loss']:.3f} -> "
        f"{result['last_loss']:.3f}, test accuracy {result['fused_accuracy']:.3f}; "
        f"fused {fused_s:.2f} s, per batch {plain_s:.2f} s (compilation included)"
    )
    return result


if __name__ == "__main__":
    main()
