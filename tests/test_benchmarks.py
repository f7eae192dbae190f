"""The benchmark suite runs: every system produces a full pass of W1 with the same work."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.run import measure
from benchmarks.systems import SYSTEMS
from benchmarks.workloads import WORKLOADS


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_each_system_runs_a_full_w1_pass(system):
    result = measure("W1", system, repetitions=1)
    assert result["elements_per_pass"] == 10_000  # 10 epochs of 1000 records
    assert result["elements_per_s"] > 0 and result["ttfb_s"] > 0


def test_systems_agree_on_the_deterministic_part_of_w2():
    w = WORKLOADS["W2"]
    data = {k: v[:512] for k, v in w.make_data().items()}
    from benchmarks.workloads import stats_for

    stats = stats_for(w, data)
    batch = next(iter(SYSTEMS["numpy"](w, data, stats)()))
    image = np.asarray(batch["image"])
    assert image.shape == (256, 32, 32, 3) and image.dtype == np.float32
    # Normalised pixels have zero mean and unit spread over the dataset (padding aside).
    assert abs(float(image.mean())) < 0.1 and 0.7 < float(image.std()) < 1.1


@pytest.mark.parametrize("workload", ["D1", "D100", "DAG"])
def test_dag_workloads_run_a_full_pass(workload):
    result = measure(workload, "datarax", repetitions=1)
    assert result["elements_per_pass"] == 10_000


def test_the_depth_chain_equals_its_numpy_reference():
    w = WORKLOADS["D100"]
    data = {k: v[:64] for k, v in w.make_data().items()}
    data["score"] = np.linspace(-1, 1, 64, dtype=np.float32)
    ours = next(iter(SYSTEMS["datarax"](w, data, None)()))
    ref = next(iter(SYSTEMS["numpy"](w, {k: v[:32] for k, v in data.items()}, None)()))
    np.testing.assert_allclose(ours["score"], ref["score"], rtol=1e-5)


def test_the_advanced_dag_workload_matches_its_references_up_to_the_flips():
    w = WORKLOADS["DAG"]
    data = {k: v[:32] for k, v in w.make_data().items()}
    x = data["image"]
    mean = (x / np.float32(255) + (1 - x)) / np.float32(2)
    for system in ("datarax", "jax", "numpy"):
        image = np.asarray(next(iter(SYSTEMS[system](w, dict(data), None)()))["image"])
        flipped = np.array(
            [np.allclose(img, m[:, ::-1], rtol=1e-5) for img, m in zip(image, mean, strict=True)]
        )
        plain = np.array(
            [np.allclose(img, m, rtol=1e-5) for img, m in zip(image, mean, strict=True)]
        )
        assert (flipped | plain).all(), system
        assert 0 < flipped.sum() < 32, system


@pytest.mark.slow
def test_the_soak_loses_and_duplicates_nothing_in_a_short_run():
    from benchmarks.soak import failed, soak

    report = soak(minutes=10, seed=1, records=200, max_steps=120)
    assert report["steps"] == 120 and report["epochs_completed"] >= 10
    assert report["records_lost"] == report["records_duplicated"] == 0
    assert report["wrong_values"] == report["state_mismatches"] == 0
    assert not failed(report)


def test_the_soak_tally_finds_lost_and_duplicated_records_and_keeps_two_epochs():
    from benchmarks.soak import EpochTally

    tally = EpochTally(4)
    tally.add(np.zeros(3, np.int64), np.array([0, 1, 1]))  # epoch 0: 1 twice, 2 and 3 lost
    tally.add(np.array([0, 1, 1]), np.array([3, 0, 1]))  # the batch crossing into epoch 1
    tally.add(np.full(2, 1), np.array([2, 3]))
    assert sorted(tally.open) == [0, 1] and tally.completed == 0
    tally.add(np.full(2, 2), np.array([0, 0]))  # epoch 0 is folded once epoch 2 begins
    assert sorted(tally.open) == [1, 2]
    assert (tally.completed, tally.lost, tally.duplicated) == (1, 1, 1)
    tally.finish()  # epoch 1 complete; epoch 2 in progress has one duplicate
    assert (tally.completed, tally.lost, tally.duplicated) == (2, 1, 2)
