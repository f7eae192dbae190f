"""What every adapter provides: a function from a scenario and its host arrays to passes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
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


def import_problem(module: str) -> str | None:
    """Why ``module`` cannot be imported here (a short reason), or ``None`` when it imports.

    Used by adapters whose framework may be installed and still fail to load (a wheel
    built against other libraries than those installed), so the row is *skipped* with
    the reason instead of failing. torch's PyPI wheels of torchvision and torchaudio
    link torch's CUDA build; with torch's CPU build they do not load.

    Example:
        >>> import_problem("json") is None
        True
    """
    import importlib
    import importlib.metadata

    try:
        importlib.import_module(module)
    except Exception as exc:  # any failure to load: missing, ABI mismatch, missing symbols
        reason = f"{module} cannot be imported ({type(exc).__name__}: {str(exc)[:120]})"
        try:
            torch_version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return reason
        if "+cpu" in torch_version:
            reason += (
                f"; its PyPI wheel needs torch's CUDA libraries and torch {torch_version} "
                "is the CPU build"
            )
        return reason
    return None


def one_blas_thread() -> AbstractContextManager[Any]:
    """Limit NumPy's BLAS (OpenBLAS) to one thread while the context is active.

    On 2 cores shared with other processes, OpenBLAS's default of one thread per core
    made small matrix products up to 100x slower (its threads wait for each other);
    the host-side systems of MEL (librosa, the NumPy reference) run with one BLAS
    thread. Without ``threadpoolctl`` installed nothing is limited.

    Example:
        >>> import numpy as np
        >>> with one_blas_thread():
        ...     float((np.ones((2, 2)) @ np.ones((2, 2)))[0, 0])
        2.0
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with librosa (scikit-learn)
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
