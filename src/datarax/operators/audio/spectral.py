"""`STFT` and `Spectrogram`: short-time Fourier transforms of waveforms, as librosa's.

Frames hop ``hop_length`` samples; each is multiplied by a periodic window of
``win_length`` samples (zero-padded to ``n_fft`` at its centre) and transformed by
a real FFT. With ``center=True`` the signal is first padded by ``n_fft // 2`` on
both sides (``pad_mode``), so frame ``t`` is centred on sample ``t * hop_length``.
Output per record: ``(1 + n_fft // 2, n_frames)``, or ``(C, ...)`` for ``C``
channels, as ``librosa.stft``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import check_choice, check_number, require_bool, require_positive
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.audio.base import (
    AudioOperator,
    AudioOperatorConfig,
    RecordContext,
    compute_dtype,
)

#: Most bytes of frames :meth:`STFT.in_groups` computes at once (measured on CPU:
#: a 1 s, 16 kHz mel spectrogram of 128 clips runs 1.8x faster in groups of 32).
GROUP_FRAME_BYTES = 8 * 1024**2
#: Up to this many groups are computed as independent parts of the program (the CPU
#: runs them side by side on its cores); more go through one ``lax.map``.
MAX_UNROLLED_GROUPS = 8

WINDOWS = ("hann", "hamming", "blackman", "boxcar")
PAD_MODES = ("constant", "reflect", "edge", "symmetric", "wrap")


@dataclass(frozen=True)
class STFTConfig(AudioOperatorConfig):
    """Args:
    n_fft: FFT length (samples per frame, after padding the window).
    hop_length: Samples between frames (``None``: ``win_length // 4``, as librosa).
    win_length: Window length, at most ``n_fft`` (``None``: ``n_fft``).
    window: ``"hann"``, ``"hamming"``, ``"blackman"`` (periodic, as
        ``scipy.signal.get_window(..., fftbins=True)``) or ``"boxcar"``.
    center: Pad ``n_fft // 2`` samples on both sides so frames are centred.
    pad_mode: How ``center`` pads (``numpy.pad`` modes; librosa's default is
        ``"constant"``, zeros).
    """

    n_fft: int = 2048
    hop_length: int | None = None
    win_length: int | None = None
    window: Literal["hann", "hamming", "blackman", "boxcar"] = "hann"
    center: bool = True
    pad_mode: Literal["constant", "reflect", "edge", "symmetric", "wrap"] = "constant"

    def validate(self) -> None:
        super().validate()
        name = type(self).__name__
        require_positive(self, "n_fft")
        require_positive(self, "hop_length", allow_none=True)
        require_positive(self, "win_length", allow_none=True)
        if self.win_length is not None and self.win_length > self.n_fft:
            raise ConfigError(
                "window longer than the FFT",
                where=f"{name}.win_length",
                expected=f"at most n_fft = {self.n_fft}",
                found=self.win_length,
            )
        check_choice(self.window, WINDOWS, where=f"{name}.window")
        require_bool(self, "center")
        check_choice(self.pad_mode, PAD_MODES, where=f"{name}.pad_mode")

    @property
    def hop(self) -> int:
        """Samples between frames."""
        if self.hop_length is None:
            return (self.win_length or self.n_fft) // 4
        return self.hop_length

    @property
    def n_bins(self) -> int:
        """Frequency bins per frame, ``1 + n_fft // 2``."""
        return 1 + self.n_fft // 2

    def window_array(self) -> np.ndarray:
        """The analysis window, ``n_fft`` samples (``float64``)."""
        return fft_window(self.window, self.win_length or self.n_fft, self.n_fft)


class STFT(AudioOperator):
    """Complex short-time Fourier transform of each record, as ``librosa.stft``.

    Float32 waveforms give ``complex64``. Differentiable (linear) in the input.

    Example:
        >>> import jax.numpy as jnp
        >>> op = STFT(STFTConfig(n_fft=8, hop_length=4))
        >>> out, _ = op.apply_batch({"audio": jnp.ones((2, 16))}, {},
        ...                         jnp.arange(2), jnp.uint32(0), 0)
        >>> out["audio"].shape, str(out["audio"].dtype)
        ((2, 5, 5), 'complex64')
    """

    config_type = STFTConfig
    config: STFTConfig
    differentiable_in: ClassVar[tuple[str, ...]] = ("input",)
    reference = "librosa.stft"

    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        return self.in_groups(self.stft, signals)

    def in_groups(self, fn: Callable[[jax.Array], jax.Array], signals: jax.Array) -> jax.Array:
        """``fn`` of the records in groups whose frames fit in :data:`GROUP_FRAME_BYTES`.

        The frames of a batch take ``n_fft / hop`` times the memory of its samples;
        computed for a whole large batch at once they no longer fit in the CPU's
        caches, and the transform runs at a fraction of its speed. Groups keep them
        small (the last one padded with silence): up to :data:`MAX_UNROLLED_GROUPS`
        are independent parts of the program, more go through one ``lax.map``.
        ``fn`` must compute each record alone.
        """
        cfg = self.config
        batch, length = signals.shape[0], signals.shape[-1]
        padded = length + 2 * (cfg.n_fft // 2) if cfg.center else length
        n_frames = max(1, 1 + (padded - cfg.n_fft) // cfg.hop)
        channels = math.prod(signals.shape[1:-1])
        itemsize = jnp.dtype(compute_dtype(signals.dtype)).itemsize
        record_bytes = channels * n_frames * cfg.n_fft * itemsize
        fits = max(1, GROUP_FRAME_BYTES // record_bytes)
        if batch <= fits:
            return fn(signals)
        groups = -(-batch // fits)
        size = -(-batch // groups)  # the most even split
        extra = groups * size - batch
        widths = [(0, extra)] + [(0, 0)] * (signals.ndim - 1)
        grouped = jnp.pad(signals, widths).reshape(groups, size, *signals.shape[1:])
        if groups <= MAX_UNROLLED_GROUPS:  # independent: XLA runs them on several cores
            out = jnp.stack([fn(grouped[g]) for g in range(groups)])
        else:
            out = jax.lax.map(fn, grouped)
        return out.reshape(groups * size, *out.shape[2:])[:batch]

    def stft(self, signals: jax.Array) -> jax.Array:
        """``(B, [C,] T)`` waveforms to ``(B, [C,] 1 + n_fft // 2, n_frames)`` complex."""
        return jnp.swapaxes(self.frame_spectra(signals), -1, -2)

    def frame_spectra(self, signals: jax.Array) -> jax.Array:
        """``(B, [C,] n_frames, 1 + n_fft // 2)``: the FFT of each windowed frame."""
        cfg = self.config
        length = signals.shape[-1]
        if not cfg.center and length < cfg.n_fft:
            raise SchemaError(
                "waveform shorter than one frame",
                where=f"{self.name}, field '{cfg.field}'",
                expected=f"at least n_fft = {cfg.n_fft} samples (or center=True)",
                found=f"{length} samples",
            )
        x = signals.astype(compute_dtype(signals.dtype))
        if cfg.center:
            pad = cfg.n_fft // 2
            widths = [(0, 0)] * (x.ndim - 1) + [(pad, pad)]
            x = jnp.pad(x, widths, mode=cfg.pad_mode)
        window = jnp.asarray(cfg.window_array(), x.dtype)
        n_frames = 1 + (x.shape[-1] - cfg.n_fft) // cfg.hop
        index = np.arange(n_frames)[:, None] * cfg.hop + np.arange(cfg.n_fft)[None, :]
        return jnp.fft.rfft(x[..., jnp.asarray(index, jnp.int32)] * window, axis=-1)


@dataclass(frozen=True)
class SpectrogramConfig(STFTConfig):
    """Args:
    power: Exponent of the magnitude: ``2.0`` power, ``1.0`` magnitude.
    """

    power: float = 2.0

    def validate(self) -> None:
        super().validate()
        check_number(self.power, where=f"{type(self).__name__}.power", positive=True)


class Spectrogram(STFT):
    """``|STFT| ** power`` of each record, as librosa's ``np.abs(librosa.stft(y)) ** power``.

    Differentiable in the input; for ``power < 2`` not where a bin is exactly 0.

    Example:
        >>> op = Spectrogram(SpectrogramConfig(n_fft=256, hop_length=64))
    """

    config_type = SpectrogramConfig
    config: SpectrogramConfig
    differentiable_in: ClassVar[tuple[str, ...]] = ("input",)
    reference = "numpy.abs(librosa.stft(y)) ** power"

    def transform(self, signals: jax.Array, context: RecordContext) -> jax.Array:
        return self.in_groups(self.spectrogram, signals)

    def spectrogram(self, signals: jax.Array) -> jax.Array:
        """``(B, [C,] 1 + n_fft // 2, n_frames)`` real power (or magnitude) spectrogram."""
        return jnp.swapaxes(self.frame_powers(signals), -1, -2)

    def frame_powers(self, signals: jax.Array) -> jax.Array:
        """``(B, [C,] n_frames, 1 + n_fft // 2)``: ``|FFT| ** power`` of each frame."""
        spec = self.frame_spectra(signals)
        squared = jnp.square(spec.real) + jnp.square(spec.imag)
        if self.config.power == 2.0:
            return squared
        return jnp.power(squared, self.config.power / 2.0)


def fft_window(window: str, win_length: int, n_fft: int) -> np.ndarray:
    """The periodic ``window`` of ``win_length`` samples, zero-padded at both ends to ``n_fft``.

    Equals ``librosa.util.pad_center(scipy.signal.get_window(window, win_length,
    fftbins=True), size=n_fft)``.

    Example:
        >>> fft_window("hann", 4, 6).round(6).tolist()
        [0.0, 0.0, 0.5, 1.0, 0.5, 0.0]
    """
    phase = 2.0 * np.pi * np.arange(win_length) / win_length
    if window == "hann":
        w = 0.5 - 0.5 * np.cos(phase)
    elif window == "hamming":
        w = 0.54 - 0.46 * np.cos(phase)
    elif window == "blackman":
        w = 0.42 - 0.5 * np.cos(phase) + 0.08 * np.cos(2.0 * phase)
    elif window == "boxcar":
        w = np.ones(win_length)
    else:
        raise ConfigError("unknown window", where="fft_window", expected=WINDOWS, found=window)
    left = (n_fft - win_length) // 2
    return np.pad(w, (left, n_fft - win_length - left))
