"""librosa as its users write it: ``librosa.feature.melspectrogram`` on NumPy waveforms.

MEL only. Two systems: ``librosa`` passes each batch as one multichannel array
``(batch, samples)`` (librosa computes every leading index at once), ``librosa-clip``
calls it once per clip and stacks the results. Both read batches of the host arrays
in order, with the scenario's settings (``MEL_SETTINGS``) and librosa's defaults for
the rest (periodic Hann window, centred frames padded with zeros, Slaney mel
filters, power 2), and one BLAS thread (:func:`one_blas_thread`: with two on the 2
shared cores librosa's filterbank product was up to 17x slower).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from datarax.benchmarking.adapters.base import BuildContext, MakePass, one_blas_thread
from datarax.benchmarking.scenarios import MEL_SETTINGS, Scenario

UNSUPPORTED: dict[str, str] = {}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of mel spectrograms of the clips, ``context.options["per_clip"]`` one by one."""
    if scenario.name != "MEL":
        raise ValueError(f"the librosa adapter runs MEL, not {scenario.name}")
    mel = mel_function(per_clip=bool(context.options.get("per_clip", False)))
    audio = context.data["audio"]

    def one_pass() -> Iterator[dict[str, np.ndarray]]:
        with one_blas_thread():
            for _ in range(scenario.epochs_per_pass):
                for start in range(0, len(audio), scenario.batch_size):
                    yield {"mel": mel(audio[start : start + scenario.batch_size])}

    return one_pass


def mel_function(*, per_clip: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """``(batch, samples) -> (batch, n_mels, frames)`` float32 with librosa."""
    import librosa

    m = MEL_SETTINGS
    settings: dict[str, Any] = {
        "sr": m["sample_rate"],
        "n_fft": m["n_fft"],
        "win_length": m["win_length"],
        "hop_length": m["hop_length"],
        "n_mels": m["n_mels"],
    }
    if per_clip:
        return lambda batch: np.stack(
            [librosa.feature.melspectrogram(y=clip, **settings) for clip in batch]
        )
    return lambda batch: librosa.feature.melspectrogram(y=batch, **settings)
