"""The benchmark workloads: re-exported from :mod:`datarax.benchmarking.scenarios`.

One definition of each workload lives in the package; this module keeps the names the
goal-checking scripts (``benchmarks.run``, ``benchmarks.memory``) use.
"""

from datarax.benchmarking.scenarios import DEPTHS, SCENARIOS, depth_step, stats_for
from datarax.benchmarking.scenarios import Scenario as Workload

WORKLOADS = SCENARIOS

__all__ = ["DEPTHS", "WORKLOADS", "Workload", "depth_step", "stats_for"]
