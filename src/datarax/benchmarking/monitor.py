"""`ResourceMonitor`: peak resident memory and CPU time of a process and its children.

A background thread samples the resident set size of the process tree (with ``psutil``
when installed), so worker processes count; without ``psutil`` it falls back to the
kernel's own peak of this process. CPU time is user + system time of the process, its
live children and its reaped children.

Example:
    >>> with ResourceMonitor(interval_s=0.01) as monitor:
    ...     start = monitor.cpu_seconds()
    ...     _ = sum(range(10**6))
    >>> monitor.peak_rss_mib() > 0 and monitor.cpu_seconds() >= start
    True
"""

from __future__ import annotations

import os
import resource
import threading
from types import TracebackType
from typing import Any


class ResourceMonitor:
    """Samples the process tree's memory in a thread; reads CPU time on demand.

    Args:
        interval_s: Seconds between two memory samples.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self._psutil = _import_psutil()
        self._process = None if self._psutil is None else self._psutil.Process(os.getpid())
        self._peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)

    def start(self) -> ResourceMonitor:
        """Start sampling (``with`` does it for you)."""
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take a last sample and stop the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sample()

    def peak_rss_mib(self) -> float:
        """The largest resident set size seen so far, in MiB (children included)."""
        own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        return max(self._peak_bytes, own_peak) / 2**20

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by this process and its children."""
        if self._process is None:
            own = resource.getrusage(resource.RUSAGE_SELF)
            done = resource.getrusage(resource.RUSAGE_CHILDREN)
            return own.ru_utime + own.ru_stime + done.ru_utime + done.ru_stime
        times = self._process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in self._children():
            try:
                child_times = child.cpu_times()
            except self._psutil.Error:  # a child that exited between listing and reading
                continue
            total += child_times.user + child_times.system
        return total

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        if self._process is None:
            return
        total = self._process.memory_info().rss
        for child in self._children():
            try:
                total += child.memory_info().rss
            except self._psutil.Error:  # a child that exited between listing and reading
                continue
        self._peak_bytes = max(self._peak_bytes, total)

    def _children(self) -> list[Any]:
        if self._process is None:
            return []
        try:
            return self._process.children(recursive=True)
        except self._psutil.Error:  # the process table changed while listing
            return []

    def __enter__(self) -> ResourceMonitor:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _import_psutil() -> Any:
    try:
        import psutil
    except ImportError:  # the kernel's own counters are used instead
        return None
    return psutil
