"""Profiles: how many records and epochs each scenario runs, and which systems run it.

``full`` is the size of BENCHMARKS.md; ``ci_cpu`` shrinks the largest scenarios so that
every loader scenario on every installed framework with 5 repetitions ends within 10
minutes on 2 CPU cores, and the three training scenarios (T16, T256, TCNN) with 3
repetitions within about 3 minutes more; ``smoke`` (not listed in ``--help``) is for
tests.

Example:
    >>> PROFILES["ci_cpu"].records_for(SCENARIOS["W3"]) < SCENARIOS["W3"].records
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datarax.benchmarking.scenarios import SCENARIOS, Scenario


@dataclass(frozen=True)
class Profile:
    """Sizes and systems of one benchmark run.

    Args:
        name: ``"ci_cpu"``, ``"full"`` or ``"smoke"``.
        records: Records per scenario where it differs from the full size.
        epochs: Epochs per pass where they differ from the scenario's.
        systems: The systems run by default, in table order.
        timeout_s: Seconds one (scenario, system) process may run.
        listed: Shown in ``--help``.
    """

    name: str
    records: dict[str, int] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    systems: tuple[str, ...] = ()
    timeout_s: float = 600.0
    listed: bool = True

    def records_for(self, scenario: Scenario) -> int:
        """Records the scenario runs with in this profile."""
        return self.records.get(scenario.name, scenario.records)

    def epochs_for(self, scenario: Scenario) -> int:
        """Epochs per pass the scenario runs with in this profile."""
        return self.epochs.get(scenario.name, scenario.epochs_per_pass)


#: Every system, in table order: references first, then datarax, then the peers.
_COMMON = ("numpy", "numpy-loop", "jax", "datarax", "grain", "torch", "tfdata", "hf")
#: Also datarax's AR pipeline with no workers, the reference of its workers' speed-up,
#: and datarax's loop fused with the train step (training scenarios only).
_MEASURED = (*_COMMON[:4], "datarax-0w", "datarax-fused", *_COMMON[4:])
#: Where ``torch-2w`` goes in the full profile: right after ``torch``.
_AFTER_TORCH = _MEASURED.index("torch") + 1
#: The libraries of the operator scenarios (RA, MEL, PACK); each has rows only there.
_OPERATOR_PEERS = ("dm_pix", "augmax", "torchvision", "librosa", "librosa-clip", "torchaudio")

PROFILES: dict[str, Profile] = {
    "full": Profile(
        "full",
        systems=(
            *_MEASURED[:_AFTER_TORCH],
            "torch-2w",
            *_MEASURED[_AFTER_TORCH:],
            *_OPERATOR_PEERS,
        ),
        timeout_s=1800,
    ),
    "ci_cpu": Profile(
        "ci_cpu",
        records={
            "W2": 10_000,
            "W3": 50_000,
            "AR": 10_000,
            "RA": 5_000,
            "MEL": 512,
            "PACK": 10_000,
            "TCNN": 6_144,
        },
        systems=(*_MEASURED, *_OPERATOR_PEERS),
        timeout_s=300,
    ),
    "smoke": Profile(
        "smoke",
        records={
            "W1": 128,
            "W1s": 128,
            "W2": 512,
            "W3": 4096,
            "W4": 512,
            "AR": 512,
            "MLM": 512,
            "D1": 128,
            "D10": 128,
            "D100": 128,
            "DAG": 128,
            "RA": 512,
            "MEL": 128,
            "PACK": 512,
            "T16": 128,
            "T256": 128,
            "TCNN": 512,
        },
        epochs={"W1": 2, "W1s": 2, "D1": 2, "D10": 2, "D100": 2, "DAG": 2, "T16": 2, "T256": 2},
        systems=(*_COMMON[:4], "datarax-fused", *_COMMON[4:], *_OPERATOR_PEERS),
        timeout_s=120,
        listed=False,
    ),
}

__all__ = ["PROFILES", "SCENARIOS", "Profile"]
