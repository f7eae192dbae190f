"""The examples run as written, and do what their comments say."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def quickstart():
    return runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")


def test_quickstart_prints_its_three_lines(capsys):
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"Batch {i}: images (32, 28, 28, 1), labels (32,)" for i in range(3)]


def flips(namespace, pipeline):
    """Per (epoch, record): whether the record came out flipped; checks every value."""
    images = namespace["data"]["image"]
    out = {}
    for batch in pipeline:
        values = np.asarray(batch["image"])
        assert values.min() >= 0.0 and values.max() <= 1.0
        for rid, image in zip(batch.record_ids.tolist(), values, strict=True):
            plain = images[rid] / 255.0
            mirrored = plain[:, ::-1]
            if np.array_equal(plain, mirrored):
                continue
            if np.allclose(image, plain, atol=1e-6):
                out[(batch.epoch, rid)] = False
            else:
                np.testing.assert_allclose(image, mirrored, atol=1e-6)
                out[(batch.epoch, rid)] = True
    return out


def test_quickstart_normalises_and_flips_about_half_the_records_per_record(quickstart):
    pipeline = quickstart["pipeline"]  # its first loop stopped in epoch 0
    epoch1 = flips(quickstart, pipeline)
    epoch2 = flips(quickstart, pipeline)
    assert {e for e, _ in epoch1} == {1} and {e for e, _ in epoch2} == {2}
    a = np.array([epoch1[(1, r)] for r in range(1000)])
    b = np.array([epoch2[(2, r)] for r in range(1000)])
    assert 0.42 < a.mean() < 0.58 and 0.42 < b.mean() < 0.58
    # Flips are per record: not all equal, and epoch 2 re-draws them.
    assert 0.35 < np.mean(a != b) < 0.65


def test_quickstart_same_seeds_give_the_same_stream(quickstart):
    from datarax import from_source
    from datarax.dag.nodes import OperatorNode

    def rebuild():
        return (
            from_source(quickstart["source"], batch_size=32)
            >> OperatorNode(quickstart["normalizer"])
            >> OperatorNode(quickstart["augmenter"])
        )

    first = [np.asarray(b["image"]) for b in rebuild()]
    second = [np.asarray(b["image"]) for b in rebuild()]
    assert len(first) == 32
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def advanced():
    return runpy.run_path(str(EXAMPLES / "advanced_dag.py"), run_name="__main__")


def advanced_reference(namespace, images, record_ids, epoch, seed=0):
    """The Advanced DAG written by hand with NumPy; flips from the pipeline's record keys."""
    import jax
    import jax.numpy as jnp

    x = images[record_ids].astype(np.float32)
    normalised = x / np.float32(255.0)
    inverted = np.float32(1.0) - x
    mean = (normalised + inverted) / np.float32(2.0)
    high = mean.reshape(len(mean), -1).var(axis=1) > 0.1
    keys = namespace["augmenter"].keys_for(jnp.asarray(record_ids), jnp.uint32(epoch), seed)
    draw = jax.vmap(lambda k: jax.random.bernoulli(jax.random.split(k)[0], 0.5))
    flips = np.asarray(draw(keys))
    augmented = np.where(flips[:, None, None, None], mean[:, :, ::-1], mean)
    expected = np.where(high[:, None, None, None], augmented, mean / np.float32(255.0))
    return expected, high, flips


def check_advanced(namespace, pipeline, images, epochs):
    seen_high, seen_flip, records = [], [], 0
    for _ in range(epochs):
        for batch in pipeline:
            ids = batch.record_ids
            expected, high, flips = advanced_reference(namespace, images, ids, batch.epoch)
            np.testing.assert_allclose(batch["image"], expected, rtol=1e-6, atol=1e-5)
            np.testing.assert_array_equal(batch["label"], namespace["data"]["label"][ids])
            seen_high.append(high)
            seen_flip.append(flips[high])
            records += len(ids)
    return np.concatenate(seen_high), np.concatenate(seen_flip), records


def test_advanced_dag_prints_three_batches(capsys):
    runpy.run_path(str(EXAMPLES / "advanced_dag.py"), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[:3] == [f"Batch {i}: images (32, 28, 28, 1), labels (32,)" for i in range(3)]
    assert any("Merge(mean)" in line for line in lines[3:])


def test_advanced_dag_equals_the_numpy_reference_on_every_record(advanced):
    high, flipped, records = check_advanced(
        advanced, advanced["complex_pipeline"], advanced["data"]["image"], epochs=2
    )
    assert records == 2000  # two whole epochs after the example's own three batches
    assert high.all()  # random images in [0, 255) always have high contrast here
    assert 0.4 < flipped.mean() < 0.6  # the augmenter really ran


def test_advanced_dag_takes_both_paths_on_low_and_high_contrast_records(advanced):
    """The same nodes over data where half the images are flat: the false path runs too."""
    from datarax.dag.nodes import BatchNode, DataSourceNode
    from datarax.sources import MemorySource, MemorySourceConfig

    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (96, 28, 28, 1)).astype(np.float32)
    images[::2] = rng.integers(0, 255, (48, 1, 1, 1)).astype(np.float32)  # flat images
    labels = np.arange(96, dtype=np.int32)
    source = MemorySource(MemorySourceConfig(), data={"image": images, "label": labels})
    pipeline = DataSourceNode(source, shuffle=True, seed=0) >> BatchNode(32)
    for node in advanced["complex_pipeline"].device_nodes:
        pipeline = pipeline >> node
    namespace = {**advanced, "data": {"image": images, "label": labels}}
    high, flipped, records = check_advanced(namespace, pipeline, images, epochs=1)
    assert records == 96
    assert high.sum() == 48  # exactly the textured images took the true path
    assert 0 < flipped.sum() < 48


def test_records_pipeline_example_is_independent_of_workers_and_skips_the_bad_record(tmp_path):
    from harness import snapshot

    example = runpy.run_path(str(EXAMPLES / "records_pipeline.py"))
    path = tmp_path / "captions.arrayrecord"
    example["write_dataset"](path)
    lines = example["main"](path, workers=2)
    assert lines == [
        "epoch 0: skipped records [17]",
        "epoch 1: skipped records [17]",
        "batch: image (32, 16, 16, 3) float32, tokens (32, 16), mean caption length 16.0",
        "skipped in total: 2",
    ]
    streams = [[snapshot(b) for b in example["build"](path, w)] for w in (0, 2)]
    assert streams[0] == streams[1]
    # tokens are the caption's bytes + 1; record 17's row repeats a good record, masked
    batch = next(iter(example["build"](path, 0)))
    tokens = np.asarray(batch["tokens"])
    assert tokens.min() >= 0 and (tokens[:, :3] > 1).all()
    assert batch.mask.all() or not batch.mask[batch.record_ids == 17].any()


def test_train_fused_trains_as_the_per_batch_loop_does(capsys):
    namespace = runpy.run_path(str(EXAMPLES / "train_fused.py"))
    result = namespace["main"](["--epochs", "6"])  # checks fused losses == per-batch losses
    assert result["steps"] == 6 * 24  # 1,500 images: 23 batches of 64 and one of 28
    assert result["last_loss"] < 0.6 * result["first_loss"]
    assert result["fused_accuracy"] > 0.7
    assert abs(result["fused_accuracy"] - result["per_batch_accuracy"]) < 0.02
    assert capsys.readouterr().out.startswith("144 steps, loss ")
