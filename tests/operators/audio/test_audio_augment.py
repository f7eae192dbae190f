"""Audio augmentations (Gain, MixNoise, TimeShift, SpecAugment) against NumPy / librosa.

References and tolerances:
- Gain: ``x * librosa.db_to_amplitude(gain_db)``, rtol 1e-6 (float32).
- MixNoise: the SNR measured in NumPy (float64) from input and output,
  ``10 log10(P(x) / P(y - x))``, equals the record's SNR within 1e-3 dB (float32).
- TimeShift: ``numpy.roll`` (circular) and a zero-filled slice, exactly.
- SpecAugment: masked cells are whole frequency bands / frame runs, at most
  ``count`` of them, each at most ``max_width`` wide; every other cell is unchanged.
Gradients: ``jax.test_util.check_grads`` in float64 (``jax.enable_x64``) with
rtol/atol 1e-4 for the input; 2e-2 where a float32 parameter is involved.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
from audio_testing import apply, context, noise
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.operators.audio.gain import Gain, GainConfig
from datarax.operators.audio.noise import MixNoise, MixNoiseConfig
from datarax.operators.audio.shift import TimeShift, TimeShiftConfig
from datarax.operators.audio.specaugment import SpecAugment, SpecAugmentConfig

# ------------------------------------------------------------------------------ Gain


@pytest.mark.parametrize("shape", [(4, 160), (3, 2, 100)], ids=["mono", "stereo"])
@pytest.mark.parametrize("gain_db", [-12.0, 0.0, 6.5])
def test_gain_matches_librosa_db_to_amplitude(shape, gain_db):
    x = noise(shape)
    out = apply(Gain(GainConfig(gain_db=gain_db)), x)
    assert out.dtype == np.float32 and out.shape == x.shape
    expected = x.astype(np.float64) * librosa.db_to_amplitude(gain_db)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


def test_gain_keeps_a_low_precision_dtype():
    x = jnp.asarray(noise((2, 64)), jnp.bfloat16)
    out = apply(Gain(GainConfig(gain_db=6.0)), x)
    assert out.dtype == jnp.bfloat16
    expected = np.asarray(x, np.float64) * librosa.db_to_amplitude(6.0)
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=2**-7)


def test_gain_range_is_drawn_per_record_from_its_key():
    op = Gain(GainConfig(gain_db=(-10.0, 10.0)), rngs=nnx.Rngs(0))
    x = np.ones((64, 2, 8), np.float32)
    out = apply(op, x, ids=np.arange(64))
    gains = 20 * np.log10(out[:, 0, 0])
    np.testing.assert_allclose(out, out[:, :1, :1] * np.ones_like(out), rtol=1e-7)  # one per record
    assert gains.min() >= -10.0 - 1e-4 and gains.max() <= 10.0 + 1e-4
    assert len(np.unique(np.round(gains, 4))) == 64 and gains.std() > 4.0  # uniform: std 5.8
    # The same records in another order and batch give the same gains.
    again = apply(op, x[:16], ids=np.arange(64)[::-4])
    np.testing.assert_array_equal(again, out[::-4])


def _param_loss(op, *, count):
    """``loss(params, x)``: sum of squares of ``op``'s output, its parameters as an argument."""
    graphdef, params, rest = nnx.split(op, nnx.Param, ...)

    def loss(params, x):
        return jnp.sum(nnx.merge(graphdef, params, rest).transform(x, context(count)) ** 2)

    return loss, params


def test_gain_gradients_in_input_and_learnable_range():
    op = Gain(GainConfig(gain_db=(-3.0, 3.0), learnable=True), rngs=nnx.Rngs(1))
    assert isinstance(op.gain_db, nnx.Param)
    loss, params = _param_loss(op, count=3)
    x = jnp.asarray(noise((3, 32)))
    check_grads(jax.jit(loss), (params, x), order=1, modes=("rev",), atol=2e-2, rtol=2e-2)
    grads = jax.grad(loss)(params, x)
    assert np.all(np.abs(np.asarray(grads["gain_db"][...])) > 0)  # both ends of the range
    with jax.enable_x64(True):
        x64 = jnp.asarray(noise((2, 2, 16)), jnp.float64)
        fixed = Gain(GainConfig(gain_db=4.0))
        check_grads(
            jax.jit(lambda x: fixed.transform(x, context(2))), (x64,), order=2, atol=1e-4, rtol=1e-4
        )


def test_gain_without_a_range_needs_no_rngs_and_a_range_does():
    assert not Gain(GainConfig(gain_db=3.0)).stochastic
    assert not Gain(GainConfig(gain_db=(2.0, 2.0))).stochastic
    with pytest.raises(OperatorError, match="stochastic operator needs random keys"):
        Gain(GainConfig(gain_db=(0.0, 1.0)))


@pytest.mark.parametrize(
    "kw, where",
    [
        ({"gain_db": "loud"}, r"GainConfig\.gain_db: must be a number or a \(low, high\) pair"),
        ({"gain_db": (3.0, -3.0)}, r"GainConfig\.gain_db: must be a finite range"),
        ({"gain_db": float("nan")}, r"GainConfig\.gain_db"),
        ({"learnable": "yes"}, r"GainConfig\.learnable: must be a bool"),
        ({"field": ""}, r"GainConfig\.field: must be a field name"),
        ({"output_field": 3}, r"GainConfig\.output_field: must be a field name"),
    ],
)
def test_gain_config_errors(kw, where):
    with pytest.raises(ConfigError, match=where):
        GainConfig(**kw)


@pytest.mark.parametrize(
    "data, match",
    [
        (
            {"wave": np.zeros((2, 8), np.float32)},
            r"Gain: waveform field missing; expected a field 'audio'",
        ),
        (
            {"audio": np.zeros((2,), np.float32)},
            r"Gain, field 'audio': waveforms must be \(T,\) or \(C, T\)",
        ),
        (
            {"audio": np.zeros((2, 1, 1, 8), np.float32)},
            r"expected rank 1 or 2 per record, found shape \(1, 1, 8\)",
        ),
        (
            {"audio": np.zeros((2, 8), np.int16)},
            r"waveforms must be floating; expected a floating dtype.*found int16",
        ),
    ],
    ids=["missing", "rank0", "rank3", "int16"],
)
def test_waveform_schema_errors(data, match):
    op = Gain(GainConfig(gain_db=1.0))
    data = {k: jnp.asarray(v) for k, v in data.items()}
    with pytest.raises(SchemaError, match=match):
        op.apply_batch(data, {}, jnp.arange(2), jnp.uint32(0), 0)


def test_output_field_keeps_the_input():
    x = noise((2, 16))
    op = Gain(GainConfig(gain_db=20.0, output_field="louder"))
    out = op.apply_batch({"audio": jnp.asarray(x)}, {}, jnp.arange(2), jnp.uint32(0), 0)[0]
    np.testing.assert_array_equal(out["audio"], x)
    np.testing.assert_allclose(out["louder"], 10 * x, rtol=1e-6)


# -------------------------------------------------------------------------- MixNoise


def _measured_snr(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    axes = tuple(range(1, x.ndim))
    return 10 * np.log10(np.mean(x**2, axis=axes) / np.mean((y - x) ** 2, axis=axes))


@settings(max_examples=6, deadline=None)
@given(
    length=st.integers(16, 400),
    channels=st.sampled_from([None, 2]),
    snr=st.floats(-10.0, 40.0),
)
def test_white_noise_is_mixed_at_the_snr(length, channels, snr):
    shape = (5, length) if channels is None else (5, channels, length)
    x = noise(shape, seed=length)
    op = MixNoise(MixNoiseConfig(snr_db=snr), rngs=nnx.Rngs(2))
    y = apply(op, x)
    np.testing.assert_allclose(_measured_snr(x, y), snr, atol=1e-3)


def test_white_noise_is_gaussian_and_drawn_per_record():
    op = MixNoise(MixNoiseConfig(snr_db=0.0), rngs=nnx.Rngs(3))
    x = np.ones((32, 512), np.float32)
    out = apply(op, x)
    added = out - x
    # At 0 dB the added noise has unit power: its samples are N(0, 1) rescaled to power 1.
    np.testing.assert_allclose(np.mean(added**2, axis=1), 1.0, rtol=1e-4)
    assert abs(np.mean(added)) < 0.02 and abs(np.mean(added**4) - 3.0) < 0.15  # kurtosis 3
    corr = np.corrcoef(added)
    assert np.max(np.abs(corr - np.eye(32))) < 0.25  # records get different noise
    again = apply(op, x[:8], ids=np.arange(32)[5:13])
    np.testing.assert_array_equal(again, out[5:13])


def test_noise_field_is_scaled_to_the_snr_range():
    x, n = noise((40, 2, 128), seed=1), noise((40, 2, 128), seed=2, scale=2.0)
    op = MixNoise(MixNoiseConfig(snr_db=(0.0, 20.0), noise_field="noise"), rngs=nnx.Rngs(4))
    y = apply(op, x, extra={"noise": n})
    snrs = _measured_snr(x, y)
    assert snrs.min() >= -1e-3 and snrs.max() <= 20.0 + 1e-3 and snrs.std() > 3.0
    scale = (y - x) / n  # the added noise is the noise field, rescaled
    np.testing.assert_allclose(scale, scale[:, :1, :1] * np.ones_like(scale), rtol=1e-3)


def test_silence_stays_silent_and_silent_noise_adds_nothing():
    op = MixNoise(MixNoiseConfig(snr_db=10.0, noise_field="noise"))
    x = noise((2, 32))
    x[0] = 0.0
    n = noise((2, 32), seed=5)
    n[1] = 0.0
    y = apply(op, x, extra={"noise": n})
    np.testing.assert_array_equal(y, x)
    grad = jax.jit(
        jax.grad(lambda x: op.transform(x, context(2, data={"noise": jnp.asarray(n)})).sum())
    )
    assert np.all(np.isfinite(grad(jnp.asarray(x))))


def test_mix_noise_gradients_in_input_noise_and_learnable_snr():
    with jax.enable_x64(True):
        x = jnp.asarray(noise((3, 48)), jnp.float64)
        n = jnp.asarray(noise((3, 48), seed=7), jnp.float64)
        fixed = MixNoise(MixNoiseConfig(snr_db=5.0, noise_field="noise"))
        f = lambda x, n: fixed.transform(x, context(3, data={"noise": n}))  # noqa: E731
        check_grads(jax.jit(f), (x, n), order=1, modes=("rev",), atol=1e-4, rtol=1e-4)
        white = MixNoise(MixNoiseConfig(snr_db=5.0), rngs=nnx.Rngs(0))
        check_grads(
            jax.jit(lambda x: white.transform(x, context(3))),
            (x,),
            1,
            modes=("rev",),
            atol=1e-4,
            rtol=1e-4,
        )
    op = MixNoise(MixNoiseConfig(snr_db=(0.0, 10.0), learnable=True), rngs=nnx.Rngs(6))
    loss, params = _param_loss(op, count=3)
    check_grads(
        loss, (params, jnp.asarray(noise((3, 48)))), order=1, modes=("rev",), atol=2e-2, rtol=2e-2
    )


def test_mix_noise_schema_and_config_errors():
    op = MixNoise(MixNoiseConfig(noise_field="noise"))
    assert not op.stochastic
    data = {"audio": jnp.zeros((2, 16)), "noise": jnp.zeros((2, 8))}
    with pytest.raises(
        SchemaError,
        match=r"MixNoise, field 'noise': noise must have the waveform's shape; "
        r"expected shape \(16,\) per record, found shape \(8,\)",
    ):
        op.apply_batch(data, {}, jnp.arange(2), jnp.uint32(0), 0)
    with pytest.raises(
        SchemaError, match=r"MixNoise: waveform field missing; expected a field 'noise'"
    ):
        op.apply_batch({"audio": jnp.zeros((2, 16))}, {}, jnp.arange(2), jnp.uint32(0), 0)
    with pytest.raises(
        ConfigError, match=r"MixNoiseConfig\.noise_field: must be a field name or None"
    ):
        MixNoiseConfig(noise_field="")
    with pytest.raises(ConfigError, match=r"MixNoiseConfig\.snr_db"):
        MixNoiseConfig(snr_db=(10.0, 0.0))
    with pytest.raises(OperatorError, match="rngs"):
        MixNoise(MixNoiseConfig(snr_db=3.0))  # white noise is random


# ------------------------------------------------------------------------- TimeShift


def _zero_shift(x, s):
    out = np.zeros_like(x)
    if s >= 0:
        out[..., s:] = x[..., : x.shape[-1] - s]
    else:
        out[..., :s] = x[..., -s:]
    return out


@settings(max_examples=12, deadline=None)
@given(
    length=st.integers(4, 300),
    shift=st.integers(-400, 400),
    mode=st.sampled_from(["circular", "zero"]),
    channels=st.sampled_from([None, 3]),
)
def test_fixed_shift_matches_numpy(length, shift, mode, channels):
    shape = (2, length) if channels is None else (2, channels, length)
    x = noise(shape, seed=length)
    out = apply(TimeShift(TimeShiftConfig(shift=shift, mode=mode)), x)
    s = max(-length, min(length, shift))
    expected = np.roll(x, shift, axis=-1) if mode == "circular" else _zero_shift(x, s)
    np.testing.assert_array_equal(out, expected)


def test_fraction_shift_rounds_to_samples():
    x = noise((2, 100))
    out = apply(TimeShift(TimeShiftConfig(shift=-0.254, unit="fraction", mode="zero")), x)
    np.testing.assert_array_equal(out, _zero_shift(x, -25))


def test_shift_range_draws_every_int_per_record():
    op = TimeShift(TimeShiftConfig(shift=(-3, 3)), rngs=nnx.Rngs(0))
    x = np.broadcast_to(np.arange(50, dtype=np.float32), (200, 50))
    out = apply(op, x)
    shifts = (-out[:, 0].astype(int)) % 50  # out[t] = x[t - s], so out[0] = -s mod 50
    shifts = np.where(shifts > 25, shifts - 50, shifts).astype(int)
    for row, s in zip(out, shifts, strict=True):
        np.testing.assert_array_equal(row, np.roll(x[0], s))
    counts = np.bincount(shifts + 3, minlength=7)
    assert set(shifts) == set(range(-3, 4)) and counts.min() > 12  # ~28.6 each
    again = apply(op, x[:10], ids=np.arange(200)[100:110])
    np.testing.assert_array_equal(again, out[100:110])


def test_time_shift_gradient_in_input():
    with jax.enable_x64(True):
        op = TimeShift(TimeShiftConfig(shift=5, mode="zero"))
        x = jnp.asarray(noise((2, 2, 20)), jnp.float64)
        check_grads(
            jax.jit(lambda x: op.transform(x, context(2))), (x,), order=1, atol=1e-6, rtol=1e-6
        )


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"shift": 1.5}, r"TimeShiftConfig\.shift: shift in samples must be ints"),
        ({"shift": (1, 2.5)}, r"TimeShiftConfig\.shift: shift in samples must be ints"),
        (
            {"shift": 2.0, "unit": "fraction"},
            r"TimeShiftConfig\.shift: out of range; expected values in \[-1.0, 1.0\]",
        ),
        (
            {"mode": "wrap"},
            r"TimeShiftConfig\.mode: unknown option; expected 'circular' or 'zero', found 'wrap'",
        ),
        ({"unit": "seconds"}, r"TimeShiftConfig\.unit: unknown option"),
    ],
)
def test_time_shift_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        TimeShiftConfig(**kw)


# ----------------------------------------------------------------------- SpecAugment


def _runs(mask):
    """(start, length) of each run of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts, ends - starts, strict=True))


def _check_masks(x, out, cfg):
    """Masked cells of each record: whole rows (bands) or columns (frames), within limits."""
    masked = out == cfg.mask_value
    assert not np.any(x == cfg.mask_value)
    np.testing.assert_array_equal(out[~masked], x[~masked])
    masked = masked.reshape((-1,) + masked.shape[-3:]) if masked.ndim == 4 else masked[:, None]
    rows_all, cols_all = [], []
    for record in masked:
        assert np.all(record == record[:1])  # same masks in every channel
        cell = record[0]
        rows, cols = cell.all(axis=1), cell.all(axis=0)
        np.testing.assert_array_equal(cell, rows[:, None] | cols[None, :])
        for band, count, width in (
            (rows, cfg.freq_masks, cfg.freq_max_width),
            (cols, cfg.time_masks, cfg.time_max_width),
        ):
            runs = _runs(band)
            assert len(runs) <= count and band.sum() <= count * width
        rows_all.append(rows)
        cols_all.append(cols)
    return np.array(rows_all), np.array(cols_all)


@settings(max_examples=6, deadline=None)
@given(
    bins=st.integers(8, 40),
    frames=st.integers(12, 40),
    freq=st.tuples(st.integers(0, 3), st.integers(0, 6)),
    time=st.tuples(st.integers(0, 3), st.integers(0, 5)),
    channels=st.sampled_from([None, 2]),
)
def test_spec_augment_masks_bands_and_frames_within_limits(bins, frames, freq, time, channels):
    cfg = SpecAugmentConfig(
        freq_masks=freq[0],
        freq_max_width=freq[1],
        time_masks=time[0],
        time_max_width=time[1],
        mask_value=-1.0,
    )
    shape = (6, bins, frames) if channels is None else (6, channels, bins, frames)
    x = np.random.default_rng(bins).uniform(1.0, 2.0, shape).astype(np.float32)
    op = SpecAugment(cfg, rngs=nnx.Rngs(0))
    out = apply(op, x, field="spectrogram")
    _check_masks(x, out, cfg)


def test_spec_augment_widths_and_starts_are_uniform_per_record():
    cfg = SpecAugmentConfig(freq_masks=1, freq_max_width=4, time_masks=0, mask_value=-1.0)
    op = SpecAugment(cfg, rngs=nnx.Rngs(1))
    x = np.random.default_rng(0).uniform(1.0, 2.0, (500, 10, 6)).astype(np.float32)
    out = apply(op, x, field="spectrogram")
    rows, _ = _check_masks(x, out, cfg)
    widths = rows.sum(axis=1)
    counts = np.bincount(widths, minlength=5)
    assert counts.min() > 70  # 0..4 bins, 100 each
    starts = [r[0][0] for row in rows if (r := _runs(row))]
    assert set(starts) == set(range(10))
    ids = np.arange(500)[::-71]
    again = apply(op, x[ids], ids=ids, field="spectrogram")
    np.testing.assert_array_equal(again, out[ids])


def test_spec_augment_identity_without_masks_and_gradient_in_input():
    op = SpecAugment(SpecAugmentConfig(freq_masks=0, time_max_width=0))
    assert not op.stochastic
    x = noise((2, 8, 10))
    np.testing.assert_array_equal(apply(op, x, field="spectrogram"), x)
    masked = SpecAugment(SpecAugmentConfig(freq_max_width=3, time_max_width=3), rngs=nnx.Rngs(2))
    w = jnp.asarray(noise((4, 8, 10), seed=3))
    grad_fn = jax.jit(jax.grad(lambda x: jnp.sum(masked.transform(x, context(4)) * w)))
    grad = grad_fn(jnp.asarray(x[:1].repeat(4, 0) + 5))
    out = apply(masked, np.full((4, 8, 10), 5.0, np.float32), field="spectrogram")
    np.testing.assert_array_equal(grad, np.where(out == 0.0, 0.0, w))


def test_spec_augment_errors():
    with pytest.raises(
        ConfigError, match=r"SpecAugmentConfig\.freq_masks: must be a non-negative integer"
    ):
        SpecAugmentConfig(freq_masks=-1)
    with pytest.raises(ConfigError, match=r"SpecAugmentConfig\.time_max_width"):
        SpecAugmentConfig(time_max_width=2.5)
    with pytest.raises(
        ConfigError,
        match=r"SpecAugmentConfig\.mask_value: must be a number; expected a finite number",
    ):
        SpecAugmentConfig(mask_value=float("inf"))
    op = SpecAugment(SpecAugmentConfig(), rngs=nnx.Rngs(0))
    with pytest.raises(
        SchemaError,
        match=r"SpecAugment, field 'spectrogram': "
        r"spectrograms must be \(F, N\) or \(C, F, N\) per record",
    ):
        op.apply_batch({"spectrogram": jnp.zeros((2, 16))}, {}, jnp.arange(2), jnp.uint32(0), 0)
