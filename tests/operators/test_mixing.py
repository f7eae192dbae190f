"""MixUp and CutMix: pairing, lambda, boxes and labels against NumPy.

The pairing rule (distinct records sorted by (score, record id), each mixed with
the next, cyclically) is re-implemented in NumPy; lambdas and boxes are recomputed
from the records' keys. Batch-level operators cannot give a record the same output
at batch sizes 16 and 32 (its partner comes from its batch), so their pipeline
check is: resume at every step, no recompilation in epoch 2, and the per-record
part (lambda) equal at both batch sizes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from conftest import CompileCounter
from datarax import from_source
from datarax.core.errors import ConfigError, SchemaError
from datarax.dag.nodes import OperatorNode
from datarax.operators.base import uniform
from datarax.operators.mixing import CutMix, CutMixConfig, MixUp, MixUpConfig, partners
from datarax.sources import MemorySource, MemorySourceConfig
from harness import assert_resumes_at_every_step, snapshot

pytestmark = pytest.mark.slow  # run by the separate slow step of .ci/run

EPOCH, SEED = 3, 2


@functools.partial(jax.jit, static_argnums=(0, 5))
def _run(graphdef, state, data, ids, epoch, seed):
    return nnx.merge(graphdef, state).apply_batch(data, {}, ids, epoch, seed)[0]


def apply(op, data, ids):
    graphdef, state = nnx.split(op)
    data = {k: jnp.asarray(v) for k, v in data.items()}
    out = _run(graphdef, state, data, jnp.asarray(ids, jnp.int32), jnp.uint32(EPOCH), SEED)
    return {k: np.asarray(v) for k, v in out.items()}


@functools.partial(jax.jit, static_argnums=(0, 4))
def _draws(graphdef, state, ids, epoch, seed):
    op = nnx.merge(graphdef, state)
    keys = op.keys_for(ids, epoch, seed)
    words = jax.random.key_data(keys).reshape(ids.shape[0], -1)
    box_u = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 1), (2,)))(keys)
    return words, op.lambdas(keys), box_u


def draws(op, ids):
    """(scores, mixed-uniforms, Beta draws, CutMix centre uniforms) recomputed per record."""
    graphdef, state = nnx.split(op)
    ids = jnp.asarray(ids, jnp.int32)
    words, lam, box_u = _draws(graphdef, state, ids, jnp.uint32(EPOCH), SEED)
    words = np.asarray(words)
    return words[:, 0], np.asarray(uniform(jnp.asarray(words[:, 1]))), np.asarray(lam), box_u


def numpy_partners(scores, ids):
    """The documented pairing rule, in NumPy."""
    ids = np.asarray(ids)
    distinct = sorted(set(ids.tolist()), key=lambda r: (int(scores[list(ids).index(r)]), r))
    first_row = {r: list(ids).index(r) for r in distinct}
    nxt = {r: distinct[(k + 1) % len(distinct)] for k, r in enumerate(distinct)}
    return np.array([first_row[nxt[r]] for r in ids.tolist()])


def mixup(alpha=1.0, seed=0, **kw):
    return MixUp(MixUpConfig(alpha=alpha, **kw), rngs=nnx.Rngs(seed))


def cutmix(alpha=1.0, seed=0, **kw):
    return CutMix(CutMixConfig(alpha=alpha, **kw), rngs=nnx.Rngs(seed))


def continuous(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 1.0, shape).astype(np.float32)


# -------------------------------------------------------------------------- pairing


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(1, 12),
    repeats=st.integers(0, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_partners_follow_the_documented_rule(n, repeats, seed):
    rng = np.random.default_rng(seed)
    ids = rng.choice(1000, n, replace=False)
    scores_by_id = {int(r): int(s) for r, s in zip(ids, rng.integers(0, 4, n), strict=True)}
    ids = np.concatenate([ids, np.full(repeats, ids[0])])  # padding repeats the first record
    scores = np.array([scores_by_id[int(r)] for r in ids], np.uint32)
    got = np.asarray(partners(jnp.asarray(scores), jnp.asarray(ids, jnp.int32)))
    np.testing.assert_array_equal(ids[got], ids[numpy_partners(scores, ids)])
    real = got[:n]
    assert sorted(real.tolist()) == list(range(n))  # a permutation of the real records
    if n > 1:
        assert np.all(real != np.arange(n))  # nobody is its own partner
    # one cycle through all records
    seen, row = set(), 0
    for _ in range(n):
        seen.add(row)
        row = real[row]
    assert len(seen) == n and row == 0
    # the order of the batch does not matter
    order = rng.permutation(n + repeats)
    shuffled = np.asarray(partners(jnp.asarray(scores[order]), jnp.asarray(ids[order], jnp.int32)))
    assert {int(a): int(b) for a, b in zip(ids[order], ids[order][shuffled], strict=True)} == {
        int(a): int(b) for a, b in zip(ids, ids[got], strict=True)
    }


# -------------------------------------------------------------------------------- MixUp


@pytest.mark.parametrize("probability", [1.0, 0.6])
def test_mixup_matches_numpy_with_the_same_draws(probability):
    op = mixup(0.4, num_classes=5, probability=probability)
    n = 12
    ids = np.arange(n) * 7 + 1
    x, y = continuous((n, 6, 5, 3), seed=1), np.arange(n) % 5
    out = apply(op, {"image": x, "label": y, "other": np.arange(n)}, ids)
    scores, u_mix, lam, _ = draws(op, ids)
    lam = np.where(u_mix < probability, lam, 1.0).astype(np.float32)
    j = numpy_partners(scores, ids)
    lam4 = lam[:, None, None, None]
    np.testing.assert_allclose(out["image"], lam4 * x + (1 - lam4) * x[j], rtol=0, atol=1e-6)
    onehot = np.eye(5, dtype=np.float32)[y]
    expected = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[j]
    np.testing.assert_allclose(out["label"], expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["label"].sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(out["other"], np.arange(n))  # other fields untouched
    assert out["label"].dtype == np.float32 and out["image"].dtype == np.float32
    if probability < 1:
        assert 0 < np.sum(lam == 1.0) < n


def test_mixup_image_and_label_share_lambda_and_partner():
    """Read (lambda, partner) from the labels alone, then check the images with them."""
    n = 16
    op = mixup(1.0, num_classes=n)
    ids = np.arange(n) + 100
    x = continuous((n, 4, 4), seed=2)
    out = apply(op, {"image": x, "label": np.arange(n)}, ids)  # record i has class i
    labels = out["label"]
    lam = labels[np.arange(n), np.arange(n)]
    masked = labels.copy()
    masked[np.arange(n), np.arange(n)] = 0
    j = masked.argmax(axis=1)
    np.testing.assert_allclose(masked[np.arange(n), j], 1 - lam, atol=1e-6)
    assert sorted(j.tolist()) == list(range(n))  # every record is one record's partner
    lam3 = lam[:, None, None]
    np.testing.assert_allclose(out["image"], lam3 * x + (1 - lam3) * x[j], rtol=0, atol=1e-6)


def test_mixup_lambda_is_beta_distributed():
    alpha, n = 0.4, 2000
    op = mixup(alpha, num_classes=2)
    _, _, lam, _ = draws(op, np.arange(n))
    # Kolmogorov-Smirnov against Beta(alpha, alpha); a correct sampler fails 1 run in 1000
    assert scipy.stats.kstest(lam, scipy.stats.beta(alpha, alpha).cdf).pvalue > 1e-3


def test_mixup_soft_labels_and_uint8_images():
    op = mixup(1.0)
    n = 6
    ids = np.arange(n)
    x = np.random.default_rng(3).integers(0, 256, (n, 5, 5, 3)).astype(np.uint8)
    soft = np.random.default_rng(4).dirichlet(np.ones(4), n).astype(np.float32)
    out = apply(op, {"image": x, "label": soft}, ids)
    scores, _, lam, _ = draws(op, ids)
    j = numpy_partners(scores, ids)
    assert out["image"].dtype == np.uint8
    mixed = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[j].astype(np.float32)
    assert np.abs(out["image"].astype(np.float32) - mixed).max() <= 0.5 + 1e-4  # rounded
    expected = lam[:, None] * soft + (1 - lam[:, None]) * soft[j]
    np.testing.assert_allclose(out["label"], expected, rtol=0, atol=1e-6)


def test_a_padded_batch_mixes_its_real_records_as_the_unpadded_batch():
    op = mixup(1.0, num_classes=10)
    ids = np.array([5, 9, 2, 7, 11])
    x, y = continuous((5, 4, 4, 1), seed=5), np.array([1, 2, 3, 4, 5])
    alone = apply(op, {"image": x, "label": y}, ids)
    pad = [0, 0, 0]  # the executor pads with the last batch's first record
    padded = apply(
        op,
        {"image": x[[*range(5), *pad]], "label": y[[*range(5), *pad]]},
        np.concatenate([ids, ids[pad]]),
    )
    for field in ("image", "label"):
        np.testing.assert_array_equal(padded[field][:5], alone[field])
        np.testing.assert_array_equal(padded[field][5:], alone[field][pad])


def test_mixup_gradients_in_inputs_and_learnable_alpha():
    op = mixup(0.7, num_classes=3, learnable=True)
    graphdef, params, rest = nnx.split(op, nnx.Param, ...)
    n = 4
    ids = jnp.arange(n, dtype=jnp.int32)
    labels = jnp.arange(n) % 3

    def loss(x, alpha):
        p = jax.tree_util.tree_map(lambda _: alpha, params)
        out, _ = nnx.merge(graphdef, p, rest).apply_batch(
            {"image": x, "label": labels}, {}, ids, jnp.uint32(0), 0
        )
        return jnp.sum(out["image"] ** 2) + jnp.sum(out["label"] * jnp.arange(3.0))

    x = jnp.asarray(continuous((n, 3, 3), seed=6))
    in_x = jax.jit(lambda x: loss(x, jnp.float32(0.7)))
    # float32 central differences; quadratic in x
    check_grads(in_x, (x,), order=1, modes=("rev",), eps=1e-3, atol=2e-2, rtol=2e-2)
    assert float(jax.grad(loss, argnums=1)(x, jnp.float32(0.7))) != 0.0

    # The pathwise gradient reaching alpha is unbiased: E[lam^2] = 1/4 + 1/(4 (2a + 1)), so
    # d/da mean(lam^2) over many records tends to -1 / (2 (2a + 1)^2).
    many = jnp.arange(4000, dtype=jnp.int32)
    keys = op.keys_for(many, jnp.uint32(0), 0)

    @jax.jit
    def second_moment(alpha):
        p = jax.tree_util.tree_map(lambda _: alpha, params)
        return jnp.mean(nnx.merge(graphdef, p, rest).lambdas(keys) ** 2)

    estimate = float(jax.grad(second_moment)(jnp.float32(0.7)))
    # per-record terms 2 lam dlam/da have sd < 0.3: standard error < 0.005; 4 se
    assert abs(estimate - (-1 / (2 * (2 * 0.7 + 1) ** 2))) < 0.02, estimate


# ------------------------------------------------------------------------------ CutMix


def torchvision_box(lam, u, height, width):
    """torchvision v2 CutMix box for ``lam`` and centre uniforms ``u``: (y1, x1, y2, x2)."""
    r_y, r_x = int(np.floor(u[0] * height)), int(np.floor(u[1] * width))
    r = 0.5 * np.sqrt(np.float32(1.0) - np.float32(lam))
    half_w, half_h = int(np.floor(r * width)), int(np.floor(r * height))
    top, left = max(r_y - half_h, 0), max(r_x - half_w, 0)
    return top, left, min(r_y + half_h, height), min(r_x + half_w, width)


@pytest.mark.parametrize("shape", [(24, 10, 12, 3), (24, 9, 9)], ids=["color", "gray"])
def test_cutmix_pastes_the_partner_box_and_corrects_lambda(shape):
    op = cutmix(1.0, num_classes=4, probability=0.9)
    n, h, w = shape[:3]
    ids = np.arange(n) * 3
    x, y = continuous(shape, seed=7), np.arange(n) % 4
    out = apply(op, {"image": x, "label": y}, ids)
    scores, u_mix, lam, box_u = draws(op, ids)
    j = numpy_partners(scores, ids)
    onehot = np.eye(4, dtype=np.float32)[y]
    for i in range(n):
        expected = x[i].copy()
        area = 0
        if u_mix[i] < 0.9:
            y1, x1, y2, x2 = torchvision_box(lam[i], np.asarray(box_u[i]), h, w)
            expected[y1:y2, x1:x2] = x[j[i]][y1:y2, x1:x2]
            area = (y2 - y1) * (x2 - x1)
            assert area <= (1 - lam[i]) * h * w + 1e-4  # the box never exceeds 1 - lambda
        np.testing.assert_array_equal(out["image"][i], expected)
        lam_adj = 1 - area / (h * w)
        np.testing.assert_allclose(
            out["label"][i], lam_adj * onehot[i] + (1 - lam_adj) * onehot[j[i]], atol=1e-6
        )
        # the corrected lambda is the share of the record's own pixels
        own = out["image"][i] == x[i]
        own = own.all(axis=-1) if len(shape) == 4 else own
        assert np.sum(own) == h * w - area
    np.testing.assert_allclose(out["label"].sum(axis=1), 1.0, atol=1e-6)


def test_cutmix_refuses_non_images_and_learnable_alpha():
    with pytest.raises(SchemaError, match="CutMix mixes images"):
        apply(
            cutmix(num_classes=2),
            {"image": np.zeros((4, 7)), "label": np.zeros(4, int)},
            np.arange(4),
        )
    with pytest.raises(ConfigError, match=r"CutMixConfig\.learnable"):
        CutMixConfig(learnable=True)


# ----------------------------------------------------------------------- schema, config


@pytest.mark.parametrize("make", [mixup, cutmix], ids=["mixup", "cutmix"])
def test_label_schema_errors(make):
    x = np.zeros((4, 4, 4, 3), np.float32)
    with pytest.raises(SchemaError, match="num_classes") as exc:
        apply(make(), {"image": x, "label": np.zeros(4, np.int32)}, np.arange(4))
    assert "label" in str(exc.value)
    with pytest.raises(SchemaError, match="soft labels do not match num_classes"):
        apply(
            make(num_classes=3), {"image": x, "label": np.zeros((4, 5), np.float32)}, np.arange(4)
        )
    with pytest.raises(SchemaError, match="class ids or soft labels"):
        apply(make(num_classes=3), {"image": x, "label": np.zeros((4, 2, 2))}, np.arange(4))
    with pytest.raises(SchemaError, match="field missing") as exc:
        apply(
            make(num_classes=3, label_field="target"),
            {"image": x, "label": np.zeros(4)},
            np.arange(4),
        )
    assert "target" in str(exc.value)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": float("inf")}, "alpha"),
        ({"probability": 1.2}, "probability"),
        ({"num_classes": 0}, "num_classes"),
        ({"label_field": "image"}, "label_field"),
        ({"image_field": ""}, "image_field"),
        ({"learnable": "yes"}, "learnable"),
    ],
)
def test_mixup_config_errors(kw, field):
    with pytest.raises(ConfigError, match=rf"MixUpConfig\.{field}"):
        MixUpConfig(**kw)


# ------------------------------------------------------------------------ in pipeline


def _pipeline(make_op, data, batch_size, num_epochs=1, batches_per_call=None):
    source = MemorySource(MemorySourceConfig(), data=data)
    base = from_source(
        source,
        batch_size,
        shuffle=True,
        seed=3,
        num_epochs=num_epochs,
        batches_per_call=batches_per_call,
    )
    return base >> OperatorNode(make_op())


def _own_weights(pipeline):
    """Per (epoch, record id): the weight of the record's own class (its lambda)."""
    out = {}
    for batch in pipeline:
        labels = np.asarray(batch["label"])
        for row, rid in enumerate(np.asarray(batch.record_ids).tolist()):
            out[(int(batch.epoch), rid)] = float(labels[row, rid])
    return out


@pytest.mark.parametrize(
    "make",
    [lambda: mixup(0.5, num_classes=40, seed=1), lambda: cutmix(1.0, num_classes=40, seed=2)],
    ids=["mixup", "cutmix"],
)
def test_mixing_in_pipeline_resumes_and_compiles_once(make):
    rng = np.random.default_rng(0)
    data = {"image": rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8), "label": np.arange(40)}
    # Batch-level: the batch-size check does not apply; resume and compile counts do.
    assert_resumes_at_every_step(lambda: _pipeline(make, data, 16))
    counter = CompileCounter()
    it = iter(_pipeline(make, data, 16, num_epochs=None))
    for _ in range(3):
        next(it)
    jax.monitoring.register_event_duration_secs_listener(counter)
    try:
        for _ in range(3):
            next(it)
    finally:
        jax.monitoring.unregister_event_duration_listener(counter)
    assert counter.count == 0
    if make().__class__ is MixUp:  # lambda is per record: the same at both batch sizes
        small = _own_weights(_pipeline(make, data, 16, num_epochs=2))
        large = _own_weights(_pipeline(make, data, 32, num_epochs=2))
        assert small.keys() == large.keys()
        assert all(abs(small[k] - large[k]) < 1e-6 for k in small)


@pytest.mark.parametrize(
    "make",
    [lambda: mixup(0.5, num_classes=40, seed=1), lambda: cutmix(1.0, num_classes=40, seed=2)],
    ids=["mixup", "cutmix"],
)
def test_records_are_paired_within_their_batch_however_many_batches_a_call_computes(make):
    rng = np.random.default_rng(1)
    data = {"image": rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8), "label": np.arange(40)}
    one = [snapshot(b) for b in _pipeline(make, data, 8, batches_per_call=1)]
    for per_call in (2, 5):
        assert [snapshot(b) for b in _pipeline(make, data, 8, batches_per_call=per_call)] == one
