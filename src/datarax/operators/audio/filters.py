"""Constant matrices of the spectral operators, in NumPy ``float64``, as librosa builds them.

``mel_filterbank`` equals ``librosa.filters.mel``, ``dct_matrix`` the DCT-II of
``scipy.fft.dct`` as a matrix and ``a_weighting`` equals ``librosa.A_weighting``.
They are built once, when an operator is traced, and enter the compiled function
as constants.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "a_weighting",
    "dct_matrix",
    "fft_frequencies",
    "hz_to_mel",
    "mel_filterbank",
    "mel_frequencies",
    "mel_to_hz",
]

# The Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(frequencies: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Frequencies in Hz to mels (HTK's formula or Slaney's, as ``librosa.hz_to_mel``)."""
    f = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    above = f >= _MIN_LOG_HZ
    safe = np.where(above, f, _MIN_LOG_HZ)
    return np.where(above, _MIN_LOG_MEL + np.log(safe / _MIN_LOG_HZ) / _LOGSTEP, f / _F_SP)


def mel_to_hz(mels: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Mels to frequencies in Hz, the inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    above = m >= _MIN_LOG_MEL
    return np.where(above, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def mel_frequencies(n_mels: int, fmin: float, fmax: float, *, htk: bool = False) -> np.ndarray:
    """``n_mels`` frequencies (Hz) evenly spaced in mels from ``fmin`` to ``fmax``."""
    mels = np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels)
    return mel_to_hz(mels, htk=htk)


def fft_frequencies(sample_rate: float, n_fft: int) -> np.ndarray:
    """Centre frequency (Hz) of each of the ``1 + n_fft // 2`` bins of a real FFT."""
    return np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)


def mel_filterbank(
    sample_rate: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    *,
    htk: bool = False,
    norm: str | float | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters, ``(n_mels, 1 + n_fft // 2)``, as ``librosa.filters.mel``.

    Filter ``i`` rises from mel frequency ``i`` to ``i + 1`` and falls to
    ``i + 2`` (``n_mels + 2`` points from ``fmin`` to ``fmax``, default
    ``sample_rate / 2``). ``norm="slaney"`` scales each to unit area
    (``2 / bandwidth``); a number ``p`` divides each row by its ``p``-norm.

    Example:
        >>> mel_filterbank(16000, 512, n_mels=40).shape
        (40, 257)
    """
    fmax = sample_rate / 2.0 if fmax is None else fmax
    freqs = fft_frequencies(sample_rate, n_fft)
    points = mel_frequencies(n_mels + 2, fmin, fmax, htk=htk)
    widths = np.diff(points)
    ramps = points[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (points[2:] - points[:-2]))[:, None]
    elif norm is not None:
        p = float(norm)
        size = np.max(weights, axis=1) if np.isinf(p) else np.sum(weights**p, axis=1) ** (1 / p)
        size = np.where(size < np.finfo(np.float32).tiny, 1.0, size)
        weights = weights / size[:, None]
    return weights


def dct_matrix(n_out: int, n_in: int, *, norm: str | None = "ortho") -> np.ndarray:
    """The first ``n_out`` rows of the DCT-II of length ``n_in``, ``(n_out, n_in)``.

    ``D @ x`` equals ``scipy.fft.dct(x, type=2, norm=norm)[:n_out]``: rows
    ``2 cos(pi k (2n + 1) / (2 n_in))``, scaled to an orthonormal basis with
    ``norm="ortho"``.
    """
    k = np.arange(n_out, dtype=np.float64)[:, None]
    n = np.arange(n_in, dtype=np.float64)[None, :]
    basis = 2.0 * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * n_in))
    if norm == "ortho":
        basis *= np.sqrt(1.0 / (2.0 * n_in))
        basis[0] *= np.sqrt(0.5)
    return basis


def a_weighting(frequencies: np.ndarray, *, min_db: float | None = -80.0) -> np.ndarray:
    """A-weighting (IEC 61672) in dB at ``frequencies`` (Hz), as ``librosa.A_weighting``.

    About 0 dB at 1 kHz; values below ``min_db`` are raised to it (0 Hz gives
    ``-inf`` when ``min_db`` is ``None``).

    Example:
        >>> a_weighting(np.array([100.0, 1000.0, 4000.0])).round(1).tolist()
        [-19.1, 0.0, 1.0]
    """
    f_sq = np.asarray(frequencies, dtype=np.float64) ** 2
    c = np.array([12194.217, 20.598997, 107.65265, 737.86223]) ** 2
    with np.errstate(divide="ignore"):
        weights = 2.0 + 20.0 * (
            np.log10(c[0])
            + 2.0 * np.log10(f_sq)
            - np.log10(f_sq + c[0])
            - np.log10(f_sq + c[1])
            - 0.5 * np.log10(f_sq + c[2])
            - 0.5 * np.log10(f_sq + c[3])
        )
    return weights if min_db is None else np.maximum(min_db, weights)
