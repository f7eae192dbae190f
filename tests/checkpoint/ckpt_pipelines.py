"""Pipelines built the same way by the checkpoint tests and the processes they start."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax import from_source
from datarax.core.element import Element
from datarax.dag.nodes import OperatorNode
from datarax.dag.pipeline import Pipeline
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig

RECORDS = 40
BATCH = 8


class Scale(ElementOperator):
    """Multiplies the image by a learnable ``nnx.Param`` (an augmentation parameter)."""

    def __init__(self, value: float = 1.0, shape: tuple[int, ...] = ()) -> None:
        super().__init__(ElementOperatorConfig(), name="Scale")
        self.scale = nnx.Param(jnp.full(shape, value, jnp.float32))

    def transform(self, element: Element, key: jax.Array | None) -> Element:
        return element.update_data({"image": element.data["image"] * self.scale[...]})


def normalize(element, key=None):
    return element.update_data({"image": element.data["image"] / 255.0})


def flip(element, key):
    do_flip = jax.random.bernoulli(key, 0.5)
    image = element.data["image"]
    return element.update_data({"image": jnp.where(do_flip, jnp.flip(image, axis=1), image)})


def learnable(
    *, seed: int = 0, scale: float = 1.0, shape: tuple[int, ...] = (), batch_size: int = BATCH
) -> Pipeline:
    """Shuffled images (labels hold the record id), normalised, flipped and scaled, 2 epochs."""
    rng = np.random.default_rng(0)
    data = {
        "image": rng.integers(0, 255, (RECORDS, 4, 6, 1)).astype(np.float32),
        "label": np.arange(RECORDS, dtype=np.int32),
    }
    flipper = ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name="augment"), fn=flip, rngs=nnx.Rngs(7)
    )
    return (
        from_source(
            MemorySource(MemorySourceConfig(), data=data),
            batch_size,
            shuffle=True,
            seed=seed,
            num_epochs=2,
        )
        >> OperatorNode(ElementOperator(ElementOperatorConfig(), fn=normalize))
        >> OperatorNode(flipper)
        >> OperatorNode(Scale(scale, shape))
    )


def scale_of(pipeline: Pipeline) -> np.ndarray:
    """The value of the pipeline's learnable scale."""
    (op,) = [op for op in pipeline.operators if isinstance(op, Scale)]
    return np.asarray(op.scale.get_value())


def set_scale(pipeline: Pipeline, value: float) -> None:
    """Train the scale, as it were: give it a new value in place."""
    (op,) = [op for op in pipeline.operators if isinstance(op, Scale)]
    op.scale.set_value(jnp.full(op.scale.get_value().shape, value, jnp.float32))


def rest(iterator) -> dict[str, np.ndarray]:
    """The rest of a stream: epochs, record ids and images of every batch, concatenated."""
    batches = list(iterator)
    return {
        "epochs": np.array([b.epoch for b in batches for _ in range(b.batch_size)]),
        "ids": np.concatenate([np.asarray(b.record_ids) for b in batches]),
        "labels": np.concatenate([np.asarray(b["label"]) for b in batches]),
        "images": np.concatenate([np.asarray(b["image"]) for b in batches]),
    }
