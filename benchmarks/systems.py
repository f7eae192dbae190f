"""The systems compared: datarax and the hand-written NumPy and JAX references.

Each system takes a workload and its host arrays and returns ``make_pass``: a
function that returns an iterator over one pass's batches (dicts of arrays). The
harness materialises every array of every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.workloads import DEPTHS, Workload, depth_step
from datarax import from_source
from datarax.dag.nodes import Branch, Merge, OperatorNode
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.operators.image import (
    Normalize,
    NormalizeConfig,
    RandomCrop,
    RandomCropConfig,
    RandomFlip,
    RandomFlipConfig,
)
from datarax.sources import MemorySource, MemorySourceConfig

MakePass = Callable[[], Iterator]


def numpy_reference(w: Workload, data: dict[str, np.ndarray], stats) -> MakePass:
    """Permute once per epoch, fancy-index each batch, vectorised NumPy transform."""
    rng = np.random.default_rng(1)
    n = len(next(iter(data.values())))

    def one_pass():
        for _ in range(w.epochs_per_pass):
            order = rng.permutation(n) if w.shuffle else np.arange(n)
            for start in range(0, n, w.batch_size):
                idx = order[start : start + w.batch_size]
                yield w.numpy_fn({k: v[idx] for k, v in data.items()}, rng, stats)

    return one_pass


def jax_reference(w: Workload, data: dict[str, np.ndarray], stats) -> MakePass:
    """Device-resident data, one jitted gather + vmapped transform per batch."""
    device_data = jax.device_put(data)
    fn = w.record_fn(stats)
    base = jax.random.key(0)
    rng = np.random.default_rng(1)
    n = len(next(iter(data.values())))

    @jax.jit
    def step(arrays, idx, epoch):
        batch = {k: jnp.take(v, idx, axis=0) for k, v in arrays.items()}
        epoch_key = jax.random.fold_in(base, epoch)
        keys = jax.vmap(jax.random.fold_in, (None, 0))(epoch_key, idx.astype(jnp.uint32))
        return jax.vmap(fn)(batch, keys)

    epoch = [0]

    def one_pass():
        for _ in range(w.epochs_per_pass):
            order = rng.permutation(n) if w.shuffle else np.arange(n)
            order = order.astype(np.int32)
            for start in range(0, n, w.batch_size):
                yield step(device_data, order[start : start + w.batch_size], np.uint32(epoch[0]))
            epoch[0] += 1

    return one_pass


def datarax_pipeline(w: Workload, data: dict[str, np.ndarray], stats) -> MakePass:
    """datarax as its users would write it: built-in operators where datarax has them."""
    if w.name in ("W1", "W1s", "W2"):
        pipeline = datarax_image_pipeline(w, data, stats)
        return lambda: iter(pipeline)
    if w.name in DEPTHS:
        return datarax_depth_chain(w, data, DEPTHS[w.name])
    if w.name == "DAG":
        return datarax_advanced_dag(w, data)
    return datarax_function(w, data, stats)


def datarax_image_pipeline(
    w: Workload, data: dict[str, np.ndarray], stats, num_epochs: int | None = -1
):
    """The W1/W1s/W2 pipeline of built-in image operators (``num_epochs``: default the pass)."""
    source = MemorySource(MemorySourceConfig(), data=data)
    epochs = w.epochs_per_pass if num_epochs == -1 else num_epochs
    pipeline = from_source(source, w.batch_size, shuffle=w.shuffle, num_epochs=epochs)
    if w.name == "W2":
        mean, std = stats
        pipeline = pipeline >> OperatorNode(
            Normalize(NormalizeConfig(mean=tuple(mean.tolist()), std=tuple(std.tolist())))
        )
        crop = RandomCrop(RandomCropConfig(size=32, padding=4), rngs=nnx.Rngs(0))
        pipeline = pipeline >> OperatorNode(crop)
    else:
        pipeline = pipeline >> OperatorNode(Normalize(NormalizeConfig(std=255.0)))
    return pipeline >> OperatorNode(RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(1)))


def datarax_depth_chain(w: Workload, data: dict[str, np.ndarray], depth: int) -> MakePass:
    """A chain of ``depth`` element operators, one per step of the workload."""

    def step(i):
        return lambda e: e.update_data({"score": depth_step(i, e.data["score"])})

    source = MemorySource(MemorySourceConfig(), data=data)
    pipeline = from_source(source, w.batch_size, shuffle=w.shuffle, num_epochs=w.epochs_per_pass)
    for i in range(depth):
        op = ElementOperator(ElementOperatorConfig(), fn=step(i), name=f"step{i}")
        pipeline = pipeline >> OperatorNode(op)
    return lambda: iter(pipeline)


def datarax_advanced_dag(w: Workload, data: dict[str, np.ndarray]) -> MakePass:
    """The README's Advanced DAG with the Quick Start's operators, as written there."""

    def normalize(element, key=None):
        return element.update_data({"image": element.data["image"] / 255.0})

    def augment(element, key):
        key1, _ = jax.random.split(key)
        flip = jax.random.bernoulli(key1, 0.5)
        new_image = jax.lax.cond(
            flip, lambda img: jnp.flip(img, axis=1), lambda img: img, element.data["image"]
        )
        return element.update_data({"image": new_image})

    def invert(element, key=None):
        return element.update_data({"image": 1.0 - element.data["image"]})

    def is_high_contrast(element):
        return jnp.var(element.data["image"]) > 0.1

    normalizer = ElementOperator(ElementOperatorConfig(stochastic=False), fn=normalize)
    augmenter = ElementOperator(
        ElementOperatorConfig(stochastic=True, stream_name="augmentations"),
        fn=augment,
        rngs=nnx.Rngs(42),
    )
    inverter = ElementOperator(ElementOperatorConfig(stochastic=False), fn=invert)
    source = MemorySource(MemorySourceConfig(), data=data)
    pipeline = (
        from_source(source, w.batch_size, shuffle=w.shuffle, num_epochs=w.epochs_per_pass)
        >> (OperatorNode(normalizer) | OperatorNode(inverter))
        >> Merge("mean")
        >> Branch(
            condition=is_high_contrast,
            true_path=OperatorNode(augmenter),
            false_path=OperatorNode(normalizer),
        )
    )
    return lambda: iter(pipeline)


def datarax_function(w: Workload, data: dict[str, np.ndarray], stats) -> MakePass:
    """The reference's own per-record function as one datarax ElementOperator."""
    fn = w.record_fn(stats)
    source = MemorySource(MemorySourceConfig(), data=data)
    op = ElementOperator(
        ElementOperatorConfig(stochastic=w.stochastic, stream_name="augment"),
        fn=lambda element, key: element.update_data(fn(element.data, key)),
        rngs=nnx.Rngs(0),
        name=f"{w.name}-transform",
    )
    pipeline = from_source(
        source, w.batch_size, shuffle=w.shuffle, num_epochs=w.epochs_per_pass
    ) >> OperatorNode(op)
    return lambda: iter(pipeline)


def datarax_sharded(w: Workload, data: dict[str, np.ndarray], stats) -> MakePass:
    """The ``datarax`` pipeline with every batch split over all devices (a data mesh axis).

    Run with several devices, e.g. ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
    on CPU (the benchmark harness sets it for this system).
    """
    from datarax.dag.nodes import SharderNode
    from datarax.distributed import DeviceMesh
    from datarax.sharding import ArraySharder

    if w.name not in ("W1", "W1s", "W2"):
        raise ValueError(f"datarax-sharded runs W1, W1s and W2, not {w.name}")
    sharder = ArraySharder(DeviceMesh({"data": -1}))
    pipeline = datarax_image_pipeline(w, data, stats) >> SharderNode(sharder)
    return lambda: iter(pipeline)


SYSTEMS: dict[str, Callable[..., MakePass]] = {
    "numpy": numpy_reference,
    "jax": jax_reference,
    "datarax": datarax_pipeline,
    "datarax-fn": datarax_function,
    "datarax-sharded": datarax_sharded,
    # The unsharded pipeline in a process with as many devices as datarax-sharded.
    "datarax-8dev": datarax_pipeline,
}

#: Devices a system's process is started with (simulated on CPU).
DEVICES = {"datarax-sharded": 8, "datarax-8dev": 8}
