"""torchvision as its users write it: ``transforms.v2.RandAugment`` in a PyTorch ``DataLoader``.

RA only. A map-style dataset returns one record at a time: its image as a ``(3, H, W)``
``uint8`` tensor through ``v2.RandAugment(num_ops=2, magnitude=9,
num_magnitude_bins=31)`` (which draws its operations per call, so per record), with
its label; the loader batches them with its default collate function, shuffling
with a ``RandomSampler``. torchvision's PyPI wheel needs torch's CUDA libraries;
where it cannot be imported, the row is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from datarax.benchmarking.adapters.base import BuildContext, MakePass, import_problem
from datarax.benchmarking.scenarios import RA_MAGNITUDE, RA_NUM_BINS, RA_NUM_OPS, Scenario

_PROBLEM = import_problem("torchvision.transforms.v2")
UNSUPPORTED: dict[str, str] = {} if _PROBLEM is None else {"RA": _PROBLEM}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the DataLoader; ``context.options["workers"]`` worker processes (0)."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler, SequentialSampler
    from torchvision.transforms import v2

    if scenario.name != "RA":
        raise ValueError(f"the torchvision adapter runs RA, not {scenario.name}")
    torch.manual_seed(0)
    augment = v2.RandAugment(
        num_ops=RA_NUM_OPS, magnitude=RA_MAGNITUDE, num_magnitude_bins=RA_NUM_BINS
    )
    dataset: Any = _Images(context.data, augment)
    order = RandomSampler(dataset) if scenario.shuffle else SequentialSampler(dataset)
    loader: Any = DataLoader(
        dataset,
        batch_size=scenario.batch_size,
        sampler=order,
        num_workers=int(context.options.get("workers", 0)),
    )

    def one_pass() -> Iterator[Any]:
        for _ in range(scenario.epochs_per_pass):
            yield from loader

    return one_pass


class _Images:
    """One record per index: the augmented ``(3, H, W)`` uint8 image and its label."""

    def __init__(self, data: dict[str, np.ndarray], augment: Any) -> None:
        self._images, self._labels, self._augment = data["image"], data["label"], augment

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        image = torch.from_numpy(self._images[index]).permute(2, 0, 1)
        return {"image": self._augment(image), "label": int(self._labels[index])}
