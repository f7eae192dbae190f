"""Choosing frameworks: a missing one named on the command line is an error naming the
extra; with the default list it becomes a skipped row with its reason."""

from __future__ import annotations

import importlib.util

import pytest

from datarax.benchmarking import MissingFrameworkError
from datarax.benchmarking.adapters import SYSTEMS
from datarax.benchmarking.cli import main
from datarax.benchmarking.errors import BenchmarkError
from datarax.benchmarking.profiles import PROFILES
from datarax.benchmarking.runner import RunSpec, run_pairs
from datarax.benchmarking.suite import plan, select_scenarios, select_systems


@pytest.fixture
def without_grain(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "grain" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_naming_a_missing_framework_fails_with_the_extra(without_grain, capsys):
    with pytest.raises(MissingFrameworkError) as info:
        select_systems(PROFILES["ci_cpu"], ["grain"])
    assert "datarax[bench]" in str(info.value) and "'grain' is not installed" in str(info.value)
    status = main(["run", "--profile", "smoke", "--frameworks", "grain", "--no-progress"])
    assert status == 2
    err = capsys.readouterr().err
    assert "datarax-bench --frameworks grain: framework 'grain' is not available" in err
    assert "pip install 'datarax[bench]'" in err


def test_a_missing_framework_in_the_default_list_is_a_skipped_row(without_grain):
    systems = select_systems(PROFILES["smoke"], None)
    assert "grain" in [s.name for s in systems]
    spec = RunSpec("W1", "grain", 64, 1, 1)
    assert run_pairs([spec], "cpu", 60) == [
        {"scenario": "W1", "framework": "grain", "status": "skipped",
         "reason": "module 'grain' is not installed"}
    ]  # fmt: skip


def test_frameworks_without_an_array_record_reader_skip_ar_with_a_reason():
    specs = [RunSpec("AR", name, 64, 1, 1) for name in ("tfdata", "hf")]
    rows = run_pairs(specs, "cpu", 60)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert [r["reason"] for r in rows] == [
        "tf.data has no ArrayRecord reader",
        "HF datasets has no ArrayRecord reader",
    ]
    assert all(SYSTEMS[r["framework"]].role == "peer" for r in rows)


def test_a_framework_selects_its_systems_and_unknown_names_fail():
    assert [s.name for s in select_systems(PROFILES["full"], ["torch"])] == ["torch", "torch-2w"]
    assert [s.name for s in select_systems(PROFILES["ci_cpu"], ["torch-2w"])] == ["torch-2w"]
    with pytest.raises(BenchmarkError, match="unknown framework; expected one of"):
        select_systems(PROFILES["ci_cpu"], ["dali"])
    with pytest.raises(BenchmarkError, match="unknown scenario"):
        select_scenarios(["W9"])


def test_the_plan_gives_numpy_loop_only_w4_and_keeps_profile_sizes():
    systems = select_systems(PROFILES["ci_cpu"], ["numpy"])
    specs = plan(PROFILES["ci_cpu"], systems, ["W3", "W4"], 5)
    assert specs == [
        RunSpec("W3", "numpy", PROFILES["ci_cpu"].records["W3"], 1, 5),
        RunSpec("W4", "numpy", 20_000, 1, 5),
        RunSpec("W4", "numpy-loop", 20_000, 1, 5),
    ]


def test_gpu_without_a_gpu_is_a_clear_error(capsys):
    from jax import devices

    if any(d.platform == "gpu" for d in devices()):
        pytest.skip("this machine has a GPU")
    status = main(["run", "--platform", "gpu", "--frameworks", "numpy", "--scenarios", "W1",
                   "--profile", "smoke", "--no-progress"])  # fmt: skip
    assert status == 2
    assert "JAX cannot use the gpu platform" in capsys.readouterr().err
