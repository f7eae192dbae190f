"""datarax.benchmarking: the comparative benchmark suite behind ``datarax-bench``.

Scenarios (W1-W4 of BENCHMARKS.md, ArrayRecord I/O, the README's Advanced DAG, operator
depth 1/10/100, masked-LM text preparation) run on datarax, on hand-written NumPy and JAX
references and on peer loaders (Grain, PyTorch, tf.data, HuggingFace datasets), each pair
in its own process from the same host arrays.

Example:
    >>> from datarax.benchmarking import SCENARIOS, SYSTEMS
    >>> "W4" in SCENARIOS and SYSTEMS["grain"].role
    'peer'
"""

from datarax.benchmarking.adapters import SYSTEMS, System
from datarax.benchmarking.compare import Change, compare
from datarax.benchmarking.errors import BenchmarkError, MissingFrameworkError, ResultsFileError
from datarax.benchmarking.monitor import ResourceMonitor
from datarax.benchmarking.profiles import PROFILES, Profile
from datarax.benchmarking.results import load_results, markdown
from datarax.benchmarking.runner import measure, time_passes
from datarax.benchmarking.scenarios import SCENARIOS, Scenario
from datarax.benchmarking.suite import run_suite

__all__ = [
    "PROFILES",
    "SCENARIOS",
    "SYSTEMS",
    "BenchmarkError",
    "Change",
    "MissingFrameworkError",
    "Profile",
    "ResourceMonitor",
    "ResultsFileError",
    "Scenario",
    "System",
    "compare",
    "load_results",
    "markdown",
    "measure",
    "run_suite",
    "time_passes",
]
