"""Audio features and resampling against librosa and SciPy.

References and tolerances (float32 operators against float64 references on float32
input; "rel" is relative to the largest reference magnitude of the batch):
- STFT: ``librosa.stft``, rel 1e-5 (elementwise atol = 1e-5 * max |ref|).
- Spectrogram: ``np.abs(librosa.stft(y)) ** power``, rtol 1e-4 / rel 1e-5 (1e-4 for power 0.5).
- MelSpectrogram: ``librosa.feature.melspectrogram``, rtol 1e-4 / rel 1e-5; the
  filterbank equals ``librosa.filters.mel`` (float64) to 1e-12.
- MFCC: ``librosa.feature.mfcc`` (log-mel in dB, DCT-II ortho), atol 2e-5 * max |ref|
  (values reach hundreds; float32 log10 and DCT), 2e-3 absolute for the stereo case.
- AWeightedLoudness: ``librosa.perceptual_weighting(kind="A")`` of the librosa
  power spectrogram, integrated over bins, atol 1e-3 dB; pure tones measure
  ``20 log10(a / sqrt(2)) + A(f)`` (IEC 61672 A(f) at 100 Hz, 1 kHz, 4 kHz) within 0.1 dB.
- Resample: ``scipy.signal.resample_poly`` and ``librosa.resample(res_type="polyphase")``
  to atol 1e-5; ``librosa.resample(res_type="soxr_hq")`` to atol 3e-3 away from the
  clip's ends, on band-limited tones (the filters differ).
Gradients: ``jax.test_util.check_grads`` in float64 (``jax.enable_x64``), atol/rtol 1e-4
(the input) and 2e-2 for the float32 learnable filterbank.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.signal
from audio_testing import SR, apply, chirp_mix, context, noise
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.audio.filters import a_weighting, dct_matrix, mel_filterbank
from datarax.operators.audio.loudness import AWeightedLoudness, AWeightedLoudnessConfig
from datarax.operators.audio.mel import MFCC, MelSpectrogram, MelSpectrogramConfig, MFCCConfig
from datarax.operators.audio.resample import Resample, ResampleConfig
from datarax.operators.audio.spectral import STFT, Spectrogram, SpectrogramConfig, STFTConfig


def assert_close_rel(out, ref, *, rel=1e-5, rtol=1e-4):
    """Elementwise ``|out - ref| <= rtol |ref| + rel * max |ref|``."""
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=rel * np.max(np.abs(ref)))


# ------------------------------------------------------------------------------ STFT


@pytest.mark.slow
@settings(max_examples=10, deadline=None)
@given(
    length=st.integers(300, 1600),
    n_fft=st.sampled_from([64, 200, 255, 256]),
    hop=st.sampled_from([None, 37, 64]),
    win_fraction=st.sampled_from([None, 0.5, 0.8]),
    window=st.sampled_from(["hann", "hamming", "blackman", "boxcar"]),
    center=st.booleans(),
    pad_mode=st.sampled_from(["constant", "reflect", "edge"]),
    channels=st.sampled_from([None, 2]),
)
def test_stft_matches_librosa(length, n_fft, hop, win_fraction, window, center, pad_mode, channels):
    win_length = None if win_fraction is None else int(n_fft * win_fraction)
    kw = dict(n_fft=n_fft, hop_length=hop, win_length=win_length, window=window, center=center)
    kw["pad_mode"] = pad_mode
    shape = (3, length) if channels is None else (3, channels, length)
    x = noise(shape, seed=length)
    out = apply(STFT(STFTConfig(**kw)), x)
    assert out.dtype == np.complex64
    assert_close_rel(out, librosa.stft(x.astype(np.float64), **kw), rtol=0)


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_spectrogram_of_a_chirp_matches_librosa(power):
    x = chirp_mix(2, 1600)  # 0.1 s at 16 kHz
    op = Spectrogram(SpectrogramConfig(n_fft=256, hop_length=64, power=power))
    ref = np.abs(librosa.stft(x.astype(np.float64), n_fft=256, hop_length=64)) ** power
    out = apply(op, x)
    assert out.dtype == np.float32
    # |S| ** 0.5 magnifies float32 rounding of near-empty bins: rel 1e-4 there.
    assert_close_rel(out, ref, rel=1e-5 if power >= 1 else 1e-4)


def test_stft_and_spectrogram_gradients_in_input():
    with jax.enable_x64(True):
        x = jnp.asarray(noise((2, 96)), jnp.float64)
        stft = STFT(STFTConfig(n_fft=32, hop_length=8, pad_mode="reflect"))
        parts = jax.jit(lambda x: jnp.stack([(s := stft.transform(x, context(2))).real, s.imag]))
        check_grads(parts, (x,), order=1, atol=1e-4, rtol=1e-4)
        spec = Spectrogram(SpectrogramConfig(n_fft=32, hop_length=8, power=2.0))
        check_grads(jax.jit(lambda x: spec.transform(x, context(2))), (x,), 1, atol=1e-4, rtol=1e-4)


def test_stft_too_short_without_centering_is_a_schema_error():
    op = STFT(STFTConfig(n_fft=256, center=False))
    with pytest.raises(
        SchemaError,
        match=r"STFT, field 'audio': waveform shorter than one frame; "
        r"expected at least n_fft = 256 samples \(or center=True\), found 100 samples",
    ):
        op.apply_batch({"audio": jnp.zeros((2, 100))}, {}, jnp.arange(2), jnp.uint32(0), 0)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"n_fft": 0}, r"STFTConfig\.n_fft: must be a positive integer"),
        ({"hop_length": 0}, r"STFTConfig\.hop_length: must be a positive integer"),
        ({"n_fft": 64, "win_length": 65}, r"STFTConfig\.win_length: window longer than the FFT"),
        ({"window": "kaiser"}, r"STFTConfig\.window: unknown option; expected 'hann' or"),
        ({"pad_mode": "mean"}, r"STFTConfig\.pad_mode: unknown option"),
        ({"center": 1}, r"STFTConfig\.center: must be a bool"),
    ],
)
def test_stft_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        STFTConfig(**kw)


def test_spectrogram_config_rejects_a_non_positive_power():
    with pytest.raises(
        ConfigError,
        match=r"SpectrogramConfig\.power: out of range; expected a finite number > 0, found 0\.0",
    ):
        SpectrogramConfig(power=0.0)


# ----------------------------------------------------------------------------- Mel


@pytest.mark.parametrize(
    "kw",
    [
        dict(sr=16000, n_fft=512, n_mels=40),
        dict(sr=22050, n_fft=256, n_mels=20, htk=True, norm=None, fmin=50.0, fmax=8000.0),
        dict(sr=16000, n_fft=400, n_mels=64, norm=2.0),
        dict(sr=16000, n_fft=400, n_mels=30, norm=np.inf, htk=True),
        dict(sr=8000, n_fft=128, n_mels=10, norm=1),
    ],
)
def test_mel_filterbank_equals_librosa(kw):
    ref = librosa.filters.mel(dtype=np.float64, **kw)
    kw = dict(kw)
    out = mel_filterbank(kw.pop("sr"), kw.pop("n_fft"), **kw)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_dct_and_a_weighting_equal_their_references():
    x = noise((40, 3)).astype(np.float64)
    np.testing.assert_allclose(dct_matrix(13, 40) @ x, scipy.fft.dct(x, axis=0, norm="ortho")[:13])
    np.testing.assert_allclose(dct_matrix(13, 40, norm=None) @ x, scipy.fft.dct(x, axis=0)[:13])
    freqs = np.linspace(0.0, 12000.0, 97)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # librosa's log10(0) at 0 Hz
        np.testing.assert_allclose(a_weighting(freqs), librosa.A_weighting(freqs), atol=1e-12)
        ref = librosa.A_weighting(freqs, min_db=None)
    np.testing.assert_allclose(a_weighting(freqs, min_db=None)[1:], ref[1:], atol=1e-12)


@pytest.mark.filterwarnings("ignore:Empty filters detected:UserWarning")
@settings(max_examples=8, deadline=None)
@given(
    length=st.integers(400, 1600),
    n_fft=st.sampled_from([128, 256, 400]),
    n_mels=st.integers(8, 48),
    htk=st.booleans(),
    norm=st.sampled_from(["slaney", None, 2.0]),
    band=st.sampled_from([(0.0, None), (60.0, 7000.0)]),
    power=st.sampled_from([1.0, 2.0]),
)
def test_mel_spectrogram_matches_librosa(length, n_fft, n_mels, htk, norm, band, power):
    kw = dict(n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, htk=htk, norm=norm, power=power)
    kw.update(fmin=band[0], fmax=band[1])
    x = noise((2, length), seed=n_mels)
    out = apply(MelSpectrogram(MelSpectrogramConfig(sample_rate=SR, **kw)), x)
    ref = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=SR, **kw)
    assert_close_rel(out, ref)


def test_mel_spectrogram_of_a_stereo_chirp_matches_librosa():
    x = chirp_mix(4, 1600).reshape(2, 2, 1600)
    op = MelSpectrogram(MelSpectrogramConfig(sample_rate=SR, n_fft=256, hop_length=128, n_mels=32))
    ref = librosa.feature.melspectrogram(
        y=x.astype(np.float64), sr=SR, n_fft=256, hop_length=128, n_mels=32
    )
    assert_close_rel(apply(op, x), ref)


@pytest.mark.parametrize("batch", [7, 8])  # uneven: the last group is padded
@pytest.mark.parametrize("unrolled", [8, 0])  # groups side by side, or one lax.map
def test_batches_larger_than_a_group_give_what_whole_batches_give(monkeypatch, batch, unrolled):
    import datarax.operators.audio.spectral as spectral

    x = jnp.asarray(chirp_mix(batch, 1600).reshape(batch, 1600))
    ops = [
        STFT(STFTConfig(n_fft=256, hop_length=128)),
        MelSpectrogram(MelSpectrogramConfig(sample_rate=SR, n_fft=256, hop_length=128, n_mels=32)),
        MFCC(MFCCConfig(sample_rate=SR, n_fft=256, hop_length=128, n_mels=32, n_mfcc=13)),
    ]
    # called directly, not compiled: a compiled call would not see the patched size
    whole = [np.asarray(op.transform(x, context(batch))) for op in ops]
    record_frames = (1 + 1600 // 128) * 256 * 4
    monkeypatch.setattr(spectral, "GROUP_FRAME_BYTES", 3 * record_frames)  # groups of <= 3
    monkeypatch.setattr(spectral, "MAX_UNROLLED_GROUPS", unrolled)
    calls = []
    original = jax.lax.map
    monkeypatch.setattr(jax.lax, "map", lambda f, xs: calls.append(xs.shape) or original(f, xs))
    for op, expected in zip(ops, whole, strict=True):
        got = np.asarray(op.transform(x, context(batch)))
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    # three groups of three records (with padding for 7)
    assert calls == ([] if unrolled else [(3, 3, 1600)] * 3)


def test_mel_gradients_in_input_and_learnable_filterbank():
    cfg = dict(sample_rate=SR, n_fft=64, hop_length=16, n_mels=8)
    with jax.enable_x64(True):
        x = jnp.asarray(noise((2, 128)), jnp.float64)
        op = MelSpectrogram(MelSpectrogramConfig(**cfg))
        check_grads(jax.jit(lambda x: op.transform(x, context(2))), (x,), 1, atol=1e-4, rtol=1e-4)
    learnable = MelSpectrogram(MelSpectrogramConfig(**cfg, learnable=True))
    np.testing.assert_allclose(
        learnable.filterbank[...], MelSpectrogramConfig(**cfg).filterbank(), rtol=1e-6
    )
    graphdef, params, rest = nnx.split(learnable, nnx.Param, ...)
    x32 = jnp.asarray(noise((2, 128)))

    def loss(params):
        return jnp.sum(jnp.log1p(nnx.merge(graphdef, params, rest).transform(x32, context(2))))

    check_grads(jax.jit(loss), (params,), 1, modes=("rev",), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize(
    "kw, match",
    [
        (
            {"sample_rate": -1},
            r"MelSpectrogramConfig\.sample_rate: out of range; expected a finite number > 0",
        ),
        ({"n_mels": 0}, r"MelSpectrogramConfig\.n_mels: must be a positive integer"),
        ({"fmin": 9000.0, "sample_rate": 16000}, r"MelSpectrogramConfig\.fmin: empty frequency"),
        ({"norm": "l2"}, r"MelSpectrogramConfig\.norm: unknown filter norm"),
        ({"norm": 0.5}, r"MelSpectrogramConfig\.norm: unknown filter norm"),
        ({"learnable": None}, r"MelSpectrogramConfig\.learnable: must be a bool"),
    ],
)
def test_mel_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        MelSpectrogramConfig(**kw)


# ---------------------------------------------------------------------------- MFCC


def _reference_mfcc(record, *, n_mfcc=20, dct_norm="ortho", lifter=0, top_db=80.0, **mel_kw):
    """librosa's MFCC of one record; ``power_to_db`` floors at the peak of what it gets."""
    mel = librosa.feature.melspectrogram(y=record.astype(np.float64), sr=SR, **mel_kw)
    log_mel = librosa.power_to_db(mel, top_db=top_db)
    return librosa.feature.mfcc(S=log_mel, n_mfcc=n_mfcc, norm=dct_norm, lifter=lifter)


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_mfcc=13, n_mels=40),
        dict(n_mfcc=20, lifter=22, n_mels=40, htk=True),
        dict(n_mfcc=10, dct_norm=None, top_db=None, n_mels=24),
        dict(n_mfcc=16, top_db=20.0, norm=None, n_mels=40),
    ],
    ids=["default", "lifter-htk", "no-norm", "top-db-20"],
)
@pytest.mark.parametrize("signal", ["chirp", "noise"])
def test_mfcc_matches_librosa(kw, signal):
    x = chirp_mix(3, 1600) if signal == "chirp" else noise((3, 1600))
    stft = dict(n_fft=256, hop_length=80)
    out = apply(MFCC(MFCCConfig(sample_rate=SR, **stft, **kw)), x)
    ref = np.stack([_reference_mfcc(r, **stft, **kw) for r in x])
    # Without a floor, near-empty bands of the chirp reach -100 dB, where float32 power is
    # coarse: rel 2e-5 of the largest coefficient.
    assert_close_rel(out, ref, rel=2e-5, rtol=0)


def test_mfcc_of_stereo_floors_at_the_record_peak_over_channels():
    x = noise((2, 2, 800))
    x[:, 1] *= 1e-3  # 60 dB quieter: a 40 dB floor binds on channel 1 only
    kw = dict(n_fft=128, hop_length=64, n_mels=20, n_mfcc=12, top_db=40.0)
    out = apply(MFCC(MFCCConfig(sample_rate=SR, **kw)), x)
    ref = np.stack([_reference_mfcc(r, **kw) for r in x])
    np.testing.assert_allclose(out, ref, atol=2e-3, rtol=0)


def test_mfcc_gradient_in_input():
    with jax.enable_x64(True):
        op = MFCC(MFCCConfig(sample_rate=SR, n_fft=64, hop_length=32, n_mels=10, n_mfcc=5))
        x = jnp.asarray(noise((2, 128)), jnp.float64)
        check_grads(jax.jit(lambda x: op.transform(x, context(2))), (x,), 1, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"n_mfcc": 50, "n_mels": 40}, r"MFCCConfig\.n_mfcc: more coefficients than mel bands"),
        ({"dct_norm": "forward"}, r"MFCCConfig\.dct_norm: unknown option"),
        ({"lifter": -1}, r"MFCCConfig\.lifter: must be a non-negative integer"),
        (
            {"top_db": 0.0},
            r"MFCCConfig\.top_db: out of range; expected a finite number > 0 or None, found 0\.0",
        ),
        ({"amin": 0.0}, r"MFCCConfig\.amin"),
    ],
)
def test_mfcc_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        MFCCConfig(**kw)


# ------------------------------------------------------------------------ Loudness


def _reference_loudness(x, *, n_fft, hop_length, center=True):
    power = (
        np.abs(
            librosa.stft(x.astype(np.float64), n_fft=n_fft, hop_length=hop_length, center=center)
        )
        ** 2
    )
    freqs = librosa.fft_frequencies(sr=SR, n_fft=n_fft)
    with np.errstate(divide="ignore"):  # librosa's log10(0) at 0 Hz, floored at -80 dB
        weighted_db = librosa.perceptual_weighting(
            power, freqs[:, None], kind="A", ref=1.0, amin=1e-30, top_db=None
        )
    twice = np.where((freqs > 0) & (freqs < SR / 2), 2.0, 1.0)[:, None]
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    frame_power = np.sum(twice * 10 ** (weighted_db / 10), axis=-2) / (n_fft * np.sum(window**2))
    return 10 * np.log10(np.maximum(frame_power, 1e-10))


@pytest.mark.parametrize("signal", ["chirp", "noise"])
def test_loudness_matches_librosa_perceptual_weighting(signal):
    x = chirp_mix(3, 1600) if signal == "chirp" else noise((3, 1600))
    op = AWeightedLoudness(AWeightedLoudnessConfig(sample_rate=SR, n_fft=256, hop_length=64))
    out = apply(op, x)
    assert out.shape == (3, 26) and op.config.target == "loudness"
    ref = _reference_loudness(x, n_fft=256, hop_length=64)
    np.testing.assert_allclose(out, ref, atol=1e-3, rtol=0)


@pytest.mark.parametrize("freq, amplitude", [(100.0, 1.0), (1000.0, 0.5), (4000.0, 0.1)])
def test_loudness_of_pure_tones_follows_the_a_curve(freq, amplitude):
    t = np.arange(4096) / SR
    x = (amplitude * np.sin(2 * np.pi * freq * t))[None].astype(np.float32)
    cfg = AWeightedLoudnessConfig(
        sample_rate=SR, n_fft=2048, hop_length=512, center=False, reduce="mean"
    )
    out = apply(AWeightedLoudness(cfg), x)
    assert out.shape == (1,)
    iec = {100.0: -19.1, 1000.0: 0.0, 4000.0: 1.0}[freq]  # IEC 61672-1 table, dB
    expected = 20 * np.log10(amplitude / np.sqrt(2)) + iec
    np.testing.assert_allclose(out[0], expected, atol=0.1)


def test_loudness_of_stereo_keeps_channels_and_gradient_in_input():
    x = chirp_mix(4, 800).reshape(2, 2, 800)
    cfg = AWeightedLoudnessConfig(sample_rate=SR, n_fft=128, hop_length=64, output_field="level")
    out = apply(AWeightedLoudness(cfg), x)
    ref = _reference_loudness(x, n_fft=128, hop_length=64)
    np.testing.assert_allclose(out, ref, atol=1e-3, rtol=0)
    with jax.enable_x64(True):
        op = AWeightedLoudness(AWeightedLoudnessConfig(sample_rate=SR, n_fft=32, hop_length=16))
        x64 = jnp.asarray(noise((2, 64)), jnp.float64)
        check_grads(jax.jit(lambda x: op.transform(x, context(2))), (x64,), 1, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"reduce": "max"}, r"AWeightedLoudnessConfig\.reduce: unknown option"),
        (
            {"sample_rate": 0},
            r"AWeightedLoudnessConfig\.sample_rate: out of range; expected a finite number > 0",
        ),
        (
            {"min_db": "low"},
            r"AWeightedLoudnessConfig\.min_db: must be a number; expected .* or None, found 'low'",
        ),
        ({"output_field": ""}, r"AWeightedLoudnessConfig\.output_field: must be a field name"),
    ],
)
def test_loudness_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        AWeightedLoudnessConfig(**kw)


# ------------------------------------------------------------------------ Resample


@settings(max_examples=10, deadline=None)
@given(
    rates=st.sampled_from(
        [(16000, 8000), (8000, 16000), (44100, 16000), (16000, 22050), (48000, 44100), (3, 2)]
    ),
    length=st.integers(10, 700),
    channels=st.sampled_from([None, 2]),
)
def test_resample_matches_scipy_and_librosa_polyphase(rates, length, channels):
    orig, target = rates
    shape = (2, length) if channels is None else (2, channels, length)
    x = noise(shape, seed=length)
    out = apply(Resample(ResampleConfig(orig_sr=orig, target_sr=target)), x)
    up, down = ResampleConfig(orig_sr=orig, target_sr=target).factor
    ref = scipy.signal.resample_poly(x.astype(np.float64), up, down, axis=-1)
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
    poly = librosa.resample(x, orig_sr=orig, target_sr=target, res_type="polyphase")
    np.testing.assert_allclose(out, poly, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rates", [(16000, 8000), (16000, 22050), (44100, 16000)])
def test_resample_agrees_with_soxr_on_band_limited_tones(rates):
    orig, target = rates
    t = np.arange(1600) / orig
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1500 * t))[None]
    out = apply(Resample(ResampleConfig(orig_sr=orig, target_sr=target)), x.astype(np.float32))
    ref = librosa.resample(x, orig_sr=orig, target_sr=target, res_type="soxr_hq")
    assert out.shape == ref.shape
    inner = slice(ref.shape[-1] // 5, 4 * ref.shape[-1] // 5)
    np.testing.assert_allclose(out[:, inner], ref[:, inner], atol=3e-3, rtol=0)


def test_resample_identity_gradient_and_errors():
    x = noise((2, 50))
    np.testing.assert_array_equal(apply(Resample(ResampleConfig(orig_sr=8, target_sr=8)), x), x)
    with jax.enable_x64(True):
        op = Resample(ResampleConfig(orig_sr=3, target_sr=2))
        x64 = jnp.asarray(x, jnp.float64)
        check_grads(jax.jit(lambda x: op.transform(x, context(2))), (x64,), 1, atol=1e-6, rtol=1e-6)
    with pytest.raises(ConfigError, match=r"ResampleConfig\.orig_sr: must be a positive integer"):
        ResampleConfig(orig_sr=0)
    with pytest.raises(ConfigError, match=r"ResampleConfig\.target_sr: must be a positive integer"):
        ResampleConfig(target_sr=16000.5)
    with pytest.raises(
        ConfigError,
        match=r"ResampleConfig\.kaiser_beta: out of range; expected a finite number in \[0, inf\]",
    ):
        ResampleConfig(kaiser_beta=-1.0)
