"""Every audio operator passes the in-pipeline check (tests/operators/in_pipeline.py).

40 records of 1024 samples (64 ms at 16 kHz), stereo for some operators; per
record: the same output at batch sizes 16 and 32, exact resume at every step,
no compilation in the second epoch.
"""

from __future__ import annotations

import numpy as np
import pytest
from audio_testing import SR, assert_operator_in_pipeline, chirp_mix, noise
from flax import nnx

from datarax.operators.audio.gain import Gain, GainConfig
from datarax.operators.audio.loudness import AWeightedLoudness, AWeightedLoudnessConfig
from datarax.operators.audio.mel import MFCC, MelSpectrogram, MelSpectrogramConfig, MFCCConfig
from datarax.operators.audio.noise import MixNoise, MixNoiseConfig
from datarax.operators.audio.resample import Resample, ResampleConfig
from datarax.operators.audio.shift import TimeShift, TimeShiftConfig
from datarax.operators.audio.specaugment import SpecAugment, SpecAugmentConfig
from datarax.operators.audio.spectral import STFT, Spectrogram, SpectrogramConfig, STFTConfig

RECORDS = 40
STFT_KW = dict(n_fft=256, hop_length=128)

MAKERS = {
    "gain-range": lambda: Gain(GainConfig(gain_db=(-6.0, 6.0)), rngs=nnx.Rngs(1)),
    "gain-learnable": lambda: Gain(GainConfig(gain_db=3.0, learnable=True)),
    "white-noise": lambda: MixNoise(MixNoiseConfig(snr_db=(5.0, 30.0)), rngs=nnx.Rngs(2)),
    "noise-field": lambda: MixNoise(MixNoiseConfig(snr_db=10.0, noise_field="noise")),
    "time-shift": lambda: TimeShift(
        TimeShiftConfig(shift=(-0.25, 0.25), unit="fraction", mode="zero"), rngs=nnx.Rngs(3)
    ),
    "resample": lambda: Resample(ResampleConfig(orig_sr=SR, target_sr=22050)),
    "stft": lambda: STFT(STFTConfig(**STFT_KW)),
    "spectrogram": lambda: Spectrogram(SpectrogramConfig(**STFT_KW, power=1.0)),
    "mel": lambda: MelSpectrogram(
        MelSpectrogramConfig(sample_rate=SR, **STFT_KW, n_mels=32, learnable=True)
    ),
    "mfcc": lambda: MFCC(MFCCConfig(sample_rate=SR, **STFT_KW, n_mels=32, n_mfcc=13)),
    "loudness": lambda: AWeightedLoudness(AWeightedLoudnessConfig(sample_rate=SR, **STFT_KW)),
    "spec-augment": lambda: SpecAugment(
        SpecAugmentConfig(freq_max_width=6, time_max_width=4), rngs=nnx.Rngs(4)
    ),
}
STEREO = {"time-shift", "resample", "mel"}


def _data(name):
    audio = chirp_mix(RECORDS, 1024) + noise((RECORDS, 1024), scale=0.05)
    if name in STEREO:
        audio = np.stack([audio, audio[::-1]], axis=1)
    data = {"audio": audio, "label": np.arange(RECORDS, dtype=np.int32)}
    if name == "noise-field":
        data["noise"] = noise((RECORDS, 1024), seed=9)
    if name == "spec-augment":
        data["spectrogram"] = noise((RECORDS, 2, 24, 16), seed=8)
    return data


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_audio_operator_in_pipeline(name):
    assert_operator_in_pipeline(MAKERS[name], _data(name))
