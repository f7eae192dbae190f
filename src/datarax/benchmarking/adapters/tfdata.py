"""tf.data as its users write it: ``from_tensor_slices``, ``shuffle``, ``batch``, a
vectorised ``map`` of TensorFlow ops, ``prefetch``.

The transforms are the scenarios' own, written with TensorFlow ops on whole batches
(``map`` after ``batch``), run by tf.data's thread pool (``num_parallel_calls=AUTOTUNE``).
W4 slices a ``RaggedTensor`` and pads each batch with ``to_tensor``. tf.data has no
ArrayRecord reader, so AR is skipped. The training scenarios run the same pipeline
(short last batches dropped) and feed ``as_numpy_iterator()``'s batches to the jitted
train step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from datarax.benchmarking.adapters.base import BuildContext, MakePass
from datarax.benchmarking.scenarios import (
    DEPTHS,
    MASK_ID,
    SEQUENCE_LENGTH,
    VOCAB_SIZE,
    FlatTokens,
    Scenario,
    depth_step,
)

UNSUPPORTED = {"AR": "tf.data has no ArrayRecord reader"}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the tf.data pipeline (one ``for`` over the dataset per epoch)."""
    ds = dataset(scenario, context)

    def one_pass() -> Iterator[Any]:
        for _ in range(scenario.epochs_per_pass):
            yield from ds

    return one_pass


def build_training(scenario: Scenario, context: BuildContext) -> Any:
    """The training loop fed by tf.data: ``for batch in ds.as_numpy_iterator(): ...``."""
    from datarax.benchmarking.training import PerBatchLoop

    ds = dataset(scenario, context)

    def one_pass() -> Iterator[Any]:
        for _ in range(scenario.epochs_per_pass):
            yield from ds.as_numpy_iterator()

    return PerBatchLoop(scenario, one_pass)


def dataset(scenario: Scenario, context: BuildContext) -> Any:
    """The ``tf.data.Dataset`` of one epoch of ``scenario``'s batches."""
    import tensorflow as tf

    tf.random.set_seed(0)
    autotune = tf.data.AUTOTUNE
    if scenario.storage == "ragged":
        flat = FlatTokens.of(context.data["tokens"])
        ragged = tf.RaggedTensor.from_row_splits(flat.tokens, flat.offsets)
        ds = tf.data.Dataset.from_tensor_slices({"tokens": ragged})
    else:
        ds = tf.data.Dataset.from_tensor_slices(context.data)
    if scenario.shuffle:
        ds = ds.shuffle(context.num_records, seed=0, reshuffle_each_iteration=True)
    ds = ds.batch(scenario.batch_size, drop_remainder=scenario.drop_remainder)
    ds = ds.map(_transform(scenario, context.stats, tf), num_parallel_calls=autotune)
    return ds.prefetch(autotune)


def _transform(scenario: Scenario, stats: Any, tf: Any) -> Callable:
    name = scenario.work
    if name in ("W1", "W1s"):
        return lambda b: {**b, "image": _random_flip(b["image"] / 255.0, tf)}
    if name == "W2":
        mean, std = stats
        return lambda b: {**b, "image": _w2_images(b["image"], mean, std, tf)}
    if name == "W3":
        mean, std = stats
        return lambda b: {**b, "x": (b["x"] - mean) / std}
    if name == "W4":
        return lambda b: {
            "tokens": b["tokens"][:, :SEQUENCE_LENGTH].to_tensor(0, shape=[None, SEQUENCE_LENGTH]),
            "tokens_length": tf.minimum(
                tf.cast(b["tokens"].row_lengths(), tf.int32), SEQUENCE_LENGTH
            ),
        }
    if name == "MLM":
        return lambda b: _mlm(b, tf)
    if name in DEPTHS:
        return lambda b: {**b, "score": _chain(b["score"], DEPTHS[name])}
    if name == "DAG":
        return lambda b: {**b, "image": _dag(b["image"], tf)}
    raise ValueError(f"no tf.data transform for scenario {name}")


def _random_flip(image: Any, tf: Any) -> Any:
    flip = tf.random.uniform(tf.shape(image)[:1]) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(image, axis=[2]), image)


def _w2_images(image: Any, mean: Any, std: Any, tf: Any) -> Any:
    image = (tf.cast(image, tf.float32) - mean) / std
    padded = tf.pad(image, [[0, 0], [4, 4], [4, 4], [0, 0]])
    n = tf.shape(image)[0]
    offsets = tf.random.uniform([n, 2], 0, 9, dtype=tf.int32)
    r = tf.range(32)
    rows = offsets[:, :1] + r  # (n, 32)
    cols = offsets[:, 1:] + r
    image = tf.gather(padded, rows, axis=1, batch_dims=1)
    image = tf.gather(image, cols, axis=2, batch_dims=1)
    return _random_flip(image, tf)


def _mlm(batch: dict[str, Any], tf: Any) -> dict[str, Any]:
    tokens = batch["tokens"]
    shape = tf.shape(tokens)
    valid = tf.range(shape[1])[None, :] < batch["length"][:, None]
    selected = valid & (tf.random.uniform(shape) < 0.15)
    kind = tf.random.uniform(shape)
    words = tf.random.uniform(shape, 2, VOCAB_SIZE, dtype=tf.int32)
    replaced = tf.where(kind < 0.8, MASK_ID, tf.where(kind < 0.9, words, tokens))
    return {
        **batch,
        "tokens": tf.where(selected, replaced, tokens),
        "labels": tf.where(selected, tokens, -100),
    }


def _chain(score: Any, depth: int) -> Any:
    for i in range(depth):
        score = depth_step(i, score)
    return score


def _dag(x: Any, tf: Any) -> Any:
    mean = (x / 255.0 + (1.0 - x)) / 2.0
    high = tf.math.reduce_variance(tf.reshape(mean, [tf.shape(mean)[0], -1]), axis=1) > 0.1
    flip = (tf.random.uniform(tf.shape(mean)[:1]) < 0.5) & high
    mean = tf.where(high[:, None, None, None], mean, mean / 255.0)
    return tf.where(flip[:, None, None, None], tf.reverse(mean, axis=[2]), mean)
