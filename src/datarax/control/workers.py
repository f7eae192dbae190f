"""Worker pools of the host plane: inline, threads, or processes.

A pool runs a list of tasks and returns their results in task order, so what a
pipeline produces never depends on the pool's kind, its size, or which worker
finishes first. Tasks are ``job.run(*args)`` calls of one picklable *job* object:

- :class:`InlineWorkers` runs them on the calling thread (``workers=0``);
- :class:`ThreadWorkers` on a thread pool (the default: decoders that release the
  GIL, such as zlib, image codecs and file reads, run in parallel);
- :class:`ProcessWorkers` on worker processes started with ``spawn``; the job is
  pickled once per worker, NumPy results travel through shared memory
  (:mod:`datarax.memory`). A worker that dies is detected at once (its process
  sentinel) and reported as a :class:`~datarax.core.errors.WorkerError` naming the
  record it was working on; workers ignore Ctrl-C, which reaches the main process,
  and are stopped when the pool is closed or the interpreter exits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import pickle
import signal
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Protocol

from datarax.core.config import check_int
from datarax.core.errors import ConfigError, WorkerError
from datarax.core.exit import POOLS, at_exit

WorkerMode = Literal["thread", "process"]
#: Describes where a task is when its worker dies: ``describe(task_index) -> str``.
Describe = Callable[[int], str]


class Workers(Protocol):
    """Runs ``job.run(*args)`` for every ``args`` in ``tasks``; results in task order."""

    size: int

    def run(self, tasks: Sequence[tuple], describe: Describe) -> list[Any]: ...

    def close(self) -> None: ...


class InlineWorkers:
    """Runs every task on the calling thread."""

    size = 0

    def __init__(self, job: Any) -> None:
        self._job = job

    def run(self, tasks: Sequence[tuple], describe: Describe) -> list[Any]:
        return [self._job.run(*args) for args in tasks]

    def close(self) -> None:
        pass


class ThreadWorkers:
    """Runs tasks on ``size`` threads."""

    def __init__(self, job: Any, size: int) -> None:
        self._job, self.size = job, size
        self._pool = ThreadPoolExecutor(size, thread_name_prefix="datarax-worker")

    def run(self, tasks: Sequence[tuple], describe: Describe) -> list[Any]:
        futures = [self._pool.submit(self._job.run, *args) for args in tasks]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class ProcessWorkers:
    """Runs tasks on ``size`` worker processes (started on first use).

    Args:
        job: The picklable object whose ``run`` method each task calls.
        size: Number of processes.
        where: Names the pipeline part in errors.
    """

    def __init__(self, job: Any, size: int, *, where: str) -> None:
        self.size, self._where = size, where
        try:
            self._payload = pickle.dumps(job)
        except Exception as exc:  # lambdas, local functions, open handles
            raise WorkerError(
                "the host-plane work cannot be sent to worker processes",
                where=where,
                expected="picklable sources and host operators",
                found=f"{type(exc).__name__}: {exc}",
                hint="Define functions at module level, or use worker_mode='thread'",
            ) from exc
        self._procs: list[Any] = []
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        _POOLS.add(self)

    def _start(self) -> None:
        """Start the workers: all of them, or (after an error or a Ctrl-C) none."""
        ctx = multiprocessing.get_context("spawn")
        procs: list[Any] = []
        conns: list[Any] = []
        try:
            for _ in range(self.size):
                parent, child = ctx.Pipe()
                conns.append(parent)
                proc = ctx.Process(
                    target=_worker_main,
                    args=(child, self._payload),
                    daemon=True,
                    name="datarax-worker",
                )
                proc.start()
                procs.append(proc)
                child.close()
        except BaseException:  # a worker that did start sees its pipe close and ends
            for conn in conns:
                conn.close()
            for proc in procs:
                proc.terminate()
                proc.join(timeout=5)
            raise
        self._procs, self._conns = procs, conns

    def run(self, tasks: Sequence[tuple], describe: Describe) -> list[Any]:
        with self._lock:
            if not self._procs:
                if _EXITING.is_set():  # a read still running at exit must not start workers
                    raise WorkerError(
                        "worker processes are not started while the interpreter exits",
                        where=self._where,
                    )
                self._start()
            busy: dict[int, int] = {}  # worker -> task
            try:
                return self._run(tasks, describe, busy)
            except BaseException:  # an error here, or Ctrl-C while waiting for the workers
                if busy:  # their replies would answer the next run's tasks: stop them
                    self._terminate()
                raise

    def _run(self, tasks: Sequence[tuple], describe: Describe, busy: dict[int, int]) -> list[Any]:
        results: list[Any] = [None] * len(tasks)
        idle = list(range(self.size))
        pending = list(range(len(tasks)))[::-1]
        failure: BaseException | None = None
        while pending or busy:
            while pending and idle and failure is None:
                w, t = idle.pop(), pending.pop()
                # Busy before the send: a Ctrl-C in the middle of it must stop this
                # worker too, or its reply would answer a later run's task.
                busy[w] = t
                try:
                    self._conns[w].send(tasks[t])
                except OSError as exc:  # the worker died while it had no task
                    del busy[w]
                    raise self._lost(w, f"before {describe(t)}") from exc
            if not busy:
                break
            ready = multiprocessing.connection.wait(
                [self._conns[w] for w in busy] + [self._procs[w].sentinel for w in busy]
            )
            for w in list(busy):
                conn, proc = self._conns[w], self._procs[w]
                if conn in ready:
                    try:
                        ok, value = conn.recv()
                    except (EOFError, OSError):
                        ok, value = None, None
                    if ok is not None:
                        t = busy.pop(w)
                        idle.append(w)
                        if ok:
                            results[t] = value
                        elif failure is None:
                            failure = value
                        continue
                if conn in ready or proc.sentinel in ready:
                    proc.join(timeout=5)
                    if proc.exitcode is None:
                        continue
                    raise self._lost(w, f"while {describe(busy.pop(w))}")
        if failure is not None:
            raise failure
        return results

    def _lost(self, w: int, when: str) -> WorkerError:
        """The error for worker ``w``, found dead; the other workers are stopped."""
        proc = self._procs[w]
        proc.join(timeout=5)
        code = proc.exitcode
        death = "stopped answering" if code is None else _death(code)
        self._terminate()
        return WorkerError(
            f"worker process {w} (pid {proc.pid}) {death} {when}",
            where=self._where,
            expected="workers that finish their records",
            found=f"exit code {code}",
            hint="Run with worker_mode='thread' or workers=0 to see the error in this process",
        )

    def _terminate(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(timeout=5)
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []

    def close(self) -> None:
        """Stop the worker processes (they finish the task they are on first)."""
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self._procs:
            proc.join(timeout=5)
        self._terminate()

    def __del__(self, _suppress=contextlib.suppress) -> None:
        # Bound here: module globals may be gone when a pool is collected at exit.
        with _suppress(Exception):
            self._terminate()


def make_workers(job: Any, size: int, mode: WorkerMode, *, where: str) -> Workers:
    """A pool of ``size`` workers of kind ``mode`` (``size=0``: inline)."""
    size = check_int(size, where=where, minimum=0, message="invalid number of workers")
    if mode not in ("thread", "process"):
        raise ConfigError(
            "unknown worker mode",
            where=where,
            expected="'thread' or 'process'",
            found=repr(mode),
        )
    if size == 0:
        return InlineWorkers(job)
    if mode == "thread":
        return ThreadWorkers(job, size)
    return ProcessWorkers(job, size, where=where)


def _death(exitcode: int) -> str:
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with code {exitcode}"


def _worker_main(conn, payload: bytes) -> None:
    """A worker process: run tasks until told to stop or the main process goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business
    job: Any = None
    failure: BaseException | None = None
    try:
        job = pickle.loads(payload)
    except BaseException as exc:  # reported with the first task, in the main process
        failure = WorkerError(
            "a worker process cannot load the host-plane work",
            expected="sources and host operators importable in a new process",
            found=f"{type(exc).__name__}: {exc}",
        )
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            if failure is not None:
                raise failure
            reply = (True, job.run(*task))
        except BaseException as exc:
            reply = (False, _picklable(exc))
        try:
            conn.send(reply)
        except (OSError, pickle.PicklingError):
            return


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return WorkerError(
            "a worker raised an error that cannot be sent back",
            found=f"{type(exc).__name__}: {exc}",
        )


_POOLS: weakref.WeakSet[ProcessWorkers] = weakref.WeakSet()
_EXITING = threading.Event()


def _close_pools() -> None:
    _EXITING.set()
    for pool in list(_POOLS):
        with contextlib.suppress(Exception):
            pool._terminate()


# Pools close before threads that wait for a read from them are joined.
at_exit(_close_pools, stage=POOLS)
