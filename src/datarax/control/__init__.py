"""Host machinery below the DAG: workers, run-ahead, bad records, per-record functions.

Nothing here knows about nodes or pipelines: :mod:`datarax.dag` builds on it.
"""

from datarax.control.bad_records import BadRecordPolicy
from datarax.control.host_operator import HostFunction
from datarax.control.prefetcher import Prefetcher
from datarax.control.run_ahead import RunAhead
from datarax.control.wait_clock import WaitClock
from datarax.control.workers import InlineWorkers, ProcessWorkers, ThreadWorkers, make_workers

__all__ = [
    "BadRecordPolicy",
    "HostFunction",
    "InlineWorkers",
    "Prefetcher",
    "ProcessWorkers",
    "RunAhead",
    "ThreadWorkers",
    "WaitClock",
    "make_workers",
]
