"""Pipelines built the same way in the tests and in the processes they start."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax import from_source
from datarax.dag.nodes import OperatorNode
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig


def image_data(n: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 255, (n, 4, 6, 1)).astype(np.float32),
        "label": np.arange(n, dtype=np.int32),
    }


def normalize(element, key=None):
    return element.update_data({"image": element.data["image"] / 255.0})


def flip(element, key):
    do_flip = jax.random.bernoulli(key, 0.5)
    image = element.data["image"]
    return element.update_data({"image": jnp.where(do_flip, jnp.flip(image, axis=1), image)})


def augmented(
    n=100, batch_size=8, *, seed=0, shuffle=True, num_epochs=3, placement="auto", **options
):
    """Shuffled, normalised, randomly flipped images (labels hold the record id)."""
    source = MemorySource(MemorySourceConfig(placement=placement), data=image_data(n))
    normalizer = ElementOperator(ElementOperatorConfig(), fn=normalize)
    flipper = ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name="augment"), fn=flip, rngs=nnx.Rngs(7)
    )
    return (
        from_source(
            source, batch_size, shuffle=shuffle, seed=seed, num_epochs=num_epochs, **options
        )
        >> OperatorNode(normalizer)
        >> OperatorNode(flipper)
    )


def stream(iterator) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Materialise the rest of an iterator as (epoch, record ids, images)."""
    return [(b.epoch, np.asarray(b["label"]), np.asarray(b["image"])) for b in iterator]
