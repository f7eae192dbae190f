"""`MelSpectrogram` and `MFCC`, as ``librosa.feature.melspectrogram`` and ``mfcc``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax.core.config import (
    check_choice,
    check_number,
    require_bool,
    require_int,
    require_positive,
)
from datarax.core.errors import ConfigError
from datarax.operators.audio.base import RecordContext
from datarax.operators.audio.filters import dct_matrix, mel_filterbank
from datarax.operators.audio.spectral import Spectrogram, SpectrogramConfig


@dataclass(frozen=True)
class MelSpectrogramConfig(SpectrogramConfig):
    """Args (besides the STFT's and ``power``):
    sample_rate: The waveforms' sample rate in Hz.
    n_mels: Number of mel bands.
    fmin, fmax: Lowest and highest frequency of the bands (``fmax=None``:
        ``sample_rate / 2``).
    htk: HTK's mel scale instead of Slaney's.
    norm: ``"slaney"`` (unit-area filters), ``None``, or a number ``p >= 1``
        (each filter divided by its ``p``-norm; ``inf`` allowed).
    learnable: Make the filterbank an ``nnx.Param`` (initialised as librosa's).
    """

    sample_rate: float = 22050
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    norm: str | float | None = "slaney"
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        check_number(self.sample_rate, where=f"{name}.sample_rate", positive=True)
        require_positive(self, "n_mels")
        check_number(self.fmin, where=f"{name}.fmin", minimum=0.0)
        check_number(self.fmax, where=f"{name}.fmax", positive=True, allow_none=True)
        fmax = self.sample_rate / 2 if self.fmax is None else self.fmax
        if not self.fmin < fmax:
            raise ConfigError(
                "empty frequency range",
                where=f"{name}.fmin",
                expected=f"fmin < fmax = {fmax}",
                found=self.fmin,
            )
        require_bool(self, "htk")
        require_bool(self, "learnable")
        norm = self.norm
        p_norm = isinstance(norm, (int, float)) and not isinstance(norm, bool) and norm >= 1
        if not (norm is None or norm == "slaney" or p_norm):
            raise ConfigError(
                "unknown filter norm",
                where=f"{name}.norm",
                expected="'slaney', None or a number >= 1",
                found=repr(self.norm),
            )

    def filterbank(self) -> np.ndarray:
        """This config's mel filterbank, ``(n_mels, 1 + n_fft // 2)`` ``float64``."""
        return mel_filterbank(
            self.sample_rate,
            self.n_fft,
            self.n_mels,
            self.fmin,
            self.fmax,
            htk=self.htk,
            norm=self.norm,
        )


class MelSpectrogram(Spectrogram):
    """Mel-band spectrogram of each record: ``filterbank @ |STFT| ** power``.

    Output per record: ``(n_mels, n_frames)`` (or ``(C, n_mels, n_frames)``).
    Differentiable in the input and, with ``learnable=True``, in the filterbank.

    Example:
        >>> learnable = MelSpectrogram(MelSpectrogramConfig(
        ...     sample_rate=16000, n_fft=512, n_mels=40, learnable=True))
        >>> learnable.filterbank[...].shape
        (40, 257)
    """

    config_type = MelSpectrogramConfig
    config: MelSpectrogramConfig
    differentiable_in = ("input", "filterbank")
    reference = "librosa.feature.melspectrogram (librosa.filters.mel)"

    def __init__(
        self,
        config: MelSpectrogramConfig,
        *,
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        # Learnable: a float32 parameter; else a float64 constant of the compiled function.
        self.filterbank: nnx.Param | None = (
            nnx.Param(jnp.asarray(config.filterbank(), jnp.float32)) if config.learnable else None
        )

    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        return self.in_groups(self.mel, signals)

    def mel(self, signals: jax.Array) -> jax.Array:
        """``(B, [C,] n_mels, n_frames)`` mel spectrogram."""
        powers = self.frame_powers(signals)  # (..., frames, bins): one product for all frames
        if self.filterbank is not None:
            weights = self.filterbank[...].astype(powers.dtype)
        else:
            weights = jnp.asarray(self.config.filterbank(), powers.dtype)
        return jnp.swapaxes(powers @ weights.T, -1, -2)


@dataclass(frozen=True)
class MFCCConfig(MelSpectrogramConfig):
    """Args (besides the mel spectrogram's):
    n_mfcc: Number of coefficients kept.
    dct_norm: ``"ortho"`` (orthonormal DCT-II) or ``None``.
    lifter: Cepstral liftering ``1 + (lifter / 2) sin(pi (k + 1) / lifter)``; 0: none.
    top_db: Floor the log-mel spectrogram at ``top_db`` below each record's
        peak (``None``: no floor).
    amin: Smallest power before the logarithm.
    """

    n_mfcc: int = 20
    dct_norm: str | None = "ortho"
    lifter: int = 0
    top_db: float | None = 80.0
    amin: float = 1e-10

    def validate(self) -> None:
        super().validate()
        require_positive(self, "n_mfcc")
        if self.n_mfcc > self.n_mels:
            raise ConfigError(
                "more coefficients than mel bands",
                where="MFCCConfig.n_mfcc",
                expected=f"at most n_mels = {self.n_mels}",
                found=self.n_mfcc,
            )
        check_choice(self.dct_norm, ("ortho", None), where="MFCCConfig.dct_norm")
        require_int(self, "lifter", minimum=0)
        check_number(self.top_db, where="MFCCConfig.top_db", positive=True, allow_none=True)
        check_number(self.amin, where="MFCCConfig.amin", positive=True)


class MFCC(MelSpectrogram):
    """Mel-frequency cepstral coefficients of each record, as ``librosa.feature.mfcc``.

    The mel spectrogram in dB (``10 log10(max(amin, S))``, floored ``top_db``
    below the record's peak over all its channels and frames, as
    ``librosa.power_to_db`` with ``ref=1``), then the DCT-II over mel bands
    (first ``n_mfcc`` rows) and optional liftering. Output per record
    ``(n_mfcc, n_frames)``. Differentiable in the input (the floor and ``amin``
    clamp pass no gradient where they bind).

    Example:
        >>> op = MFCC(MFCCConfig(sample_rate=16000, n_fft=512, n_mels=40, n_mfcc=13))
    """

    config_type = MFCCConfig
    config: MFCCConfig
    differentiable_in = ("input", "filterbank")
    reference = "librosa.feature.mfcc"

    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        return self.in_groups(self.mfcc, signals)

    def mfcc(self, signals: jax.Array) -> jax.Array:
        """``(B, [C,] n_mfcc, n_frames)`` coefficients."""
        cfg = self.config
        mel = self.mel(signals)
        log_mel = 10.0 * jnp.log10(jnp.maximum(mel, cfg.amin))
        if cfg.top_db is not None:
            axes = tuple(range(1, log_mel.ndim))
            peak = jnp.max(log_mel, axis=axes, keepdims=True)
            log_mel = jnp.maximum(log_mel, peak - cfg.top_db)
        basis = dct_matrix(cfg.n_mfcc, cfg.n_mels, norm=cfg.dct_norm)
        if cfg.lifter > 0:
            k = np.arange(1, cfg.n_mfcc + 1)
            basis = basis * (1.0 + cfg.lifter / 2.0 * np.sin(math.pi * k / cfg.lifter))[:, None]
        return jnp.einsum("km,...mt->...kt", jnp.asarray(basis, log_mel.dtype), log_mel)
