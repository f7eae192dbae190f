"""examples/differentiable: the showcases' operators pass gradients, and the scripts run."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree
from PIL import Image

from datarax.dag.nodes import OperatorNode

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "differentiable"


@pytest.fixture(scope="module")
def augmentation():
    return runpy.run_path(str(EXAMPLES / "learned_augmentation.py"))


def policy_transform(la, hard: bool, records: int):
    train, _, _ = la["splits"](0, records)
    ops = la["learnable_policy"](0, hard=hard)
    reader = la["pipeline"](train, [], 1)
    return (reader >> OperatorNode(ops[0]) >> OperatorNode(ops[1])).transform(), train


@pytest.mark.slow
def test_gradients_reach_every_parameter_of_the_searched_policy(augmentation):
    transform, train = policy_transform(augmentation, hard=True, records=400)
    ids = np.arange(400)
    weights = jnp.asarray(np.random.default_rng(0).normal(size=train["image"].shape))

    def loss(t):
        return jnp.sum(t(transform.records(ids), ids)["image"] * weights)

    grads = nnx.to_flat_state(nnx.state(nnx.grad(loss)(transform), nnx.Param))
    # Per stage: the choice weights, 11 application chances and the magnitudes
    # (six for each of the five affine candidates, one for five others).
    assert len(grads) == 2 * (1 + 11 + 5 * 6 + 5)
    for path, g in grads:
        assert np.all(np.isfinite(g[...])) and np.any(g[...] != 0), path


@pytest.mark.slow
def test_policy_gradients_equal_finite_differences_on_the_relaxation(augmentation):
    transform, train = policy_transform(augmentation, hard=False, records=16)
    graphdef, params, rest = nnx.split(transform, nnx.Param, ...)
    ids = np.arange(16)
    records = transform.records(ids)
    weights = jnp.asarray(np.random.default_rng(1).normal(size=train["image"].shape))
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def loss(vector):
        return jnp.sum(nnx.merge(graphdef, unravel(vector), rest)(records, ids)["image"] * weights)

    analytic = np.asarray(jax.grad(loss)(flat))
    picked = np.random.default_rng(2).choice(flat.size, 12, replace=False)
    eps = 2e-3
    for i in picked:
        step = jnp.zeros_like(flat).at[i].set(eps)
        numeric = (float(loss(flat + step)) - float(loss(flat - step))) / (2 * eps)
        assert analytic[i] == pytest.approx(numeric, rel=0.05, abs=0.02), i


@pytest.mark.slow
def test_the_quick_search_runs_and_writes_its_table_and_figure(augmentation, tmp_path):
    (result,) = augmentation["main"](["--quick", "--out", str(tmp_path)])
    assert set(result.accuracy) == {"none", "RandAugment", "learned"}
    assert all(0.5 < a <= 1.0 for a in result.accuracy.values())
    assert result.usage.shape == (11,) and 0 < result.usage.sum() <= 1
    assert not np.allclose(result.usage, 0.5 / 11)  # the search moved the policy
    text = (tmp_path / "learned_augmentation.md").read_text()
    assert "| learned |" in text and "| policy search (6 epochs) |" in text
    with Image.open(tmp_path / "learned_augmentation.png") as png:
        assert png.size[0] > 800 and len(np.unique(np.asarray(png.convert("L")))) > 20


def test_the_readme_claims_what_the_generated_table_shows():
    text = (EXAMPLES.parents[1] / "docs" / "differentiable" / "learned_augmentation.md").read_text()

    def row(name: str) -> list[str]:
        (line,) = [ln for ln in text.splitlines() if ln.startswith(f"| {name} |")]
        return [cell.strip() for cell in line.strip("|").split("|")]

    def mean_std(cell: str) -> tuple[float, float]:
        mean, std = cell.split(" ± ")
        return float(mean), float(std)

    none, learned = mean_std(row("none")[1]), mean_std(row("learned")[1])
    assert learned[0] > none[0]
    assert mean_std(row("learned")[2])[0] > 0  # paired gain over no augmentation
    paired = re.search(r"Learned minus RandAugment, paired by seed: (\S+) ± (\S+) points", text)
    assert paired is not None and abs(float(paired.group(1))) <= float(paired.group(2))
    search = float(row("policy search (60 epochs)")[2])
    training = float(row("training with learned (300 epochs)")[2])
    assert search < training
    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    assert "docs/differentiable/learned_augmentation.md" in readme


@pytest.fixture(scope="module")
def ddsp():
    return runpy.run_path(str(EXAMPLES / "ddsp_audio.py"))


def test_ddsp_operators_render_the_iterated_batches_bit_for_bit(ddsp):
    controls = ddsp["notes"](12, 0)
    ops = ddsp["synth"](7, ddsp["room"](1, 0.03, 0.05), True)
    pipeline = ddsp["synth_pipeline"](controls, ops)
    transform = pipeline.transform()
    apply = nnx.jit(lambda t, records, ids: t(records, ids))
    for batch in pipeline:
        out = apply(transform, transform.records(batch.record_ids), batch.record_ids)
        np.testing.assert_array_equal(np.asarray(out["audio"]), np.asarray(batch["audio"]))


@pytest.mark.slow
def test_ddsp_gradients_reach_the_impulse_response_and_the_controls(ddsp):
    controls = ddsp["notes"](4, 0)
    ops = ddsp["synth"](7, ddsp["room"](1, 0.03, 0.05), True)
    transform = ddsp["synth_pipeline"](controls, ops).transform()
    ids = np.arange(4)
    weights = jnp.asarray(np.random.default_rng(0).normal(size=(4, ddsp["SAMPLES"])))
    graphdef, params, rest = nnx.split(transform, nnx.Param, ...)
    fields = {k: jnp.asarray(v) for k, v in controls.items()}
    flat, unravel = ravel_pytree((params, fields["harmonics"], fields["noise"]))

    @jax.jit
    def loss(vector):
        p, harmonics, noise = unravel(vector)
        records = {"f0": fields["f0"], "harmonics": harmonics, "noise": noise}
        return jnp.sum(nnx.merge(graphdef, p, rest)(records, ids)["audio"] * weights)

    analytic = np.asarray(jax.grad(loss)(flat))
    sizes = [400, 4 * 10 * 16, 4 * 10 * 16]  # impulse response, harmonics, noise levels
    starts = np.cumsum([0, *sizes])
    rng = np.random.default_rng(1)
    for start, size in zip(starts, sizes, strict=False):
        part = analytic[start : start + size]
        assert np.count_nonzero(part) > 0.9 * size
        for i in start + rng.choice(size, 4, replace=False):
            eps = 1e-3
            step = jnp.zeros_like(flat).at[i].set(eps)
            numeric = (float(loss(flat + step)) - float(loss(flat - step))) / (2 * eps)
            assert analytic[i] == pytest.approx(numeric, rel=0.02, abs=0.05), i


@pytest.mark.slow
def test_the_quick_ddsp_run_writes_its_table_and_figure(ddsp, tmp_path):
    (result,) = ddsp["main"](["--quick", "--out", str(tmp_path)])
    assert set(result.ddsp) == set(result.baseline) == {8, 32}
    for size in (8, 32):
        assert np.isfinite(result.ddsp[size].loss) and np.isfinite(result.baseline[size].loss)
        assert 0 <= result.ddsp[size].recovery <= 2
    text = (tmp_path / "ddsp_audio.md").read_text()
    assert "| 32 |" in text and "Training notes needed" in text
    with Image.open(tmp_path / "ddsp_audio.png") as png:
        assert png.size[0] > 1000 and len(np.unique(np.asarray(png.convert("L")))) > 20


def test_the_readme_ddsp_claim_is_what_the_generated_table_shows():
    text = (EXAMPLES.parents[1] / "docs" / "differentiable" / "ddsp_audio.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0].isdigit():
            rows[int(cells[0])] = [float(c.split(" ± ")[0]) for c in cells[1:]]
    assert rows[8][0] < rows[128][1]  # DDSP with 8 notes below the decoder with 128
    assert rows[128][2] < rows[8][2]  # harmonic-spectrum error falls with more notes
    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    assert "docs/differentiable/ddsp_audio.md" in readme
