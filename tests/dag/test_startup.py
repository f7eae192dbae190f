"""Start-up: one program before the first batch, none more for a short run."""

from __future__ import annotations

import numpy as np

from datarax import from_source
from datarax.dag import OperatorNode
from datarax.dag.schedule import SHORT_RUN_BATCHES, start_after
from datarax.operators import ElementOperator, ElementOperatorConfig
from datarax.sources import MemorySource, MemorySourceConfig


def _tutorial_pipeline(batches_per_call: int | None = None):
    """The Quick Start's size: 1000 records of 28x28x1, batches of 32, a user function."""

    def scale(element, key):  # a function of its own: nothing of it is compiled yet
        return element.replace(data={**element.data, "image": element.data["image"] / 255.0})

    images = np.random.default_rng(0).integers(0, 256, (1000, 28, 28, 1)).astype(np.float32)
    source = MemorySource(MemorySourceConfig(), data={"image": images, "label": np.arange(1000)})
    options = {} if batches_per_call is None else {"batches_per_call": batches_per_call}
    pipeline = from_source(source, batch_size=32, shuffle=True, num_epochs=2, **options)
    return pipeline >> OperatorNode(ElementOperator(ElementOperatorConfig(), fn=scale))


def test_a_short_run_compiles_one_program_and_starts_no_other(compile_counter):
    iterator = iter(_tutorial_pipeline())
    first = next(iterator)
    assert compile_counter.count == 1
    rest = [next(iterator) for _ in range(2)]
    assert compile_counter.count == 1
    assert iterator._schedule._thread is None  # the full program's compile never started
    images = np.concatenate([np.asarray(b["image"]) for b in (first, *rest)])
    assert images.shape == (96, 28, 28, 1) and images.max() <= 1.0


def test_a_long_run_compiles_the_full_program_within_its_first_epoch(compile_counter):
    pipeline = _tutorial_pipeline()
    epochs = iter(pipeline)
    per_epoch = 32  # 31 full batches and one of 8 records
    first_epoch = [next(epochs) for _ in range(per_epoch)]
    compiled = compile_counter.count
    assert compiled > 1  # the full chunk program joined the one-batch one
    second_epoch = [next(epochs) for _ in range(per_epoch)]
    assert compile_counter.count == compiled
    reference = iter(_tutorial_pipeline(batches_per_call=1))
    for got in (*first_epoch, *second_epoch):
        want = next(reference)
        np.testing.assert_array_equal(np.asarray(got["image"]), np.asarray(want["image"]))
        np.testing.assert_array_equal(np.asarray(got["label"]), np.asarray(want["label"]))


def test_the_full_compile_starts_after_a_chunk_or_half_an_epoch():
    assert start_after(32, 32) == 16  # half an epoch comes first
    assert start_after(32, 1000) == 32  # a full chunk's worth
    assert start_after(2, 1000) == SHORT_RUN_BATCHES  # never before a short run's end
    assert start_after(32, 1) == 1
