"""Flow control of the host plane: host operators, workers, bad records, prefetching."""

from datarax.control.bad_records import BadRecordPolicy
from datarax.control.host_operator import HostOperator
from datarax.control.prefetcher import Prefetcher
from datarax.control.workers import InlineWorkers, ProcessWorkers, ThreadWorkers, make_workers

__all__ = [
    "BadRecordPolicy",
    "HostOperator",
    "InlineWorkers",
    "Prefetcher",
    "ProcessWorkers",
    "ThreadWorkers",
    "make_workers",
]
