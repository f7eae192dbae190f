"""The ``datarax`` command line, its progress bar and the synthetic dataset."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import datarax
from datarax.cli.main import main, run_demo
from datarax.core.errors import ConfigError
from datarax.core.progress import ProgressBar
from datarax.sources import synthetic_images


def _summary(text: str) -> dict[str, str]:
    """The ``name: value`` lines of the demo's report."""
    lines = (line.partition(": ") for line in text.splitlines())
    return {name: value for name, sep, value in lines if sep}


def _numbers(value: str) -> list[float]:
    return [
        float(word.rstrip(",;"))
        for word in value.replace("(", " ").split()
        if word.rstrip(",;").replace(".", "", 1).isdigit()
    ]


# -- demo --------------------------------------------------------------------------------
def test_demo_reports_the_run(capsys):
    code = main(
        ["demo", "--records", "512", "--batch-size", "64", "--epochs", "2", "--no-progress"]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    summary = _summary(out)
    assert out.startswith("datarax demo: 512 synthetic images 28x28x1, batch size 64, 2 epochs")
    assert summary["records processed"] == "1024"
    assert summary["batches processed"] == "16"
    assert summary["epochs"] == "2"
    elapsed = float(summary["elapsed"].removesuffix(" s"))
    first = float(summary["time to first batch"].removesuffix(" s"))
    assert 0 < first <= elapsed
    assert summary["throughput"].endswith(" elements/s (whole run, compilation included)")
    assert float(summary["throughput"].split()[0]) > 0
    assert float(summary["throughput after the first epoch"].split()[0]) > 0

    low, high, mean = _numbers(summary["output images"])
    assert 0.0 <= low <= mean <= high <= 1.0

    fraction, flipped, told_apart, symmetric, mismatched = _numbers(
        summary["flipped in last epoch"]
    )
    assert 0.3 <= fraction <= 0.7
    assert told_apart + symmetric == 512 and mismatched == 0
    assert fraction == pytest.approx(flipped / told_apart, abs=1e-4)

    state = json.loads(summary["iterator state"])
    assert state["format"] == "datarax.pipeline_iterator"
    assert (state["first_epoch"], state["epoch"], state["position"]) == (0, 2, 0)


def test_run_demo_with_a_short_last_batch():
    result = run_demo(records=100, batch_size=48, epochs=2, seed=3, progress=False)
    assert result.ok
    assert result.records_processed == 200
    assert result.batches_processed == 6  # 48 + 48 + 4 per epoch
    assert result.check.flipped + result.check.kept + result.check.symmetric == 100
    assert result.state["epoch"] == 2 and result.state["position"] == 0


def test_demo_flips_depend_on_the_seed():
    a = run_demo(records=64, batch_size=64, epochs=1, seed=1, progress=False)
    b = run_demo(records=64, batch_size=64, epochs=1, seed=1, progress=False)
    assert (a.check.flipped, a.check.kept) == (b.check.flipped, b.check.kept)
    assert a.check.mean == b.check.mean


def test_module_entry_point_runs_the_demo():
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "datarax",
            "demo",
            "--records",
            "256",
            "--batch-size",
            "32",
            "--epochs",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "records processed: 256" in proc.stdout
    assert "batches processed: 8" in proc.stdout
    # stderr is a pipe, so the progress bar prints whole lines, the last at 100%.
    progress = [line for line in proc.stderr.splitlines() if line.startswith("demo [")]
    assert progress and "256/256 100%" in progress[-1]
    assert "\r" not in proc.stderr


# -- other commands ----------------------------------------------------------------------
def test_version_prints_the_versions(capsys):
    assert main(["version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"datarax {datarax.__version__}"
    assert [line.split()[0] for line in lines[1:]] == ["jax", "flax", "numpy", "platform"]


def test_version_flag(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"datarax {datarax.__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: datarax") and "demo" in out and "version" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--records", "0"],
        ["demo", "--batch-size", "x"],
        ["demo", "--seed", "-1"],
        ["nonsense"],
    ],
)
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    assert main(argv) == 2
    assert "usage: datarax" in capsys.readouterr().err


# -- synthetic_images ----------------------------------------------------------------------
def test_synthetic_images_is_deterministic():
    a, b = synthetic_images(200, seed=7), synthetic_images(200, seed=7)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
    c = synthetic_images(200, seed=8)
    assert not np.array_equal(a["image"], c["image"])


@pytest.mark.parametrize(("shape", "classes"), [((28, 28, 1), 10), ((16, 20, 3), 4), ((12, 9), 2)])
def test_synthetic_images_shape_dtype_and_range(shape, classes):
    data = synthetic_images(50, seed=1, image_shape=shape, num_classes=classes)
    assert set(data) == {"image", "label"}
    assert data["image"].shape == (50, *shape) and data["image"].dtype == np.float32
    assert data["label"].shape == (50,) and data["label"].dtype == np.int32
    assert data["image"].min() >= 0.0 and data["image"].max() <= 255.0
    assert data["label"].min() >= 0 and data["label"].max() < classes


def test_synthetic_images_depend_on_the_label():
    data = synthetic_images(2000, seed=0)
    images, labels = data["image"][..., 0], data["label"]
    assert set(np.unique(labels)) == set(range(10))
    means = np.stack([images[labels == c].mean(axis=0) for c in range(10)])
    distances = np.sqrt(((means[:, None] - means[None]) ** 2).sum(axis=(2, 3)))
    off_diagonal = distances[~np.eye(10, dtype=bool)]
    assert off_diagonal.min() > 10 * 255 / 28  # far apart compared with pixel scale
    # The brightest pixel of each class's mean image sits somewhere else.
    peaks = {np.unravel_index(m.argmax(), m.shape) for m in means}
    assert len(peaks) == 10
    # No image is its own mirror image, so a horizontal flip is always visible.
    assert not np.any(np.all(images == images[:, :, ::-1], axis=(1, 2)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_records": 0},
        {"num_records": 2.5},
        {"num_classes": 0},
        {"seed": -1},
        {"image_shape": (28,)},
        {"image_shape": (28, 0, 1)},
        {"image_shape": 28},
    ],
)
def test_synthetic_images_rejects_bad_arguments(kwargs):
    with pytest.raises(ConfigError, match="synthetic_images"):
        synthetic_images(**kwargs)


# -- progress bar ------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_prints_a_line_per_tenth_without_a_terminal():
    out, clock = io.StringIO(), FakeClock()
    with ProgressBar(1000, desc="demo", stream=out, clock=clock) as bar:
        assert not bar.tty  # a StringIO is not a terminal
        for _ in range(40):
            clock.now += 0.5
            bar.update(25)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10
    assert [line.split()[3] for line in lines] == [f"{p}%" for p in range(10, 101, 10)]
    assert lines[0] == (
        "demo [##......................] 100/1000  10% | 50 elements/s | 2.0s elapsed"
    )
    assert lines[-1] == (
        "demo [########################] 1000/1000 100% | 50 elements/s | 20.0s elapsed"
    )
    assert bar.count == 1000 and bar.rate == 50.0


def test_progress_without_a_terminal_prints_the_final_count():
    out = io.StringIO()
    with ProgressBar(1000, stream=out, tty=False, clock=FakeClock()) as bar:
        bar.update(150)  # past 10%: printed
        bar.update(40)  # still short of 20%: printed only when the bar closes
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["150/1000", "190/1000"]
    out = io.StringIO()
    with ProgressBar(10, stream=out, tty=False, clock=FakeClock()) as bar:
        bar.update(3)
        bar.update(7)
    # The 100% line is not repeated on close.
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["3/10", "10/10"]


def test_progress_redraws_in_place_on_a_terminal():
    out, clock = io.StringIO(), FakeClock()
    with ProgressBar(4, stream=out, tty=True, unit="records", clock=clock) as bar:
        for _ in range(4):
            clock.now += 1.0
            bar.update(1)
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    frames = text.rstrip("\n").split("\r")[1:]
    assert len(frames) == 5  # four updates and the final redraw
    assert frames[-1] == "[########################] 4/4 100% | 1 records/s | 4.0s elapsed"


def test_progress_disabled_or_without_total():
    out = io.StringIO()
    with ProgressBar(5, stream=out, enabled=False) as bar:
        bar.update(5)
    assert out.getvalue() == "" and bar.count == 5
    with ProgressBar(None, stream=out, tty=False, clock=FakeClock()) as bar:
        bar.update(7)
    assert out.getvalue() == "7 | 0 elements/s | 0.0s elapsed\n"
