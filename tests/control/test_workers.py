"""Worker pools: results in task order, and worker processes that die, fail or are interrupted.

A worker process killed on a record is reported at once, naming the record; one that
dies while idle is reported at the next read; a read interrupted in the main process
leaves no stale replies behind; Ctrl-C stops the pipeline, its workers and its shared
memory; host operators that cannot be pickled are refused with a hint.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from host_records import kill_on_13, make_records, scale, tagged

from datarax import from_source
from datarax.control import ThreadWorkers, make_workers
from datarax.core.errors import ConfigError, WorkerError
from datarax.dag.nodes import HostOperator
from datarax.sources.record import SequenceSource

HERE = Path(__file__).parent


def raises(cls, *parts: str):
    """``pytest.raises`` requiring every part, literally and in order, in the message."""
    return pytest.raises(cls, match=".*".join(re.escape(p) for p in parts))


def worker_pids() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.name == "datarax-worker"}


def wait_dead(pids, timeout: float = 10.0) -> list[int]:
    """The pids still running (not zombies) after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


# -- pools ---------------------------------------------------------------------------------


class Sleepy:
    """A job whose early tasks take longest, so that they finish last."""

    def run(self, i: int, n: int) -> int:
        time.sleep(0.02 * (n - i))
        return i * i


def test_thread_pool_returns_results_in_task_order():
    pool = ThreadWorkers(Sleepy(), 4)
    try:
        assert pool.run([(i, 6) for i in range(6)], str) == [0, 1, 4, 9, 16, 25]
    finally:
        pool.close()
    assert make_workers(Sleepy(), 0, "process", where="w").run([(2, 2)], str) == [4]


def test_invalid_pool_settings_are_config_errors():
    for size in (-1, True, 1.5):
        with raises(ConfigError, "w: invalid number of workers; expected an int >= 0", repr(size)):
            make_workers(Sleepy(), size, "thread", where="w")
    with raises(ConfigError, "w: unknown worker mode; expected 'thread' or 'process'", "'fork'"):
        make_workers(Sleepy(), 2, "fork", where="w")


# -- worker processes that die -------------------------------------------------------------


def test_worker_killed_on_a_record_is_reported_at_once_naming_the_record():
    pipeline = from_source(
        SequenceSource(make_records(20)),
        4,
        workers=2,
        worker_mode="process",
        prefetch=0,
        batches_per_call=1,
    ) >> HostOperator(kill_on_13)
    before = worker_pids()
    it = iter(pipeline)
    assert next(it).record_ids.tolist() == [0, 1, 2, 3]  # the workers run
    pool = worker_pids() - before
    assert len(pool) == 2
    start = time.monotonic()
    with raises(
        WorkerError,
        "SequenceSource[list]: worker process ",
        " was killed by SIGKILL while computing record 13; expected workers that finish "
        "their records, found exit code -9. Run with worker_mode='thread' or workers=0",
    ):
        for _ in it:
            pass
    assert time.monotonic() - start < 10
    assert wait_dead(pool, timeout=5) == []  # the other worker is stopped too


@pytest.fixture(scope="module")
def tagged_plane():
    """The host plane of a pipeline whose records take 0.1 s each on two worker processes."""
    pipeline = from_source(
        SequenceSource(make_records(12)), 4, workers=2, worker_mode="process"
    ) >> HostOperator(tagged)
    return pipeline.host_plane


def read(plane, ids) -> dict[str, np.ndarray]:
    ids = np.asarray(ids)
    arrays, skipped, failure = plane.read(ids, np.arange(ids.size), 0, ids.size)
    assert skipped == [] and failure is None
    return arrays


def assert_records(arrays, ids) -> None:
    records = make_records(12)
    for field in ("id", "x", "y"):
        want = np.stack([records[i][field] for i in ids])
        np.testing.assert_array_equal(arrays[field], want, err_msg=field)


def test_an_interrupted_read_leaves_no_stale_replies(tagged_plane):
    assert_records(read(tagged_plane, range(2)), range(2))  # the workers run

    def interrupt(*_):
        raise TimeoutError("interrupted")

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.15)  # while the workers compute
        with pytest.raises(TimeoutError):
            read(tagged_plane, range(8))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    ids = [9, 10, 11, 3]
    assert_records(read(tagged_plane, ids), ids)


def test_a_worker_dying_while_idle_is_reported_at_the_next_read(tagged_plane):
    pids = {int(p) for p in read(tagged_plane, range(8))["pid"]}
    assert len(pids) == 2 and os.getpid() not in pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert wait_dead(pids) == []
    with pytest.raises(WorkerError) as info:
        read(tagged_plane, [4, 5, 6, 7])
    message = str(info.value)
    pid = int(re.search(r"\(pid (\d+)\)", message).group(1))
    assert pid in pids
    # "before" when sending the task finds the pipe closed, "while" when the send
    # still went through and the death is seen afterwards: both name the record.
    # Worker 1 is sent record 4 first, worker 0 record 5; either death may be seen first.
    assert re.search(
        rf"SequenceSource\[list\]: worker process (1 \(pid {pid}\) was killed by SIGKILL "
        rf"(before|while) computing record 4|0 \(pid {pid}\) was killed by SIGKILL "
        r"(before|while) computing record 5); expected workers that finish their records, "
        r"found exit code -9",
        message,
    ), message
    # The next read starts new workers.
    arrays = read(tagged_plane, [4, 5, 6, 7])
    assert_records(arrays, [4, 5, 6, 7])
    assert not {int(p) for p in arrays["pid"]} & pids


# -- what cannot go to worker processes -----------------------------------------------------


def test_unpicklable_host_operators_are_refused_at_the_first_batch():
    def shifted(record):
        return scale({**record, "x": record["x"] + 1})

    for fn, found in (
        (lambda r: {**r, "x": r["x"] + 1}, "Can't pickle local object '"),
        (shifted, "Can't pickle local object '"),
    ):
        pipeline = from_source(
            SequenceSource(make_records(4)), 2, workers=2, worker_mode="process"
        ) >> HostOperator(fn)
        it = iter(pipeline)  # building and starting the iterator are fine
        with raises(
            WorkerError,
            "SequenceSource[list]: the host-plane work cannot be sent to worker processes; "
            "expected picklable sources and host operators, found ",
            found,
            "Define functions at module level, or use worker_mode='thread'",
        ):
            next(it)
        thread = from_source(SequenceSource(make_records(4)), 2, workers=2) >> HostOperator(fn)
        assert len(list(thread)) == 2  # on threads they run


# -- Ctrl-C ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_stops_the_pipeline_its_workers_and_its_shared_memory():
    child = subprocess.Popen(
        [sys.executable, str(HERE / "interrupt_child.py")],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    watchdog = threading.Timer(120, child.kill)
    watchdog.start()
    try:
        lines = []
        for line in child.stdout:
            lines.append(line.split())
            if lines[-1] == ["started"]:
                break
        assert lines and lines[-1] == ["started"], child.communicate()[1][-2000:]
        workers = [int(pid) for words in lines if words[0] == "workers" for pid in words[1:]]
        assert len(workers) == 2
        start = time.monotonic()
        child.send_signal(signal.SIGINT)
        # The read in progress takes 160 s: an exit within 60 s did not wait for it, and
        # leaves a wide margin on a loaded machine.
        try:
            out, err = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGUSR1)  # every thread's stack, to stderr
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.communicate(timeout=5)  # output read so far is kept
            child.kill()
            stacks = child.communicate()[1]
            pytest.fail(f"no exit 60 s after Ctrl-C; the child's threads:\n{stacks[-6000:]}")
        assert time.monotonic() - start < 60
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode != 0
    assert "KeyboardInterrupt" in err
    assert "Exception ignored" not in err, err[-2000:]
    blocks = [w[1] for w in lines + [x.split() for x in out.splitlines()] if w[:1] == ["shm"]]
    assert blocks, "the child created no shared memory"
    assert [path for path in blocks if os.path.exists(path)] == []
    assert wait_dead(workers, timeout=5) == []
