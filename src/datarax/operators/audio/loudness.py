"""`AWeightedLoudness`: A-weighted (IEC 61672) level of waveforms in dB, per frame or clip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import check_choice, check_number
from datarax.operators.audio.base import RecordContext
from datarax.operators.audio.filters import a_weighting, fft_frequencies
from datarax.operators.audio.spectral import STFT, STFTConfig


@dataclass(frozen=True)
class AWeightedLoudnessConfig(STFTConfig):
    """Args (besides the STFT's):
    output_field: The field written (default ``"loudness"``).
    sample_rate: The waveforms' sample rate in Hz.
    min_db: Floor of the A-weighting curve in dB (``librosa.A_weighting``'s
        ``min_db``; ``None``: no floor, so 0 Hz weighs nothing).
    amin: Smallest power before the logarithm.
    reduce: ``"frames"`` (one level per frame) or ``"mean"`` (the level of the
        mean power over frames, one per record and channel).
    """

    output_field: str | None = "loudness"
    sample_rate: float = 22050
    min_db: float | None = -80.0
    amin: float = 1e-10
    reduce: Literal["frames", "mean"] = "frames"

    def validate(self) -> None:
        super().validate()
        check_number(self.sample_rate, where="AWeightedLoudnessConfig.sample_rate", positive=True)
        check_number(self.min_db, where="AWeightedLoudnessConfig.min_db", allow_none=True)
        check_number(self.amin, where="AWeightedLoudnessConfig.amin", positive=True)
        check_choice(self.reduce, ("frames", "mean"), where="AWeightedLoudnessConfig.reduce")


class AWeightedLoudness(STFT):
    """A-weighted level ``10 log10(max(amin, P_A))`` in dB (re. 1, full scale 0 dB).

    ``P_A`` is the mean-square power of a frame with each STFT bin weighted by
    the A-weighting curve ``10 ** (A(f) / 10)`` (applied in the frequency
    domain): ``sum_f c_f 10 ** (A(f) / 10) |X_f|^2 / (n_fft * sum(window^2))``,
    ``c_f = 2`` for bins that stand for a negative frequency too, else 1 (Parseval,
    window energy compensated). A full-scale 1 kHz sine measures about -3 dB.
    Output per record: ``(n_frames,)`` or ``(C, n_frames)``; ``()`` or ``(C,)``
    with ``reduce="mean"``. Differentiable in the input where ``P_A > amin``.

    Example:
        >>> op = AWeightedLoudness(AWeightedLoudnessConfig(sample_rate=16000, n_fft=512))
        >>> op.config.target
        'loudness'
    """

    config_type = AWeightedLoudnessConfig
    config: AWeightedLoudnessConfig
    differentiable_in = ("input",)
    reference = "librosa.perceptual_weighting(kind='A') of librosa.stft power, summed"

    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        spec = self.stft(signals)
        power = jnp.square(spec.real) + jnp.square(spec.imag)  # (..., F, N)
        weights = jnp.asarray(self.bin_weights(), power.dtype)
        frame_power = jnp.einsum("f,...fn->...n", weights, power)
        if self.config.reduce == "mean":
            frame_power = jnp.mean(frame_power, axis=-1)
        return 10.0 * jnp.log10(jnp.maximum(frame_power, self.config.amin))

    def bin_weights(self) -> np.ndarray:
        """Weight of each STFT bin's ``|X_f|^2`` in a frame's A-weighted power (``float64``)."""
        cfg = self.config
        freqs = fft_frequencies(cfg.sample_rate, cfg.n_fft)
        gain = 10.0 ** (a_weighting(freqs, min_db=cfg.min_db) / 10.0)
        twice = np.full(len(freqs), 2.0)
        twice[0] = 1.0
        if cfg.n_fft % 2 == 0:
            twice[-1] = 1.0  # the Nyquist bin has no mirror
        window = cfg.window_array()
        return twice * gain / (cfg.n_fft * np.sum(window**2))
