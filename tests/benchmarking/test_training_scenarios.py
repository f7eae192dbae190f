"""The training scenarios (T16, T256, TCNN): every system trains the same model on the
same records, and the result rows carry steps/s, the wait ratio and the first step.

The loops run at the smoke size in this process (no timing is asserted). The fused
system is skipped until ``datarax.training`` exists.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import optax
import pytest

from datarax.benchmarking.adapters import SYSTEMS, BuildContext
from datarax.benchmarking.goals import GOALS, check_goals
from datarax.benchmarking.profiles import PROFILES
from datarax.benchmarking.results import check_results, markdown
from datarax.benchmarking.runner import measure, sized
from datarax.benchmarking.scenarios import SCENARIOS, TRAINING_SYSTEMS, stats_for
from datarax.benchmarking.suite import plan, select_scenarios, select_systems
from datarax.benchmarking.training import make_model

TRAINING = ("T16", "T256", "TCNN")
#: Systems whose loops run here (``torch-2w`` starts worker processes: ``full`` only).
LOOPS = ("datarax", "datarax-fused", "grain", "torch", "tfdata")


def _loop(scenario_name, system_name, tmp_path, **sizes):
    """``(scenario, data, loop)`` of a system at the smoke size (or ``sizes``)."""
    scenario = sized(SCENARIOS[scenario_name], PROFILES["smoke"])
    scenario = dataclasses.replace(scenario, **sizes)
    system = SYSTEMS[system_name]
    for module in system.requires:  # the benchmark extra may not be installed
        pytest.importorskip(module)
    if system_name == "datarax-fused":
        pytest.importorskip("datarax.training")
    data = scenario.make_data(scenario.records)
    context = BuildContext(data, stats_for(scenario, data), tmp_path, dict(system.options))
    return scenario, data, system.build_training(scenario, context)


def _first_loss_bounds(model_name, data, batch_size):
    """Bounds of the first step's loss on W1's first batch: each record is flipped or
    not, so its loss is one of two values; the batch's is their mean."""
    model, _ = make_model(model_name)
    image = data["image"][:batch_size] / np.float32(255.0)
    label = data["label"][:batch_size]
    plain = optax.softmax_cross_entropy_with_integer_labels(model(image), label)
    flipped = optax.softmax_cross_entropy_with_integer_labels(model(image[:, :, ::-1]), label)
    both = np.stack([np.asarray(plain), np.asarray(flipped)])
    return float(both.min(0).mean()), float(both.max(0).mean())


def test_the_training_scenarios_have_their_systems_in_every_profile():
    for name in ("ci_cpu", "full"):
        profile = PROFILES[name]
        specs = plan(profile, select_systems(profile, None), list(TRAINING), 3)
        for scenario in TRAINING:
            systems = [s.system for s in specs if s.scenario == scenario]
            expected = [s for s in profile.systems if s in TRAINING_SYSTEMS]
            assert systems == expected
            assert {"datarax", "datarax-fused", "grain", "torch", "tfdata"} <= set(systems)
    # A plain run includes them; the loader scenarios keep their systems.
    assert set(TRAINING) <= set(select_scenarios(None))
    profile = PROFILES["ci_cpu"]
    w1 = [s.system for s in plan(profile, select_systems(profile, None), ["W1"], 1)]
    assert w1 == ["numpy", "jax", "datarax", "grain", "torch", "tfdata", "hf"]
    for scenario in TRAINING:
        smoke = PROFILES["smoke"].records_for(SCENARIOS[scenario])
        assert smoke < profile.records_for(SCENARIOS[scenario]) <= SCENARIOS[scenario].records


def test_the_scenarios_drop_short_batches_and_count_their_steps():
    t16, tcnn = SCENARIOS["T16"], SCENARIOS["TCNN"]
    assert (t16.steps_per_epoch, t16.epochs_per_pass, t16.batch_size) == (31, 10, 32)
    assert (tcnn.steps_per_epoch, tcnn.work, tcnn.shuffle) == (195, "W2", True)
    assert SCENARIOS["W1"].steps_per_epoch == 32  # loader scenarios keep their last batch


@pytest.mark.parametrize("system", ["datarax", "datarax-fused"])
def test_datarax_loops_train_on_the_first_batch_with_the_shared_model(system, tmp_path):
    scenario, data, loop = _loop("T16", system, tmp_path)
    cold = loop.run_pass(first=True)
    steps = scenario.steps_per_epoch * scenario.epochs_per_pass
    assert cold.steps == steps and cold.losses.shape == (steps,)
    assert cold.first_step_at is not None and 0 <= cold.wait_s <= cold.wall_s
    lower, upper = _first_loss_bounds("mlp16", data, scenario.batch_size)
    assert lower - 1e-5 <= cold.losses[0] <= upper + 1e-5
    timed = loop.run_pass()
    assert timed.steps == steps and timed.first_step_at is None
    assert np.isfinite(timed.losses).all()


def test_the_fused_loop_sees_the_per_batch_loop_s_batches(tmp_path):
    pytest.importorskip("datarax.training")
    _, _, per_batch = _loop("T16", "datarax", tmp_path)
    _, _, fused = _loop("T16", "datarax-fused", tmp_path)
    for first in (True, False):  # two passes: the second continues with the next epochs
        a, b = per_batch.run_pass(first), fused.run_pass(first)
        np.testing.assert_allclose(a.losses, b.losses, rtol=2e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("system", LOOPS)
def test_every_system_trains_the_same_mlp_on_w1_s_first_batch(system, tmp_path):
    scenario, data, loop = _loop("T256", system, tmp_path)
    cold = loop.run_pass(first=True)
    lower, upper = _first_loss_bounds("mlp256", data, scenario.batch_size)
    assert lower - 1e-5 <= cold.losses[0] <= upper + 1e-5
    losses = [cold.losses] + [loop.run_pass().losses for _ in range(4)]
    assert all(np.isfinite(pass_losses).all() for pass_losses in losses)
    # 40 Adam steps over 128 records: the wide MLP starts to fit them.
    assert losses[-1].mean() < losses[0].mean()


@pytest.mark.slow
@pytest.mark.parametrize("system", LOOPS)
def test_every_system_trains_the_cnn_on_w2(system, tmp_path):
    scenario, _, loop = _loop("TCNN", system, tmp_path)
    cold = loop.run_pass(first=True)
    assert cold.steps == scenario.steps_per_epoch == 2
    assert np.isfinite(cold.losses).all() and 1.0 < cold.losses[0] < 5.0


@pytest.mark.slow
@pytest.mark.parametrize("system", LOOPS)
def test_the_result_row_carries_the_training_figures(system, tmp_path):
    system_ = SYSTEMS[system]
    for module in system_.requires:
        pytest.importorskip(module)
    if system == "datarax-fused":
        pytest.importorskip("datarax.training")
    scenario = sized(SCENARIOS["T16"], PROFILES["smoke"])
    row = measure(scenario, system_, 2)
    steps = row["steps_per_s"]
    assert 0 < steps["min"] <= steps["median"] <= steps["max"]
    assert row["elements_per_s"]["median"] == pytest.approx(steps["median"] * 32)
    assert 0.0 <= row["wait_ratio"]["min"] <= row["wait_ratio"]["max"] <= 1.0
    assert row["first_step_s"] > 0 and row["steps_per_pass"] == 8
    assert np.isfinite([row["loss_first"], row["loss_last"]]).all()
    assert row["peak_rss_mib"] > 50 and row["cpu_percent"] >= 0
    if "step_compiles" in row:  # the per-batch loops compile their step once
        assert row["step_compiles"] == 1


def _row(scenario, system, steps, first=1.0, wait=0.1, batch=32):
    spread = {"median": steps, "min": steps * 0.9, "max": steps * 1.1}
    return {
        "scenario": scenario,
        "framework": system,
        "status": "ok",
        "reason": None,
        "elements_per_s": {k: v * batch for k, v in spread.items()},
        "steps_per_s": spread,
        "wait_ratio": {"median": wait, "min": wait, "max": wait},
        "first_step_s": first,
        "peak_rss_mib": 400.0,
        "cpu_percent": 120.0,
    }


def _results(rows, scenarios=("W1", *TRAINING)):
    described = {
        name: {"title": SCENARIOS[name].title, "records": 1000, "batch_size": 32}
        | ({"family": "training"} if SCENARIOS[name].family == "training" else {})
        for name in scenarios
    }
    return {
        "schema": "datarax-bench/1",
        "profile": "ci_cpu",
        "repetitions": 3,
        "wall_s": 1.0,
        "machine": {"processor": "x", "cpu_count": 2, "platform": "p", "python": "3",
                    "jax_backend": "cpu"},
        "frameworks": {},
        "systems": ["numpy", "datarax", "datarax-fused", "grain", "torch", "tfdata"],
        "scenarios": described,
        "results": rows,
    }  # fmt: skip


CRAFTED = _results(
    [
        {**_row("W1", "numpy", 0), "elements_per_s": {"median": 1e6, "min": 1e6, "max": 1e6},
         "ttfb_s": 0.01},
        {**_row("W1", "datarax", 0), "elements_per_s": {"median": 5e5, "min": 5e5, "max": 5e5},
         "ttfb_s": 0.1},
        _row("T16", "datarax", 3000.0, first=3.0, wait=0.3),
        _row("T16", "datarax-fused", 5000.0, first=1.2),
        _row("T16", "torch", 2500.0, first=1.0),
        _row("T16", "grain", 900.0, first=0.5),
        _row("T256", "datarax", 1100.0),
        {"scenario": "T256", "framework": "datarax-fused", "status": "failed", "reason": "boom"},
        _row("T256", "torch", 1000.0),
        _row("TCNN", "datarax", 9.0, wait=0.01, batch=256),
        _row("TCNN", "tfdata", 10.0, batch=256),
    ]
)  # fmt: skip


def test_the_goals_are_checked_against_the_best_peer_of_the_run():
    checks = {(c.goal.scenario, c.goal.system, c.goal.measure, c.goal.against): c
              for c in check_goals(CRAFTED)}  # fmt: skip
    assert len(checks) == len(GOALS)
    fused = checks[("T16", "datarax-fused", "steps", "best peer")]
    assert fused.compared_with == "torch" and fused.value == pytest.approx(2.0)
    assert fused.verdict == "met"
    per_batch = checks[("T16", "datarax-fused", "steps", "datarax")]
    assert per_batch.value == pytest.approx(5000 / 3000) and per_batch.verdict == "met"
    # The best peer is the fastest one (torch), not the one that starts first (grain).
    first = checks[("T16", "datarax-fused", "first_step", "best peer")]
    assert first.value == pytest.approx(1.2) and first.verdict == "met"
    assert checks[("T256", "datarax", "steps", "best peer")].verdict == "met"
    assert checks[("T256", "datarax-fused", "steps", "best peer")].verdict == "not measured"
    assert checks[("TCNN", "datarax", "steps", "best peer")].verdict == "NOT met"
    wait = checks[("TCNN", "datarax", "wait", "best peer")]
    assert wait.value == pytest.approx(0.01) and wait.verdict == "met"


def test_the_markdown_has_a_training_table_with_wait_ratio_first_step_and_goals():
    check_results(CRAFTED)
    text = markdown(CRAFTED)
    lines = text.splitlines()
    loader = next(line for line in lines if line.startswith("| scenario | numpy |"))
    assert "| T16 |" not in "\n".join(lines[: lines.index(loader) + 4])
    header = next(line for line in lines if line.startswith("| scenario | datarax | datarax-f"))
    assert header.endswith("| datarax / best peer | datarax-fused / best peer |")
    t16 = next(line for line in lines if line.startswith("| T16 | 3.00 K"))
    assert t16.endswith("| 1.20x (torch) | 2.00x (torch) |")
    assert "| T256 | 1.10 K | failed | " in text
    assert "| T16 | datarax | 3.00 K | 2.70 K | 3.30 K | 96.0 K | 30.0% | 3.000 |" in text
    assert "- T16 datarax-fused steps/s >= 1.8x best peer: 2.00x torch, met" in text
    assert "- TCNN datarax wait ratio < 5%: 1.0%, met" in text
    assert "- T256 datarax-fused steps/s >= 1x best peer: not measured" in text
    assert "- T256 / datarax-fused: failed, boom" in text


def test_a_training_row_without_its_figures_is_not_a_results_file():
    from datarax.benchmarking.errors import ResultsFileError

    broken = json.loads(json.dumps(CRAFTED))
    del broken["results"][2]["wait_ratio"]
    with pytest.raises(ResultsFileError, match=r"results\[2\]: missing training figures"):
        check_results(broken)


@pytest.mark.slow
def test_datarax_bench_runs_the_training_scenarios_end_to_end(tmp_path):
    from datarax.benchmarking.cli import main

    peers = [n for n, m in (("grain", "grain"), ("torch", "torch")) if importlib.util.find_spec(m)]
    status = main(
        ["run", "--platform", "cpu", "--profile", "smoke", "--repetitions", "1",
         "--frameworks", "datarax", *peers, "--scenarios", "T16",
         "--output", str(tmp_path), "--no-progress"]
    )  # fmt: skip
    assert status == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["scenarios"]["T16"]["family"] == "training"
    assert results["scenarios"]["T16"]["steps_per_pass"] == 8
    rows = {r["framework"]: r for r in results["results"]}
    expected = {"datarax", "datarax-fused", *peers}
    assert set(rows) == expected
    for name, row in rows.items():
        if name == "datarax-fused" and importlib.util.find_spec("datarax.training") is None:
            assert row["status"] == "skipped" and "datarax.training" in row["reason"]
            continue
        assert row["status"] == "ok", (name, row.get("reason"))
        assert 0.0 <= row["wait_ratio"]["median"] <= 1.0 and row["first_step_s"] > 0
    table = (tmp_path / "results.md").read_text()
    assert "| scenario | system | steps/s |" in table and "wait ratio" in table
    assert "- T16 datarax-fused steps/s >= 1.8x best peer: " in table
