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
