"""`Resample`: change the sample rate by a rational factor with a polyphase FIR filter."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import check_number, require_positive
from datarax.operators.audio.base import (
    AudioOperator,
    AudioOperatorConfig,
    RecordContext,
    compute_dtype,
)


@dataclass(frozen=True)
class ResampleConfig(AudioOperatorConfig):
    """Args:
    orig_sr: The records' sample rate (Hz, an int).
    target_sr: The sample rate wanted (Hz, an int). The factor is
        ``up / down = target_sr / orig_sr`` in lowest terms.
    kaiser_beta: Shape of the Kaiser window of the low-pass filter.
    half_width: Half the filter's length in units of ``max(up, down)``
        (``10``: a filter of ``20 * max(up, down) + 1`` taps).
    """

    orig_sr: int = 16000
    target_sr: int = 16000
    kaiser_beta: float = 5.0
    half_width: int = 10

    def validate(self) -> None:
        super().validate()
        require_positive(self, "orig_sr")
        require_positive(self, "target_sr")
        require_positive(self, "half_width")
        check_number(self.kaiser_beta, where="ResampleConfig.kaiser_beta", minimum=0.0)

    @property
    def factor(self) -> tuple[int, int]:
        """``(up, down)``: the resampling factor in lowest terms."""
        g = math.gcd(self.orig_sr, self.target_sr)
        return self.target_sr // g, self.orig_sr // g


class Resample(AudioOperator):
    """Resamples each record from ``orig_sr`` to ``target_sr`` along time (the last axis).

    The signal is upsampled by ``up`` (zeros between samples), low-pass filtered
    and decimated by ``down``, evaluated only at the kept outputs (polyphase).
    The filter is the one of ``scipy.signal.resample_poly`` with its default
    window: ``2 * half_width * max(up, down) + 1`` taps of a windowed sinc with
    cutoff ``1 / max(up, down)`` of the Nyquist rate, a Kaiser window
    (``kaiser_beta``), unit DC gain, times ``up``; samples outside the record are
    zeros. ``T`` samples become ``ceil(T * up / down)``.

    Example:
        >>> op = Resample(ResampleConfig(orig_sr=16000, target_sr=8000))
        >>> op.config.factor
        (1, 2)
    """

    config_type = ResampleConfig
    config: ResampleConfig
    differentiable_in = ("input",)
    reference = "scipy.signal.resample_poly / librosa.resample(res_type='polyphase')"

    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        up, down = self.config.factor
        if up == down == 1:
            return signals
        index, weights = polyphase_taps(
            signals.shape[-1], up, down, self.config.half_width, self.config.kaiser_beta
        )
        dtype = compute_dtype(signals.dtype)
        taps = signals.astype(dtype)[..., jnp.asarray(index)]  # (..., n_out, n_taps)
        out = jnp.einsum("...ok,ok->...o", taps, jnp.asarray(weights, dtype))
        return out.astype(signals.dtype)


def lowpass_filter(
    up: int, down: int, half_width: int = 10, kaiser_beta: float = 5.0
) -> np.ndarray:
    """The polyphase filter (``float64``, ``2 * half_len + 1`` taps, times ``up``).

    A Kaiser-windowed sinc with cutoff ``1 / max(up, down)`` (of Nyquist),
    scaled to unit DC gain, then by ``up``: ``scipy.signal.firwin(2 * half_len + 1,
    1 / max_rate, window=("kaiser", beta)) * up`` with ``half_len = half_width * max_rate``.
    """
    max_rate = max(up, down)
    half_len = half_width * max_rate
    m = np.arange(2 * half_len + 1, dtype=np.float64) - half_len
    cutoff = 1.0 / max_rate
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(2 * half_len + 1, kaiser_beta)
    return h / h.sum() * up


def polyphase_taps(
    length: int, up: int, down: int, half_width: int = 10, kaiser_beta: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Input indices and weights, each ``(n_out, n_taps)``, of every output sample.

    Output ``m`` is ``sum_k x[k] * h[m * down - k * up + half_len]`` over the
    input samples ``k`` the filter ``h`` reaches; out-of-record taps weigh 0.
    """
    h = lowpass_filter(up, down, half_width, kaiser_beta)
    half_len = (len(h) - 1) // 2
    n_out = -(-length * up // down)
    n_taps = 2 * half_len // up + 1
    start = -((half_len - np.arange(n_out) * down) // up)  # ceil((m*down - half_len) / up)
    index = start[:, None] + np.arange(n_taps)[None, :]
    offset = np.arange(n_out)[:, None] * down - index * up + half_len
    valid = (offset >= 0) & (offset < len(h)) & (index >= 0) & (index < length)
    weights = np.where(valid, h[np.clip(offset, 0, len(h) - 1)], 0.0)
    return np.clip(index, 0, length - 1).astype(np.int32), weights
