"""Audio operators on the device plane: waveforms ``(B, T)`` or ``(B, C, T)``, time last.

Augmentations (`Gain`, `MixNoise`, `TimeShift`, `SpecAugment`), resampling
(`Resample`) and features (`STFT`, `Spectrogram`, `MelSpectrogram`, `MFCC`,
`AWeightedLoudness`), each checked against librosa / SciPy / NumPy, vectorised
over the batch and keyed per record.
"""

from datarax.operators.audio.base import AudioOperator, AudioOperatorConfig
from datarax.operators.audio.gain import Gain, GainConfig
from datarax.operators.audio.loudness import AWeightedLoudness, AWeightedLoudnessConfig
from datarax.operators.audio.mel import MFCC, MelSpectrogram, MelSpectrogramConfig, MFCCConfig
from datarax.operators.audio.noise import MixNoise, MixNoiseConfig
from datarax.operators.audio.resample import Resample, ResampleConfig
from datarax.operators.audio.shift import TimeShift, TimeShiftConfig
from datarax.operators.audio.specaugment import SpecAugment, SpecAugmentConfig
from datarax.operators.audio.spectral import STFT, Spectrogram, SpectrogramConfig, STFTConfig

__all__ = [
    "MFCC",
    "STFT",
    "AWeightedLoudness",
    "AWeightedLoudnessConfig",
    "AudioOperator",
    "AudioOperatorConfig",
    "Gain",
    "GainConfig",
    "MFCCConfig",
    "MelSpectrogram",
    "MelSpectrogramConfig",
    "MixNoise",
    "MixNoiseConfig",
    "Resample",
    "ResampleConfig",
    "STFTConfig",
    "SpecAugment",
    "SpecAugmentConfig",
    "Spectrogram",
    "SpectrogramConfig",
    "TimeShift",
    "TimeShiftConfig",
]
