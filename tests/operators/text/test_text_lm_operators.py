"""MaskedLM and CausalLMShift against NumPy recomputations, and inside pipelines.

MaskedLM is recomputed in NumPy from the operator's own per-record uniforms
(``op.uniforms(record_ids, epoch, seed, 3 * length)``, layout in the module's
docstring) and must match exactly; its rates are checked on 64k tokens (15%
selected, 80/10/10 split) within 1 percentage point. CausalLMShift is compared with
a Python loop over tokens, lengths and segments.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from text_data import assert_operator_in_pipeline

from datarax import from_source
from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.dag.nodes import OperatorNode
from datarax.operators.text.causal import CausalLMShift, CausalLMShiftConfig
from datarax.operators.text.masking import MaskedLM, MaskedLMConfig
from datarax.sources import MemorySource, MemorySourceConfig

VOCAB, MASK = 500, 4
SPECIALS = (0, 1, 2, 3)


@functools.partial(jax.jit, static_argnums=(0, 5))
def _run(graphdef, state, data, record_ids, epoch, seed):
    op = nnx.merge(graphdef, state)
    return op.apply_batch(data, {}, record_ids, epoch, seed)[0]


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _uniforms(graphdef, state, record_ids, epoch, seed, count):
    return nnx.merge(graphdef, state).uniforms(record_ids, epoch, seed, count)


def op_uniforms(op, ids, epoch, seed, count):
    """The operator's own per-record uniforms (compiled once per shape)."""
    graphdef, state = nnx.split(op)
    ids = jnp.asarray(ids, jnp.int32)
    return np.asarray(_uniforms(graphdef, state, ids, jnp.uint32(epoch), seed, count))


def apply(op, data, ids, epoch=0, seed=0):
    graphdef, state = nnx.split(op)
    data = {k: jnp.asarray(v) for k, v in data.items()}
    out = _run(graphdef, state, data, jnp.asarray(ids, jnp.int32), jnp.uint32(epoch), seed)
    return {k: np.asarray(v) for k, v in out.items()}


def token_batch(batch, length, seed=0):
    """Token rows with [CLS] ... [SEP] and padding after a random length."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, VOCAB, (batch, length)).astype(np.int32)
    lengths = rng.integers(2, length + 1, batch).astype(np.int32)
    tokens[:, 0] = 2
    tokens[np.arange(batch), lengths - 1] = 3
    tokens[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return tokens, lengths


def numpy_mlm(tokens, u, config, lengths=None):
    """BERT masking in NumPy from the uniforms (batch, 3, length)."""
    masked, labels = tokens.copy(), np.full(tokens.shape, config.ignore_index, np.int32)
    b, n = tokens.shape
    for i in range(b):
        for t in range(n):
            token = tokens[i, t]
            if token in config.special_ids or token == config.mask_id:
                continue
            if lengths is not None and t >= lengths[i]:
                continue
            if not u[i, 0, t] < np.float32(config.probability):
                continue
            labels[i, t] = token
            action = u[i, 1, t]
            if action < np.float32(config.mask_fraction):
                masked[i, t] = config.mask_id
            elif action < np.float32(config.mask_fraction + config.random_fraction):
                draw = np.floor(u[i, 2, t] * np.float32(config.vocab_size))
                masked[i, t] = min(int(draw), config.vocab_size - 1)
    return masked, labels


def mlm(**kw):
    config = MaskedLMConfig(vocab_size=VOCAB, mask_id=MASK, special_ids=SPECIALS, **kw)
    return MaskedLM(config, rngs=nnx.Rngs(3))


@pytest.mark.parametrize("probability,with_lengths", [(0.15, True), (0.6, False)])
@given(
    data_seed=st.integers(0, 2**16),
    first_id=st.integers(0, 10_000),
    epoch=st.integers(0, 3),
    seed=st.sampled_from([0, 5]),  # static in the compiled function: few values
)
@settings(max_examples=10, deadline=None)
def test_mlm_equals_numpy_from_the_same_uniforms(
    probability, with_lengths, data_seed, first_id, epoch, seed
):
    batch, length = 5, 19
    tokens, lengths = token_batch(batch, length, data_seed)
    tokens[tokens == 0] = 7  # without length_field padding is only excluded as a special id
    op = mlm(probability=probability, length_field="n" if with_lengths else None)
    ids = np.arange(batch) * 7 + first_id
    out = apply(op, {"tokens": tokens, "n": lengths}, ids, epoch=epoch, seed=seed)
    u = op_uniforms(op, ids, epoch, seed, 3 * length)
    masked, labels = numpy_mlm(
        tokens, u.reshape(batch, 3, length), op.config, lengths if with_lengths else None
    )
    np.testing.assert_array_equal(out["tokens"], masked)
    np.testing.assert_array_equal(out["labels"], labels)
    assert out["labels"].dtype == np.int32 and out["tokens"].dtype == np.int32


def test_mlm_rates_specials_and_per_record_keys():
    tokens, lengths = token_batch(256, 256, seed=5)
    op = mlm(length_field="n")
    ids = np.arange(256)
    out = apply(op, {"tokens": tokens, "n": lengths}, ids)
    maskable = ~np.isin(tokens, SPECIALS) & (np.arange(256)[None] < lengths[:, None])
    selected = out["labels"] != -100
    assert not np.any(selected & ~maskable)  # specials and padding never selected
    assert np.all(out["tokens"][~selected] == tokens[~selected])
    np.testing.assert_array_equal(out["labels"][selected], tokens[selected])
    rate = selected.sum() / maskable.sum()
    masked = (out["tokens"] == MASK) & selected
    kept = (out["tokens"] == tokens) & selected  # includes random draws of the same token
    assert abs(rate - 0.15) < 0.01, rate
    assert abs(masked.sum() / selected.sum() - 0.8) < 0.01
    assert abs(kept.sum() / selected.sum() - 0.1) < 0.01
    # A record is masked the same wherever it sits in a batch.
    perm = np.random.default_rng(0).permutation(256)[:40]
    again = apply(op, {"tokens": tokens[perm], "n": lengths[perm]}, ids[perm])
    np.testing.assert_array_equal(again["tokens"], out["tokens"][perm])
    # Another epoch or seed masks differently.
    other = apply(op, {"tokens": tokens, "n": lengths}, ids, epoch=1)
    assert not np.array_equal(other["labels"], out["labels"])


def test_mlm_with_probability_zero_needs_no_rngs():
    config = MaskedLMConfig(vocab_size=VOCAB, mask_id=MASK, probability=0.0)
    op = MaskedLM(config)
    assert not op.stochastic and not MaskedLM.is_stochastic(config)
    tokens, _ = token_batch(3, 5)
    out = apply(op, {"tokens": tokens}, np.arange(3))
    assert np.all(out["labels"] == -100) and np.array_equal(out["tokens"], tokens)
    with pytest.raises(OperatorError, match=r"a stochastic operator needs random keys"):
        MaskedLM(MaskedLMConfig())


def test_mlm_errors():
    with pytest.raises(
        ConfigError,
        match=(
            r"MaskedLMConfig.probability: must be a probability; "
            r"expected a number in \[0, 1\], found 1.5"
        ),
    ):
        MaskedLMConfig(probability=1.5)
    with pytest.raises(ConfigError, match=r"MaskedLMConfig: fractions add up to more than 1"):
        MaskedLMConfig(mask_fraction=0.9, random_fraction=0.2)
    with pytest.raises(ConfigError, match=r"MaskedLMConfig.special_ids: must be token ids"):
        MaskedLMConfig(special_ids=("[PAD]",))
    with pytest.raises(ConfigError, match=r"MaskedLMConfig.labels_field: labels would overwrite"):
        MaskedLMConfig(labels_field="tokens")
    with pytest.raises(ConfigError, match=r"MaskedLMConfig.vocab_size: must be a positive integer"):
        MaskedLMConfig(vocab_size=0)
    op = mlm()
    with pytest.raises(
        SchemaError, match=r"MaskedLM: field missing; expected a field 'tokens' among \['ids'\]"
    ):
        op.apply_batch({"ids": jnp.zeros((2, 3), jnp.int32)}, {}, jnp.arange(2), jnp.uint32(0), 0)
    with pytest.raises(
        SchemaError,
        match=(
            r"MaskedLM, field 'tokens': tokens must be a 1-D integer "
            r"sequence per record; .*found float32\(3,\)"
        ),
    ):
        op.apply_batch({"tokens": jnp.zeros((2, 3))}, {}, jnp.arange(2), jnp.uint32(0), 0)
    source = MemorySource(MemorySourceConfig(), data={"tokens": np.zeros((4, 3, 2), np.int32)})
    with pytest.raises(SchemaError, match=r"found int32\(3, 2\)"):
        from_source(source, 2) >> OperatorNode(op)
    with pytest.raises(
        SchemaError, match=r"MaskedLM, field 'n': lengths must be one integer per record"
    ):
        mlm(length_field="n").apply_batch(
            {"tokens": jnp.zeros((2, 3), jnp.int32), "n": jnp.zeros((2, 1), jnp.int32)},
            {},
            jnp.arange(2),
            jnp.uint32(0),
            0,
        )


def numpy_shift(tokens, segments=None, lengths=None, ignore=-100):
    b, n = tokens.shape
    targets = np.full((b, n), ignore, np.int32)
    weights = np.zeros((b, n), np.float32)
    for i in range(b):
        for t in range(n - 1):
            if segments is not None and (
                segments[i, t] == 0 or segments[i, t] != segments[i, t + 1]
            ):
                continue
            if lengths is not None and t + 1 >= lengths[i]:
                continue
            targets[i, t], weights[i, t] = tokens[i, t + 1], 1.0
    return targets, weights


@given(
    batch=st.integers(1, 5),
    length=st.integers(1, 16),
    mode=st.sampled_from(["plain", "segments", "lengths"]),
    seed=st.integers(0, 5),
)
@settings(max_examples=20, deadline=None)
def test_causal_shift_equals_a_loop(batch, length, mode, seed):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 100, (batch, length)).astype(np.int32)
    # Packed rows: segments 1, 1, 2, 2, 2, 3, ... then padding 0.
    segments = (np.cumsum(rng.random((batch, length)) < 0.3, axis=1) + 1).astype(np.int32)
    used = rng.integers(0, length + 1, batch)
    segments[np.arange(length)[None] >= used[:, None]] = 0
    lengths = rng.integers(0, length + 1, batch).astype(np.int32)
    config = CausalLMShiftConfig(
        segment_field="segment_ids" if mode == "segments" else None,
        length_field="n" if mode == "lengths" else None,
    )
    out = apply(
        CausalLMShift(config),
        {"tokens": tokens, "segment_ids": segments, "n": lengths},
        np.arange(batch),
    )
    targets, weights = numpy_shift(
        tokens,
        segments if mode == "segments" else None,
        lengths if mode == "lengths" else None,
    )
    np.testing.assert_array_equal(out["targets"], targets)
    np.testing.assert_array_equal(out["target_weights"], weights)
    np.testing.assert_array_equal(out["tokens"], tokens)  # the inputs are left as they are
    assert out["targets"].dtype == np.int32 and out["target_weights"].dtype == np.float32


def test_causal_shift_errors():
    with pytest.raises(ConfigError, match=r"CausalLMShiftConfig: fields must have distinct names"):
        CausalLMShiftConfig(targets_field="tokens")
    with pytest.raises(
        ConfigError, match=r"CausalLMShiftConfig.segment_field: must be a field name"
    ):
        CausalLMShiftConfig(segment_field="")
    op = CausalLMShift(CausalLMShiftConfig(segment_field="seg"))
    with pytest.raises(
        SchemaError,
        match=(
            r"CausalLMShift, field 'seg': segment ids must match the tokens; "
            r"expected shape \(4,\) per record, found shape \(3,\)"
        ),
    ):
        op.apply_batch(
            {"tokens": jnp.zeros((2, 4), jnp.int32), "seg": jnp.zeros((2, 3), jnp.int32)},
            {},
            jnp.arange(2),
            jnp.uint32(0),
            0,
        )
    source = MemorySource(MemorySourceConfig(), data={"tokens": np.zeros((4, 3), np.int32)})
    with pytest.raises(SchemaError, match=r"CausalLMShift: field missing; expected a field 'seg'"):
        from_source(source, 2) >> OperatorNode(op)
    assert not CausalLMShift.is_stochastic(op.config)


def _lm_data():
    tokens, lengths = token_batch(40, 12, seed=9)
    segments = (np.arange(12)[None] < lengths[:, None]).astype(np.int32)
    return {"tokens": tokens, "n": lengths, "segment_ids": segments}


def test_mlm_in_a_pipeline():
    assert_operator_in_pipeline(lambda: mlm(length_field="n"), _lm_data())


def test_causal_shift_in_a_pipeline():
    config = CausalLMShiftConfig(segment_field="segment_ids", length_field="n")
    assert_operator_in_pipeline(lambda: CausalLMShift(config), _lm_data())
