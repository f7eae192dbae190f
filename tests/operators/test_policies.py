"""Policies: ApplyWithProbability, ChooseOne, RandAugment and TrivialAugment.

Each record's output must be exactly the output its own choice gives: the choices
are recomputed from the policy's stream (``uniform(words[:, 0])``) and the candidate
outputs from the wrapped operators run alone on the same batch.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from in_pipeline import assert_operator_in_pipeline

from datarax.core.errors import ConfigError, OperatorError, PipelineBuildError, SchemaError
from datarax.operators.base import uniform
from datarax.operators.image.affine import Affine, AffineConfig, Rotate, RotateConfig
from datarax.operators.image.color import (
    Brightness,
    BrightnessConfig,
    Contrast,
    ContrastConfig,
    Saturation,
    SaturationConfig,
)
from datarax.operators.image.noise import (
    GaussianBlur,
    GaussianBlurConfig,
    GaussianNoise,
    GaussianNoiseConfig,
)
from datarax.operators.image.normalize import Normalize, NormalizeConfig
from datarax.operators.image.occlusion import PixelDropout, PixelDropoutConfig
from datarax.operators.image.tone import (
    AutoContrast,
    AutoContrastConfig,
    Equalize,
    EqualizeConfig,
    Posterize,
    PosterizeConfig,
    Solarize,
    SolarizeConfig,
)
from datarax.operators.policies import (
    SIGNED_OPS,
    ApplyWithProbability,
    ApplyWithProbabilityConfig,
    ChooseOne,
    ChooseOneConfig,
    RandAugment,
    RandAugmentConfig,
    TrivialAugment,
    TrivialAugmentConfig,
    pick,
    randaugment_magnitude,
)

pytestmark = pytest.mark.slow  # run by the separate slow step of .ci/run

EPOCH, SEED = 1, 7


@functools.partial(jax.jit, static_argnums=(0, 5))
def _run(graphdef, state, images, ids, epoch, seed):
    data, _ = nnx.merge(graphdef, state).apply_batch({"image": images}, {}, ids, epoch, seed)
    return data["image"]


def apply(op, images, ids):
    graphdef, state = nnx.split(op)
    args = (jnp.asarray(images), jnp.asarray(ids, jnp.int32), jnp.uint32(EPOCH), SEED)
    return np.asarray(_run(graphdef, state, *args))


@functools.partial(jax.jit, static_argnums=(0, 4))
def _words(graphdef, state, ids, epoch, seed):
    return nnx.merge(graphdef, state).random_words(ids, epoch, seed)


def choice_uniforms(op, ids):
    graphdef, state = nnx.split(op)
    words = _words(graphdef, state, jnp.asarray(ids, jnp.int32), jnp.uint32(EPOCH), SEED)
    return np.asarray(uniform(words[:, 0]))


def images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 0.9, shape).astype(np.float32)


def blur(sigma=1.0):
    return GaussianBlur(GaussianBlurConfig(kernel_size=3, sigma=sigma))


def noise(seed=0, stream=None):
    return GaussianNoise(GaussianNoiseConfig(sigma=0.1, stream_name=stream), rngs=nnx.Rngs(seed))


# -------------------------------------------------------------- ApplyWithProbability


@pytest.mark.parametrize("inner", ["deterministic", "stochastic"])
@pytest.mark.parametrize("dispatch", ["switch", "select"])
def test_apply_with_probability_selects_exactly_the_drawn_records(inner, dispatch):
    op = blur() if inner == "deterministic" else noise(3)
    policy = ApplyWithProbability(
        ApplyWithProbabilityConfig(probability=0.4, dispatch=dispatch),
        operator=op,
        rngs=nnx.Rngs(9),
    )
    n = 64
    ids = np.arange(n) * 5 + 2
    x = images((n, 6, 6, 3), seed=1)
    out = apply(policy, x, ids)
    alone = apply(op, x, ids)  # the operator keeps its own keys inside the policy
    applied = choice_uniforms(policy, ids) < 0.4
    expected = np.where(applied[:, None, None, None], alone, x)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)  # float32 rounding (fusion)
    assert 10 < applied.sum() < 45  # binomial(64, 0.4): mean 25.6, sd 3.9
    assert policy.stochastic


def test_apply_with_probability_zero_and_one_draw_nothing():
    x, ids = images((4, 5, 5), seed=2), np.arange(4)
    never = ApplyWithProbability(ApplyWithProbabilityConfig(probability=0.0), operator=blur())
    always = ApplyWithProbability(ApplyWithProbabilityConfig(probability=1.0), operator=blur())
    assert not never.stochastic and not always.stochastic  # no rngs needed
    np.testing.assert_array_equal(apply(never, x, ids), x)
    np.testing.assert_array_equal(apply(always, x, ids), apply(blur(), x, ids))


@pytest.mark.parametrize("dispatch", ["switch", "select"])
def test_apply_with_probability_passes_gradients_to_the_operator(dispatch):
    inner = GaussianBlur(GaussianBlurConfig(kernel_size=3, sigma=1.2, learnable=True))
    policy = ApplyWithProbability(
        ApplyWithProbabilityConfig(probability=0.5, dispatch=dispatch),
        operator=inner,
        rngs=nnx.Rngs(4),
    )
    graphdef, params, rest = nnx.split(policy, nnx.Param, ...)
    ids = jnp.arange(8, dtype=jnp.int32)
    x = jnp.asarray(images((8, 5, 5), seed=3))

    def loss(x, span):
        p = jax.tree_util.tree_map(lambda _: span, params)
        out = nnx.merge(graphdef, p, rest).apply_batch({"image": x}, {}, ids, EPOCH, SEED)
        return jnp.sum(out[0]["image"] ** 2)

    grad_x, grad_sigma = jax.grad(loss, argnums=(0, 1))(x, jnp.asarray([1.2, 1.2]))
    applied = choice_uniforms(policy, np.arange(8)) < 0.5
    assert 0 < applied.sum() < 8
    # records left alone: d loss / d x = 2 x exactly
    np.testing.assert_allclose(np.asarray(grad_x)[~applied], 2 * np.asarray(x)[~applied])
    assert float(jnp.abs(grad_sigma).sum()) > 0


def test_apply_with_probability_config_errors():
    with pytest.raises(ConfigError, match=r"ApplyWithProbabilityConfig\.probability"):
        ApplyWithProbabilityConfig(probability=1.5)
    with pytest.raises(ConfigError, match=r"ApplyWithProbability\(operator=\.\.\.\)") as exc:
        ApplyWithProbability(ApplyWithProbabilityConfig(), operator=lambda x: x, rngs=nnx.Rngs(0))
    assert "function" in str(exc.value)


@pytest.mark.parametrize("dispatch", ["switch", "select"])
def test_apply_with_probability_needs_an_operator_keeping_the_batch_alike(dispatch):
    to_float = Normalize(NormalizeConfig(mean=0.0, std=255.0))
    config = ApplyWithProbabilityConfig(dispatch=dispatch)
    policy = ApplyWithProbability(config, operator=to_float, rngs=nnx.Rngs(0))
    with pytest.raises(PipelineBuildError, match="paths produce different outputs"):
        apply(policy, np.zeros((2, 4, 4), np.uint8), np.arange(2))


# ------------------------------------------------------------------------- ChooseOne


@pytest.mark.parametrize("dispatch", ["switch", "select"])
def test_choose_one_gives_each_record_its_chosen_operator(dispatch):
    ops = [blur(0.7), noise(1, "noise_a"), noise(1, "noise_b")]
    config = ChooseOneConfig(weights=(1, 2, 1), dispatch=dispatch)
    policy = ChooseOne(config, operators=ops, rngs=nnx.Rngs(2))
    n = 400
    ids = np.arange(n) + 1000
    x = images((n, 4, 4, 3), seed=5)
    out = apply(policy, x, ids)
    alone = np.stack([apply(op, x, ids) for op in ops])
    u = choice_uniforms(policy, ids)
    chosen = np.where(u < 0.25, 0, np.where(u < 0.75, 1, 2))  # shares 1/4, 1/2, 1/4
    # equal up to float32 rounding: XLA may fuse x + s * n differently in a larger program
    np.testing.assert_allclose(out, alone[chosen, np.arange(n)], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(policy.choices(ids, EPOCH, SEED)), chosen)
    counts = np.bincount(chosen, minlength=3) / n
    assert np.all(np.abs(counts - [0.25, 0.5, 0.25]) < 0.08)  # > 3 sd of a binomial(400)
    # equal rngs, different stream names: the two noise operators draw differently
    assert not np.array_equal(alone[1], alone[2])


def test_choose_one_never_picks_a_zero_weight():
    ops = [blur(0.5), blur(1.0), blur(2.0)]
    policy = ChooseOne(ChooseOneConfig(weights=(1.0, 0.0, 3.0)), operators=ops, rngs=nnx.Rngs(0))
    chosen = np.asarray(policy.choices(jnp.arange(500), EPOCH, SEED))
    assert set(chosen.tolist()) == {0, 2}
    np.testing.assert_array_equal(pick((0.0, 1.0), jnp.array([0.0, 0.5])), [1, 1])


def test_choose_one_of_one_operator_is_that_operator():
    policy = ChooseOne(ChooseOneConfig(), operators=[blur()])
    assert not policy.stochastic
    x = images((3, 5, 5), seed=6)
    np.testing.assert_array_equal(apply(policy, x, np.arange(3)), apply(blur(), x, np.arange(3)))


def test_choose_one_errors():
    with pytest.raises(ConfigError, match=r"ChooseOneConfig\.weights") as exc:
        ChooseOne(ChooseOneConfig(weights=(1, 1)), operators=[blur()], rngs=nnx.Rngs(0))
    assert "1 weights" in str(exc.value)
    for weights in [(1, -1), (0, 0), (), "12", (1, float("nan"))]:
        with pytest.raises(ConfigError, match=r"ChooseOneConfig\.weights"):
            ChooseOneConfig(weights=weights)
    with pytest.raises(ConfigError, match="nothing to choose from"):
        ChooseOne(ChooseOneConfig(), operators=[])
    with pytest.raises(ConfigError, match="must be a datarax operator"):
        ChooseOne(ChooseOneConfig(), operators=[blur(), "noise"], rngs=nnx.Rngs(0))
    mixed = ChooseOne(
        ChooseOneConfig(), operators=[blur(), Normalize(NormalizeConfig())], rngs=nnx.Rngs(0)
    )
    with pytest.raises(PipelineBuildError, match="paths produce different outputs"):
        apply(mixed, np.zeros((2, 4, 4), np.uint8), np.arange(2))


@pytest.mark.parametrize(
    "config_type",
    [ApplyWithProbabilityConfig, ChooseOneConfig, RandAugmentConfig, TrivialAugmentConfig],
)
def test_policy_dispatch_errors(config_type):
    message = (
        rf"{config_type.__name__}\.dispatch: unknown dispatch; "
        r"expected 'auto' or 'switch' or 'select', found 'vmap'"
    )
    with pytest.raises(ConfigError, match=message):
        config_type(dispatch="vmap")


# ------------------------------------------------------------------------ in pipeline


def test_wrappers_pass_the_in_pipeline_check():
    data = {"image": np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)}
    assert_operator_in_pipeline(
        lambda: ApplyWithProbability(
            ApplyWithProbabilityConfig(probability=0.5),
            operator=PixelDropout(PixelDropoutConfig(probability=0.3), rngs=nnx.Rngs(1)),
            rngs=nnx.Rngs(2),
        ),
        data,
    )
    assert_operator_in_pipeline(
        lambda: ChooseOne(
            ChooseOneConfig(weights=(2, 1)),
            operators=[blur(), PixelDropout(PixelDropoutConfig(probability=0.3), rngs=nnx.Rngs(1))],
            rngs=nnx.Rngs(3),
        ),
        data,
        resume=False,
    )


# ---------------------------------------------------------------------- RandAugment

# torchvision's RandAugment table at bin 9 of 31 (magnitude = top * 9 / 30).
TORCHVISION_M9 = {
    "shear_x": 0.09,
    "translate_x": 150 / 331 * 16 * 0.3,  # width 16
    "translate_y": 150 / 331 * 12 * 0.3,  # height 12
    "rotate": 9.0,
    "brightness": 0.27,
    "color": 0.27,
    "posterize": 7.0,  # 8 - round(9 / 7.5)
    "solarize": 178.5,  # 255 - 9 * 8.5
    "equalize": 0.0,
}


def test_randaugment_magnitudes_follow_torchvision():
    for kind, value in TORCHVISION_M9.items():
        assert randaugment_magnitude(kind, 9, 31, 12, 16) == pytest.approx(value, abs=1e-9)
    assert randaugment_magnitude("posterize", 30, 31, 8, 8) == 4.0
    assert randaugment_magnitude("solarize", 30, 31, 8, 8) == 0.0
    assert randaugment_magnitude("rotate", 0, 31, 8, 8) == 0.0


def by_hand(kind, m, height):
    """The library operator for one RandAugment choice, built here from its config."""
    sampling = {"interpolation": "nearest", "fill": 0.0}
    return {
        "brightness": lambda: Brightness(BrightnessConfig(factor=1 + m)),
        "color": lambda: Saturation(SaturationConfig(factor=1 + m)),
        "posterize": lambda: Posterize(PosterizeConfig(bits=int(m))),
        "solarize": lambda: Solarize(SolarizeConfig(threshold=m / 255)),
        "equalize": lambda: Equalize(EqualizeConfig()),
        "rotate": lambda: Rotate(RotateConfig(angle=m, **sampling)),
        # about the top-left corner: the centre shear moved back by -m * height / 2
        "shear_x": lambda: Affine(
            AffineConfig(shear_x=np.degrees(np.arctan(m)), translate_x=-m * height / 2, **sampling)
        ),
        "translate_y": lambda: Affine(AffineConfig(translate_y=float(int(m)), **sampling)),
    }[kind]()


RANDAUGMENT_SUBSET = (
    "identity", "shear_x", "translate_y", "rotate", "brightness", "color", "posterize",
    "solarize", "equalize",
)  # fmt: skip


@pytest.mark.parametrize("dispatch", ["switch", "select"])
def test_randaugment_each_record_gets_its_ops_at_its_magnitude(dispatch):
    config = RandAugmentConfig(num_ops=2, magnitude=9, ops=RANDAUGMENT_SUBSET, dispatch=dispatch)
    policy = RandAugment(config, rngs=nnx.Rngs(3))
    n, h, w = 48, 12, 16
    ids = np.arange(n) * 3 + 1
    x = np.random.default_rng(9).integers(0, 256, (n, h, w, 3)).astype(np.uint8)
    out = apply(policy, x, ids)

    graphdef, state = nnx.split(policy)
    u = np.asarray(_uniforms(graphdef, state, jnp.asarray(ids, jnp.int32), jnp.uint32(EPOCH)))
    kinds = np.floor(u[:, 0::2] * len(RANDAUGMENT_SUBSET)).astype(int)
    negated = u[:, 1::2] < 0.5
    assert len(np.unique(kinds)) == len(RANDAUGMENT_SUBSET)  # every operation drawn

    expected = x.copy()
    for step in range(2):
        current = expected.copy()
        for kind_index, kind in enumerate(RANDAUGMENT_SUBSET):
            for sign in (False, True):
                rows = (kinds[:, step] == kind_index) & (negated[:, step] == sign)
                if not rows.any() or kind == "identity":
                    continue
                m = TORCHVISION_M9[kind] * (-1 if sign and kind in SIGNED_OPS else 1)
                done = apply(by_hand(kind, m, h), current, ids)
                expected[rows] = done[rows]
    np.testing.assert_array_equal(out, expected)


@functools.partial(jax.jit, static_argnums=(0,))
def _uniforms(graphdef, state, ids, epoch):
    policy = nnx.merge(graphdef, state)
    return policy.uniforms(ids, epoch, SEED, 2 * policy.config.num_ops)


@pytest.mark.parametrize("kind", ["shear_x", "shear_y"])
def test_randaugment_shears_about_the_top_left_corner(kind):
    # magnitude 30 of 31 bins: shear factor 0.3, either sign
    policy = RandAugment(RandAugmentConfig(num_ops=1, magnitude=30, ops=(kind,)), rngs=nnx.Rngs(0))
    x = np.random.default_rng(1).integers(1, 256, (8, 10, 10)).astype(np.uint8)
    out = apply(policy, x, np.arange(8))
    first = (slice(None), 0, slice(None)) if kind == "shear_x" else (slice(None), slice(None), 0)
    last = (slice(None), -1, slice(None)) if kind == "shear_x" else (slice(None), slice(None), -1)
    # The first row (column) moves by 0.3 * 0.5 px: nearest sampling keeps it; the last
    # moves by 0.3 * 9.5 ~ 3 px.
    np.testing.assert_array_equal(out[first], x[first])
    assert np.all(np.any(out[last] != x[last], axis=1))


def test_randaugment_errors():
    for kw, field in [
        ({"ops": ("identity", "blur")}, "ops"),
        ({"ops": ("rotate", "rotate")}, "ops"),
        ({"ops": ()}, "ops"),
        ({"magnitude": 31}, "magnitude"),
        ({"magnitude": -1}, "magnitude"),
        ({"num_ops": 0}, "num_ops"),
        ({"num_magnitude_bins": 1}, "num_magnitude_bins"),
        ({"interpolation": "cubic"}, "interpolation"),
        ({"fill": "black"}, "fill"),
    ]:
        with pytest.raises(ConfigError, match=rf"RandAugmentConfig\.{field}"):
            RandAugmentConfig(**kw)
    policy = RandAugment(RandAugmentConfig(field="pixels"), rngs=nnx.Rngs(0))
    with pytest.raises(SchemaError, match="pixels"):
        policy.apply_batch({"image": jnp.zeros((2, 4, 4, 3))}, {}, jnp.arange(2), 0, 0)


# -------------------------------------------------------------------- TrivialAugment

TRIVIAL_SUBSET = ("identity", "brightness", "contrast", "posterize", "translate_x", "autocontrast")


def trivial_by_hand(kind, seed):
    """The ranged library operator of one TrivialAugment choice, with its stream name."""
    stream = {"stream_name": f"TrivialAugment/{kind}"}
    rngs = nnx.Rngs(seed)
    return {
        "brightness": lambda: Brightness(
            BrightnessConfig(factor=(0.01, 1.99), **stream), rngs=rngs
        ),
        "contrast": lambda: Contrast(ContrastConfig(factor=(0.01, 1.99), **stream), rngs=rngs),
        "posterize": lambda: Posterize(PosterizeConfig(bits=(2, 8), **stream), rngs=rngs),
        "translate_x": lambda: Affine(
            AffineConfig(translate_x=(-32.0, 32.0), interpolation="nearest", **stream), rngs=rngs
        ),
        "autocontrast": lambda: AutoContrast(AutoContrastConfig(**stream)),
    }[kind]()


@pytest.mark.parametrize("dispatch", ["switch", "select"])
def test_trivial_augment_each_record_gets_its_op_with_its_own_draw(dispatch):
    config = TrivialAugmentConfig(ops=TRIVIAL_SUBSET, dispatch=dispatch)
    policy = TrivialAugment(config, rngs=nnx.Rngs(4))
    n = 60
    ids = np.arange(n) + 7
    x = np.random.default_rng(10).integers(0, 256, (n, 10, 12, 3)).astype(np.uint8)
    out = apply(policy, x, ids)
    chosen = np.floor(choice_uniforms(policy, ids) * len(TRIVIAL_SUBSET)).astype(int)
    assert len(np.unique(chosen)) == len(TRIVIAL_SUBSET)
    expected = x.copy()
    for index, kind in enumerate(TRIVIAL_SUBSET):
        if kind != "identity":
            expected[chosen == index] = apply(trivial_by_hand(kind, 4), x, ids)[chosen == index]
    np.testing.assert_array_equal(out, expected)


def test_augment_policies_give_each_sub_operator_its_own_stream():
    policy = TrivialAugment(TrivialAugmentConfig(), rngs=nnx.Rngs(0))
    ids = np.arange(16)
    words = [np.asarray(choice_uniforms(policy, ids))]
    words += [choice_uniforms(op, ids) for op in policy.operators if op.stochastic]
    assert len(words) == 1 + 11  # the policy and its eleven ranged operations
    for i in range(len(words)):
        for j in range(i):
            assert not np.array_equal(words[i], words[j]), (i, j)


def test_trivial_augment_errors():
    with pytest.raises(ConfigError, match=r"TrivialAugmentConfig\.ops"):
        TrivialAugmentConfig(ops=("sharpen",))
    with pytest.raises(OperatorError, match="rngs"):
        TrivialAugment(TrivialAugmentConfig())


def test_augment_policies_pass_the_in_pipeline_check():
    data = {"image": np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)}
    assert_operator_in_pipeline(
        lambda: RandAugment(RandAugmentConfig(num_ops=2, magnitude=12), rngs=nnx.Rngs(1)), data
    )
    assert_operator_in_pipeline(
        lambda: TrivialAugment(TrivialAugmentConfig(), rngs=nnx.Rngs(2)), data, resume=False
    )
