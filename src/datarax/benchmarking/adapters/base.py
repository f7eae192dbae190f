"""What every adapter provides: a function from a scenario and its host arrays to passes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from datarax.benchmarking.scenarios import Scenario

#: Returns an iterator over one pass's batches (mappings of field name to array).
MakePass = Callable[[], Iterator[Mapping[str, Any]]]


@dataclass(frozen=True)
class BuildContext:
    """Everything an adapter gets besides the scenario.

    Args:
        data: The host arrays, the same for every system.
        stats: The dataset statistics the transform needs (or ``None``).
        workdir: A private directory for files the system writes (ArrayRecord).
        options: Per-system options (``{"workers": 2}``).
    """

    data: dict[str, np.ndarray]
    stats: Any
    workdir: Path
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def num_records(self) -> int:
        """Records in the scenario's data."""
        return len(next(iter(self.data.values())))


class Builder(Protocol):
    """``build(scenario, context) -> make_pass`` of one adapter module."""

    def __call__(self, scenario: Scenario, context: BuildContext) -> MakePass: ...
