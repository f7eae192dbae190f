"""torchaudio as its users write it: ``torchaudio.transforms.MelSpectrogram`` in a DataLoader.

MEL only. A map-style dataset indexed by a whole batch (a ``BatchSampler`` as the
loader's sampler, ``batch_size=None``, as the ``torch`` system) turns the batch's clips
into one tensor and applies the transform to it, with librosa's conventions
(``pad_mode="constant"``, Slaney mel scale and filter norm). torchaudio's PyPI wheel
needs torch's CUDA libraries; where it cannot be imported, the row is skipped with
the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from datarax.benchmarking.adapters.base import BuildContext, MakePass, import_problem
from datarax.benchmarking.scenarios import MEL_SETTINGS, Scenario

_PROBLEM = import_problem("torchaudio")
UNSUPPORTED: dict[str, str] = {} if _PROBLEM is None else {"MEL": _PROBLEM}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the DataLoader; ``context.options["workers"]`` worker processes (0)."""
    import torch
    import torchaudio
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    if scenario.name != "MEL":
        raise ValueError(f"the torchaudio adapter runs MEL, not {scenario.name}")
    m = MEL_SETTINGS
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=m["sample_rate"],
        n_fft=m["n_fft"],
        win_length=m["win_length"],
        hop_length=m["hop_length"],
        n_mels=m["n_mels"],
        power=2.0,
        center=True,
        pad_mode="constant",
        norm="slaney",
        mel_scale="slaney",
    )
    dataset: Any = _Clips(context.data["audio"], transform, torch)
    loader: Any = DataLoader(
        dataset,
        sampler=BatchSampler(SequentialSampler(dataset), scenario.batch_size, drop_last=False),
        batch_size=None,
        num_workers=int(context.options.get("workers", 0)),
    )

    def one_pass() -> Iterator[Any]:
        for _ in range(scenario.epochs_per_pass):
            yield from loader

    return one_pass


class _Clips:
    """Indexed by a list of clip ids; returns their mel spectrograms as one tensor."""

    def __init__(self, audio: np.ndarray, transform: Any, torch: Any) -> None:
        self._audio, self._transform, self._torch = audio, transform, torch

    def __len__(self) -> int:
        return len(self._audio)

    def __getitem__(self, indices: list[int]) -> dict[str, Any]:
        clips = self._torch.from_numpy(self._audio[np.asarray(indices)])
        with self._torch.no_grad():
            return {"mel": self._transform(clips)}
