"""The systems compared, one adapter module per framework, each imported only when used.

A *system* is one way to run a scenario: an adapter module plus options (PyTorch with 0
or with 2 workers). Every adapter module has ``build(scenario, context) -> make_pass``
and ``UNSUPPORTED`` (scenario name -> why the framework cannot run it); those that run
the training scenarios also have ``build_training(scenario, context) -> TrainLoop``.

Example:
    >>> SYSTEMS["torch"].framework, SYSTEMS["torch-2w"].options
    ('torch', {'workers': 2})
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Literal

from datarax.benchmarking.adapters.base import BuildContext, Builder, MakePass
from datarax.benchmarking.errors import MissingFrameworkError
from datarax.benchmarking.scenarios import SCENARIOS, Scenario

Role = Literal["reference", "datarax", "peer"]


@dataclass(frozen=True)
class System:
    """One system of the comparison.

    Args:
        name: Its id in tables and on the command line (``"torch-2w"``).
        framework: The framework it belongs to (``"torch"``); ``--frameworks`` selects these.
        module: The adapter module under ``datarax.benchmarking.adapters``.
        role: A hand-written ``reference``, ``datarax`` itself, or a ``peer`` framework.
        requires: Importable modules it needs.
        distributions: Installed distributions whose versions the results record.
        options: Passed to the adapter in its build context.
        scenarios: The only scenarios it runs (``None``: all); others are left out silently.
        label: How charts and tables describe it.
    """

    name: str
    framework: str
    module: str
    role: Role
    requires: tuple[str, ...]
    distributions: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    scenarios: tuple[str, ...] | None = None
    label: str = ""

    def runs(self, scenario: Scenario) -> bool:
        """Whether this system has a row for ``scenario`` at all (both must allow it)."""
        if scenario.systems is not None and self.name not in scenario.systems:
            return False
        return self.scenarios is None or scenario.name in self.scenarios

    def missing(self, scenario: Scenario | None = None) -> str | None:
        """Why it cannot run here (a module that is not installed), or ``None``."""
        needs = self.requires
        if scenario is not None and scenario.storage == "array_record":
            needs = (*needs, "array_record")
        if scenario is not None and scenario.family == "training":  # the model and optimizer
            needs = (*needs, "flax", "optax")
        for module in needs:
            if importlib.util.find_spec(module) is None:
                return f"module '{module}' is not installed"
        return None

    def unsupported(self, scenario: Scenario, platform: str | None = None) -> str | None:
        """Why its framework cannot run ``scenario`` (on ``platform``), or ``None``.

        An adapter may name (scenario, platform) pairs it does not run in
        ``UNSUPPORTED_ON``.
        """
        adapter = self._adapter()
        if scenario.family == "training" and not hasattr(adapter, "build_training"):
            return f"{self.label or self.name} has no training loop"
        reason: str | None = adapter.UNSUPPORTED.get(scenario.name)
        if reason is None and platform is not None:
            reason = getattr(adapter, "UNSUPPORTED_ON", {}).get((scenario.name, platform))
        return reason

    def require(self) -> None:
        """Raise :class:`MissingFrameworkError` when a required module is missing."""
        reason = self.missing()
        if reason is not None:
            raise MissingFrameworkError(
                f"framework '{self.framework}' is not available",
                where=f"datarax-bench --frameworks {self.framework}",
                expected="the benchmark extra installed: pip install 'datarax[bench]'",
                found=reason,
            )

    def versions(self) -> dict[str, str | None]:
        """Installed version of each distribution it depends on (``None`` if absent)."""
        out: dict[str, str | None] = {}
        for dist in self.distributions:
            try:
                out[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                out[dist] = None
        return out

    def build(self, scenario: Scenario, context: BuildContext) -> MakePass:
        """The adapter's passes for ``scenario`` (imports the framework)."""
        self.require()
        builder: Builder = self._adapter().build
        return builder(scenario, context)

    def build_training(self, scenario: Scenario, context: BuildContext) -> Any:
        """The adapter's training loop for a training ``scenario``: a
        :class:`~datarax.benchmarking.training.TrainLoop` (imports the framework)."""
        self.require()
        return self._adapter().build_training(scenario, context)

    def _adapter(self) -> Any:
        return importlib.import_module(f"datarax.benchmarking.adapters.{self.module}")


_JAX = ("jax", "jaxlib")
#: The training scenarios (the only ones of ``datarax-fused``).
TRAINING_SCENARIOS = tuple(name for name, s in SCENARIOS.items() if s.family == "training")
SYSTEMS: dict[str, System] = {
    s.name: s
    for s in [
        System("numpy", "numpy", "numpy_ref", "reference", ("numpy",), ("numpy",),
               label="NumPy reference"),
        System("numpy-loop", "numpy", "numpy_ref", "reference", ("numpy",), ("numpy",),
               options={"loop": True}, scenarios=("W4",), label="NumPy reference, loop"),
        System("jax", "jax", "jax_ref", "reference", ("jax",), _JAX, label="JAX reference"),
        System("datarax", "datarax", "datarax", "datarax", ("jax", "flax"),
               ("datarax", *_JAX, "flax"), label="datarax"),
        System("datarax-0w", "datarax", "datarax", "datarax", ("jax", "flax"),
               ("datarax", *_JAX, "flax"), options={"workers": 0}, scenarios=("AR",),
               label="datarax, 0 workers"),
        System("datarax-fused", "datarax", "datarax_fused", "datarax", ("jax", "flax", "optax"),
               ("datarax", *_JAX, "flax", "optax"), scenarios=TRAINING_SCENARIOS,
               label="datarax, fused with the train step"),
        System("grain", "grain", "grain", "peer", ("grain",), ("grain",), label="Grain"),
        System("torch", "torch", "torch", "peer", ("torch",), ("torch",),
               options={"workers": 0}, label="PyTorch DataLoader"),
        System("torch-2w", "torch", "torch", "peer", ("torch",), ("torch",),
               options={"workers": 2}, label="PyTorch DataLoader, 2 workers"),
        System("tfdata", "tfdata", "tfdata", "peer", ("tensorflow",),
               ("tensorflow-cpu", "tensorflow"), label="tf.data"),
        System("hf", "hf", "hf", "peer", ("datasets",), ("datasets", "pyarrow"),
               label="HF datasets"),
        System("dm_pix", "dm_pix", "dm_pix", "peer", ("dm_pix",), ("dm-pix", *_JAX),
               scenarios=("RA",), label="dm_pix, jit(vmap)"),
        System("augmax", "augmax", "augmax", "peer", ("augmax",), ("augmax", *_JAX),
               scenarios=("RA",), label="augmax, jit(vmap)"),
        System("torchvision", "torchvision", "torchvision", "peer", ("torch",),
               ("torchvision", "torch"), scenarios=("RA",),
               label="torchvision v2 in a PyTorch DataLoader"),
        System("librosa", "librosa", "librosa", "peer", ("librosa",), ("librosa",),
               scenarios=("MEL",), label="librosa, batched"),
        System("librosa-clip", "librosa", "librosa", "peer", ("librosa",), ("librosa",),
               options={"per_clip": True}, scenarios=("MEL",), label="librosa, per clip"),
        System("torchaudio", "torchaudio", "torchaudio", "peer", ("torch",),
               ("torchaudio", "torch"), scenarios=("MEL",),
               label="torchaudio in a PyTorch DataLoader"),
    ]
}  # fmt: skip

__all__ = ["SYSTEMS", "BuildContext", "MakePass", "System"]
