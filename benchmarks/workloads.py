"""The workloads W1, W1s, W2 and W3: data, per-record transforms, batch sizes, passes.

Data is generated with ``numpy.random.default_rng(0)`` so every system starts from the
same host arrays. Each workload gives its transform twice: per record in
``jax.numpy`` (vmapped by the JAX reference and by datarax) and per batch in NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Workload:
    """One benchmark workload."""

    name: str
    make_data: Callable[[], dict[str, np.ndarray]]
    batch_size: int
    epochs_per_pass: int
    shuffle: bool
    #: (data, stats) -> ((record dict, key) -> record dict): the per-record JAX transform.
    record_fn: Callable
    #: (batch dict, rng, stats) -> batch dict: the vectorised NumPy transform.
    numpy_fn: Callable
    stochastic: bool = True


def _w1_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (1000, 28, 28, 1)).astype(np.float32)
    label = rng.integers(0, 10, (1000,)).astype(np.int32)
    return {"image": image, "label": label}


def _w1_record(_stats):
    def fn(record, key):
        image = record["image"] / 255.0
        flip = jax.random.bernoulli(key, 0.5)
        return {**record, "image": jnp.where(flip, jnp.flip(image, axis=1), image)}

    return fn


def _w1_numpy(batch, rng, _stats):
    image = batch["image"]  # a fresh copy (fancy-indexed), so in place is safe
    image *= np.float32(1.0 / 255.0)
    flip = rng.random(len(image)) < 0.5
    image[flip] = image[flip, :, ::-1]  # only the flipped records are rewritten
    return {**batch, "image": image}


def _w2_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8)
    label = rng.integers(0, 10, (50_000,)).astype(np.int32)
    return {"image": image, "label": label}


def _channel_stats(image: np.ndarray):
    # Histogram per channel: exact mean and std of uint8 data without a float copy.
    counts = np.stack(
        [np.bincount(image[..., c].ravel(), minlength=256) for c in range(image.shape[-1])]
    )
    values = np.arange(256, dtype=np.float64)
    n = counts.sum(1)
    mean = counts @ values / n
    std = np.sqrt(counts @ values**2 / n - mean**2)
    return mean.astype(np.float32), std.astype(np.float32)


def _w2_record(stats):
    mean, std = (jnp.asarray(s) for s in stats)

    def fn(record, key):
        k_crop, k_flip = jax.random.split(key)
        image = (record["image"].astype(jnp.float32) - mean) / std
        padded = jnp.pad(image, ((4, 4), (4, 4), (0, 0)))
        offset = jax.random.randint(k_crop, (2,), 0, 9)
        image = jax.lax.dynamic_slice(padded, (offset[0], offset[1], 0), (32, 32, 3))
        flip = jax.random.bernoulli(k_flip, 0.5)
        return {**record, "image": jnp.where(flip, jnp.flip(image, axis=1), image)}

    return fn


def _w2_numpy(batch, rng, stats):
    mean, std = stats
    image = (batch["image"].astype(np.float32) - mean) / std
    padded = np.pad(image, ((0, 0), (4, 4), (4, 4), (0, 0)))
    n = len(image)
    oy, ox = rng.integers(0, 9, n), rng.integers(0, 9, n)
    r = np.arange(32)
    rows = (oy[:, None] + r)[:, :, None]
    cols = (ox[:, None] + r)[:, None, :]
    image = padded[np.arange(n)[:, None, None], rows, cols]
    flip = rng.random(n) < 0.5
    image[flip] = image[flip, :, ::-1]
    return {**batch, "image": image}


def _w3_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1_000_000, 64), dtype=np.float32) * 3.0 + 1.0
    label = rng.integers(0, 2, (1_000_000,)).astype(np.int32)
    return {"x": x, "label": label}


def _column_stats(x: np.ndarray):
    return x.mean(0).astype(np.float32), x.std(0).astype(np.float32)


def _w3_record(stats):
    mean, std = (jnp.asarray(s) for s in stats)

    def fn(record, key=None):
        return {**record, "x": (record["x"] - mean) / std}

    return fn


def _w3_numpy(batch, _rng, stats):
    mean, std = stats
    return {**batch, "x": (batch["x"] - mean) / std}


def _depth_data() -> dict[str, np.ndarray]:
    data = _w1_data()
    data["score"] = np.zeros(len(data["label"]), np.float32)
    return data


def depth_step(i: int, score):
    """Operator ``i`` of the depth chains: a little arithmetic on a per-record score.

    Cheap, but not removable: the output depends on every operator of the chain.
    """
    return score * np.float32(0.999) + np.float32(i % 7)


def _depth(n: int):
    def record(_stats):
        def fn(record, key=None):
            score = record["score"]
            for i in range(n):
                score = depth_step(i, score)
            return {**record, "score": score}

        return fn

    def numpy_fn(batch, _rng, _stats):
        score = batch["score"]
        for i in range(n):
            score = depth_step(i, score)
        return {**batch, "score": score}

    return record, numpy_fn


def _dag_record(_stats):
    """The README's Advanced DAG per record: mean of normalised and inverted, then a branch."""

    def fn(record, key):
        x = record["image"]
        mean = (x / 255.0 + (1.0 - x)) / 2.0
        flip = jax.random.bernoulli(jax.random.split(key)[0], 0.5)
        augmented = jnp.where(flip, jnp.flip(mean, axis=1), mean)
        return {**record, "image": jnp.where(jnp.var(mean) > 0.1, augmented, mean / 255.0)}

    return fn


def _dag_numpy(batch, rng, _stats):
    x = batch["image"]
    mean = (x * np.float32(1 / 255) + (1 - x)) * np.float32(0.5)
    high = mean.reshape(len(mean), -1).var(axis=1) > 0.1
    flip = (rng.random(len(x)) < 0.5) & high
    mean[~high] *= np.float32(1 / 255)
    mean[flip] = mean[flip, :, ::-1]
    return {**batch, "image": mean}


WORKLOADS: dict[str, Workload] = {
    "W1": Workload("W1", _w1_data, 32, 10, False, _w1_record, _w1_numpy),
    "W1s": Workload("W1s", _w1_data, 32, 10, True, _w1_record, _w1_numpy),
    "W2": Workload("W2", _w2_data, 256, 1, True, _w2_record, _w2_numpy),
    "W3": Workload("W3", _w3_data, 1024, 1, True, _w3_record, _w3_numpy, stochastic=False),
    # Operator depth: W1's data and batches, a chain of 1, 10 or 100 small operators.
    **{
        f"D{n}": Workload(f"D{n}", _depth_data, 32, 10, False, *_depth(n), stochastic=False)
        for n in (1, 10, 100)
    },
    # The README's Advanced DAG over W1's data and batches.
    "DAG": Workload("DAG", _w1_data, 32, 10, False, _dag_record, _dag_numpy),
}

#: Operators per chain of the depth workloads.
DEPTHS = {"D1": 1, "D10": 10, "D100": 100}


def stats_for(workload: Workload, data: dict[str, np.ndarray]):
    """Dataset statistics a transform needs (computed once, outside the timed passes)."""
    if workload.name == "W2":
        return _channel_stats(data["image"])
    if workload.name == "W3":
        return _column_stats(data["x"])
    return None
