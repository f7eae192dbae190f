"""datarax as its users would write it: built-in operators and sources where it has them.

W1, W1s, W2 and AR use ``Normalize``, ``RandomCrop`` and ``RandomFlip``; the depth chains
are ``ElementOperator`` chains; DAG is the README's Advanced DAG as written there; W4 is a
``MemorySource`` that pads its token lists; RA is the ``RandAugment`` operator, MEL the
``MelSpectrogram`` operator, PACK a ``PackedPipeline`` over a padding ``MemorySource``;
every other scenario runs its per-record JAX function as one ``ElementOperator``. The
training scenarios run W1's or W2's image pipeline (short last batches dropped) and train
as a datarax user writes it: ``for batch in pipeline: state, loss = train_step(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax import from_source
from datarax.benchmarking.adapters.base import BuildContext, MakePass
from datarax.benchmarking.records_file import write_records
from datarax.benchmarking.scenarios import (
    DEPTHS,
    MEL_SETTINGS,
    PACK_READ_BATCH,
    PACK_SEQ_LEN,
    PACK_WINDOW_BATCHES,
    RA_MAGNITUDE,
    RA_NUM_BINS,
    RA_NUM_OPS,
    SEQUENCE_LENGTH,
    Scenario,
    depth_step,
)
from datarax.core.element import Element
from datarax.dag.nodes import Branch, Merge, OperatorNode
from datarax.dag.packing import PackedPipeline
from datarax.dag.pipeline import Pipeline
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.operators.audio.mel import MelSpectrogram, MelSpectrogramConfig
from datarax.operators.image import (
    Normalize,
    NormalizeConfig,
    RandomCrop,
    RandomCropConfig,
    RandomFlip,
    RandomFlipConfig,
)
from datarax.operators.text.packing import PackConfig
from datarax.sources import (
    ArrayRecordSource,
    ArrayRecordSourceConfig,
    MemorySource,
    MemorySourceConfig,
)
from datarax.sources.base import DataSource

UNSUPPORTED: dict[str, str] = {}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the datarax pipeline for ``scenario`` (see the module docstring)."""
    return datarax_pipeline(scenario, context.data, context.stats, context=context)


def build_training(scenario: Scenario, context: BuildContext) -> Any:
    """The per-batch training loop over the scenario's datarax image pipeline."""
    from datarax.benchmarking.training import PerBatchLoop

    pipeline = datarax_image_pipeline(scenario, context.data, context.stats)
    return PerBatchLoop(scenario, lambda: iter(pipeline))


def datarax_pipeline(
    w: Scenario,
    data: dict[str, np.ndarray],
    stats: Any,
    *,
    context: BuildContext | None = None,
) -> MakePass:
    """The pipeline a datarax user would write for ``w`` (``context``: for file scenarios)."""
    if w.name == "RA":
        return datarax_randaugment(w, data)
    if w.name == "MEL":
        return datarax_mel(w, data)
    if w.name == "PACK":
        return datarax_packing(w, data)
    if w.name in ("W1", "W1s", "W2"):
        pipeline = datarax_image_pipeline(w, data, stats)
        return lambda: iter(pipeline)
    if w.storage == "array_record":
        if context is None:
            raise ValueError("the ArrayRecord scenario needs a BuildContext with a workdir")
        workers = int(context.options.get("workers", 2))
        pipeline = datarax_image_pipeline(
            w, data, stats, source=_array_record_source(context), workers=workers
        )
        return lambda: iter(pipeline)
    if w.storage == "ragged":
        return datarax_padded_tokens(w, data)
    if w.name in DEPTHS:
        return datarax_depth_chain(w, data, DEPTHS[w.name])
    if w.name == "DAG":
        return datarax_advanced_dag(w, data)
    return datarax_function(w, data, stats)


def datarax_image_pipeline(
    w: Scenario,
    data: dict[str, np.ndarray],
    stats: Any,
    num_epochs: int | None = -1,
    *,
    source: DataSource | None = None,
    workers: int = 2,
) -> Pipeline:
    """The W1/W1s/W2/AR pipeline of built-in image operators (``num_epochs``: default the pass).

    ``source`` replaces the in-memory source built from ``data`` (the ArrayRecord file,
    read on ``workers`` host workers). The training scenarios get the pipeline of the
    workload they use (W1 or W2), dropping each epoch's short last batch.
    """
    if source is None:
        source = MemorySource(MemorySourceConfig(), data=data)
    epochs = w.epochs_per_pass if num_epochs == -1 else num_epochs
    options: dict[str, Any] = {"drop_remainder": w.drop_remainder}
    if w.storage == "array_record":  # per-record reading and decoding on the workers
        options["workers"] = workers
    pipeline = from_source(source, w.batch_size, shuffle=w.shuffle, num_epochs=epochs, **options)
    if w.work in ("W2", "AR"):
        mean, std = stats
        pipeline = pipeline >> OperatorNode(
            Normalize(NormalizeConfig(mean=tuple(mean.tolist()), std=tuple(std.tolist())))
        )
        crop = RandomCrop(RandomCropConfig(size=32, padding=4), rngs=nnx.Rngs(0))
        pipeline = pipeline >> OperatorNode(crop)
    else:
        pipeline = pipeline >> OperatorNode(Normalize(NormalizeConfig(std=255.0)))
    return pipeline >> OperatorNode(RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(1)))


def datarax_padded_tokens(w: Scenario, data: dict[str, np.ndarray]) -> MakePass:
    """W4: a ``MemorySource`` that truncates/pads ``tokens`` and keeps ``tokens_length``."""
    config = MemorySourceConfig(pad_to={"tokens": SEQUENCE_LENGTH})
    source = MemorySource(config, data={"tokens": list(data["tokens"])})
    pipeline = from_source(source, w.batch_size, shuffle=w.shuffle, num_epochs=w.epochs_per_pass)
    return lambda: iter(pipeline)


def datarax_depth_chain(w: Scenario, data: dict[str, np.ndarray], depth: int) -> MakePass:
    """A chain of ``depth`` element operators, one per step of the scenario."""

    def step(i: int) -> Callable[[Element], Element]:
        return lambda e: e.update_data({"score": depth_step(i, e.data["score"])})

    source = MemorySource(MemorySourceConfig(), data=data)
    pipeline = from_source(source, w.batch_size, shuffle=w.shuffle, num_epochs=w.epochs_per_pass)
    for i in range(depth):
        op = ElementOperator(ElementOperatorConfig(), fn=step(i), name=f"step{i}")
        pipeline = pipeline >> OperatorNode(op)
    return lambda: iter(pipeline)


def datarax_advanced_dag(w: Scenario, data: dict[str, np.ndarray]) -> MakePass:
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


def datarax_function(w: Scenario, data: dict[str, np.ndarray], stats: Any) -> MakePass:
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


def datarax_sharded(w: Scenario, data: dict[str, np.ndarray], stats: Any) -> MakePass:
    """The ``datarax`` pipeline with every batch split over all devices (a data mesh axis).

    Run with several devices, e.g. ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
    on CPU (the benchmark harness sets it for this system).
    """
    from datarax.dag.nodes import SharderNode
    from datarax.sharding import ArraySharder, DeviceMesh

    if w.name not in ("W1", "W1s", "W2"):
        raise ValueError(f"datarax-sharded runs W1, W1s and W2, not {w.name}")
    sharder = ArraySharder(DeviceMesh({"data": -1}))
    pipeline = datarax_image_pipeline(w, data, stats) >> SharderNode(sharder)
    return lambda: iter(pipeline)


def datarax_randaugment(w: Scenario, data: dict[str, np.ndarray]) -> MakePass:
    """RA: the images through the library's ``RandAugment`` operator (2 ops, magnitude 9)."""
    from datarax.operators.policies import RandAugment, RandAugmentConfig

    source = MemorySource(MemorySourceConfig(), data=data)
    op = RandAugment(
        RandAugmentConfig(
            num_ops=RA_NUM_OPS, magnitude=RA_MAGNITUDE, num_magnitude_bins=RA_NUM_BINS
        ),
        rngs=nnx.Rngs(0),
    )
    pipeline = from_source(
        source, w.batch_size, shuffle=w.shuffle, num_epochs=w.epochs_per_pass
    ) >> OperatorNode(op)
    return lambda: iter(pipeline)


def datarax_mel(w: Scenario, data: dict[str, np.ndarray]) -> MakePass:
    """MEL: the clips through the ``MelSpectrogram`` operator into a ``mel`` field."""
    source = MemorySource(MemorySourceConfig(), data=data)
    mel = MelSpectrogram(MelSpectrogramConfig(**MEL_SETTINGS, output_field="mel"))
    pipeline = from_source(
        source, w.batch_size, shuffle=w.shuffle, num_epochs=w.epochs_per_pass
    ) >> OperatorNode(mel)
    return lambda: iter(pipeline)


def datarax_packing(w: Scenario, data: dict[str, np.ndarray]) -> MakePass:
    """PACK: a padding ``MemorySource`` read in batches, packed first-fit by ``PackedPipeline``.

    The source pads every list to the longest one (so no token is cut), reads
    ``PACK_READ_BATCH`` records a batch, and ``PACK_WINDOW_BATCHES`` batches are packed
    together into rows of ``PACK_SEQ_LEN`` tokens, ``w.batch_size`` rows a batch.
    """
    tokens = list(data["tokens"])
    width = int(max(len(t) for t in tokens))
    source = MemorySource(MemorySourceConfig(pad_to={"tokens": width}), data={"tokens": tokens})
    pipeline = from_source(source, PACK_READ_BATCH, shuffle=w.shuffle, num_epochs=w.epochs_per_pass)
    config = PackConfig(
        seq_len=PACK_SEQ_LEN,
        batch_size=w.batch_size,
        algorithm="first_fit",
        window_batches=PACK_WINDOW_BATCHES,
    )
    packed = PackedPipeline(pipeline, config)
    return lambda: iter(packed)


def _array_record_source(context: BuildContext) -> DataSource:
    """The scenario's file (the one every system reads), read by datarax's source."""
    path = write_records(context.workdir / "records.array_record", context.data)
    return ArrayRecordSource(ArrayRecordSourceConfig(paths=path))
