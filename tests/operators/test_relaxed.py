"""RelaxedApply and RelaxedChoice: discrete decisions forward, gradients to their probabilities."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax.core.errors import ConfigError, PipelineBuildError
from datarax.operators.image import (
    Brightness,
    BrightnessConfig,
    Invert,
    InvertConfig,
    Solarize,
    SolarizeConfig,
)
from datarax.operators.relaxed import (
    RelaxedApply,
    RelaxedApplyConfig,
    RelaxedChoice,
    RelaxedChoiceConfig,
)

N = 4000


def run(op, images, ids=None, epoch=0, seed=0):
    ids = jnp.arange(images.shape[0], dtype=jnp.int32) if ids is None else jnp.asarray(ids)
    out, _ = op.apply_batch({"image": jnp.asarray(images)}, {}, ids, jnp.uint32(epoch), seed)
    return np.asarray(out["image"])


def images(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.1, 0.9, (n, 4, 4, 3)).astype(np.float32)


def gate(p=0.3, **kw):
    bright = Brightness(BrightnessConfig(factor=1.5, learnable=True))
    return RelaxedApply(RelaxedApplyConfig(probability=p, **kw), operator=bright, rngs=nnx.Rngs(0))


def choice(weights=(1.0, 2.0, 5.0), **kw):
    ops = [
        Brightness(BrightnessConfig(factor=1.3)),
        Invert(InvertConfig()),
        Solarize(SolarizeConfig(threshold=0.5)),
    ]
    return RelaxedChoice(
        RelaxedChoiceConfig(weights=weights, **kw), operators=ops, rngs=nnx.Rngs(1)
    )


@pytest.mark.parametrize("p", [0.1, 0.3, 0.8])
def test_hard_gate_applies_exactly_the_operator_on_a_share_p_of_the_records(p):
    op = gate(p)
    x = images(N)
    out = run(op, x)
    through = run(op.operator, x)
    applied = np.all(out == through, axis=(1, 2, 3))
    untouched = np.all(out == x, axis=(1, 2, 3))
    assert np.all(applied | untouched)  # every record is exactly one of the two
    # The discrete gate the operator reports is the one it used.
    ids = jnp.arange(N, dtype=jnp.int32)
    np.testing.assert_array_equal(np.asarray(op.gates(ids, jnp.uint32(0), 0)[0]), applied)
    assert abs(applied.mean() - p) < 4 * np.sqrt(p * (1 - p) / N)


def test_hard_choice_picks_each_operator_with_its_weight_share():
    op = choice()
    x = images(N)
    out = run(op, x)
    candidates = [run(o, x) for o in op.operators]
    ids = jnp.arange(N, dtype=jnp.int32)
    index = np.asarray(op.choices(ids, jnp.uint32(0), 0)[0])
    np.testing.assert_array_equal(out, np.stack(candidates)[index, np.arange(N)])
    shares = np.bincount(index, minlength=3) / N
    expected = np.array([1.0, 2.0, 5.0]) / 8.0
    assert np.all(np.abs(shares - expected) < 4 * np.sqrt(expected * (1 - expected) / N))
    np.testing.assert_allclose(np.asarray(op.weights()), expected, rtol=1e-6)


@settings(max_examples=10, deadline=None)
@given(st.permutations(list(range(12))), st.integers(0, 3), st.integers(0, 2**31 - 1))
def test_decisions_follow_the_record_not_its_position(order, epoch, seed):
    op = choice()
    x = images(12)
    ids = np.asarray(order)
    base = run(op, x, np.arange(12), epoch, seed)
    moved = run(op, x[ids], ids, epoch, seed)
    np.testing.assert_array_equal(moved, base[ids])


def test_soft_gate_gradient_equals_finite_differences():
    op = gate(0.4, hard=False, temperature=0.8)
    x = jnp.asarray(images(16))
    w = jnp.asarray(np.random.default_rng(2).normal(size=x.shape), jnp.float32)

    def loss(m):
        return jnp.sum(run_traced(m, x) * w)

    g = float(nnx.grad(loss)(op)["logit"][...])
    logit, eps = op.logit[...], 1e-3
    op.logit[...] = logit + eps
    up = float(loss(op))
    op.logit[...] = logit - eps
    down = float(loss(op))
    op.logit[...] = logit
    assert g == pytest.approx((up - down) / (2 * eps), rel=0.02)
    assert g != 0.0


def run_traced(op, x):
    ids = jnp.arange(x.shape[0], dtype=jnp.int32)
    return op.apply_batch({"image": x}, {}, ids, jnp.uint32(0), 0)[0]["image"]


def test_straight_through_gradients_are_those_of_the_relaxation():
    hard, soft = gate(0.4, temperature=0.5), gate(0.4, hard=False, temperature=0.5)
    x = jnp.asarray(images(16))
    ids = jnp.arange(16, dtype=jnp.int32)

    def grad_logit(op):
        return nnx.grad(lambda m: jnp.sum(run_traced(m, x)))(op)["logit"][...]

    # d/dlogit sum(x + m (op(x) - x)) = sum_r dm_r/dlogit * sum(op(x_r) - x_r), for both.
    _, m = hard.gates(ids, jnp.uint32(0), 0)
    dm = m * (1 - m) / 0.5
    diff = (run(hard.operator, np.asarray(x)) - np.asarray(x)).sum(axis=(1, 2, 3))
    expected = float(np.sum(np.asarray(dm) * diff))
    assert float(grad_logit(hard)) == pytest.approx(expected, rel=1e-4)
    assert float(grad_logit(soft)) == pytest.approx(expected, rel=1e-4)


def test_hard_choice_gradient_reaches_every_weight_and_the_chosen_magnitudes():
    ops = [Brightness(BrightnessConfig(factor=f, learnable=True)) for f in (0.7, 1.3)]
    op = RelaxedChoice(RelaxedChoiceConfig(), operators=ops, rngs=nnx.Rngs(3))
    x = jnp.asarray(images(32))
    grads = nnx.grad(lambda m: jnp.sum(run_traced(m, x) ** 2))(op)
    assert np.all(np.asarray(grads["logits"][...]) != 0)
    for i in range(2):
        assert np.asarray(grads["operators"][i]["factor"][...])[0] != 0


def test_fixed_decisions_are_constants_not_parameters():
    op = gate(0.3, learnable=False)
    assert "logit" not in nnx.state(op, nnx.Param)
    assert float(op.probability()) == pytest.approx(0.3)
    op = choice(learnable=False)
    assert "logits" not in nnx.state(op, nnx.Param)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: RelaxedApplyConfig(probability=1.0),
            r"probability.*expected a number in \(0, 1\)",
        ),
        (lambda: RelaxedApplyConfig(probability=0.0), r"strictly between 0 and 1"),
        (lambda: RelaxedApplyConfig(temperature=0.0), r"RelaxedApplyConfig.temperature"),
        (lambda: RelaxedChoiceConfig(weights=(1.0, 0.0)), r"weights must be positive numbers"),
        (lambda: RelaxedChoiceConfig(temperature=-1.0), r"RelaxedChoiceConfig.temperature"),
    ],
)
def test_bad_configs_are_refused(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_bad_operators_are_refused():
    bright = Brightness(BrightnessConfig(factor=1.2))
    with pytest.raises(ConfigError, match=r"too few operators.*at least 2 operators, found 1"):
        RelaxedChoice(RelaxedChoiceConfig(), operators=[bright], rngs=nnx.Rngs(0))
    with pytest.raises(ConfigError, match=r"one weight per operator; expected 2 weights, found 3"):
        RelaxedChoice(
            RelaxedChoiceConfig(weights=(1.0, 1.0, 1.0)),
            operators=[bright, bright],
            rngs=nnx.Rngs(0),
        )
    with pytest.raises(ConfigError, match=r"must be a datarax operator"):
        RelaxedApply(RelaxedApplyConfig(), operator=lambda x: x, rngs=nnx.Rngs(0))


def test_candidates_of_other_shapes_are_refused():
    from datarax.operators.image import Resize, ResizeConfig

    op = RelaxedChoice(
        RelaxedChoiceConfig(),
        operators=[Brightness(BrightnessConfig(factor=1.2)), Resize(ResizeConfig(size=(2, 2)))],
        rngs=nnx.Rngs(0),
    )
    with pytest.raises(PipelineBuildError, match=r"paths produce different outputs"):
        run(op, images(4))
