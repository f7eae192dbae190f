"""Run in a fresh process: iterate a pipeline with worker processes until interrupted.

Prints ``shm PATH`` for every shared-memory block it creates, ``workers PID PID``
once its worker processes run, then ``started``; the test then sends SIGINT.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import signal
import sys
import threading

from host_records import make_records, slow_after_32

import datarax.memory.shared as shared
from datarax import from_source
from datarax.dag.nodes import HostOperator

_OUTPUT = threading.Lock()


def say(*words) -> None:
    """One whole line to stdout (blocks are created on the prefetch thread too)."""
    with _OUTPUT:
        sys.stdout.write(" ".join(map(str, words)) + "\n")
        sys.stdout.flush()


def log_blocks() -> None:
    """Print the path of every block created from now on."""
    create = shared.SharedArrays.create.__func__

    def logged(cls, fields):
        block = create(cls, fields)
        say("shm", block.path)
        return block

    shared.SharedArrays.create = classmethod(logged)


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's view of a hang
    # Ctrl-C raises KeyboardInterrupt, as in a terminal, even when this process was
    # started from a background job (which inherits SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    log_blocks()
    # Batches of 32 records, one per read: the second read takes 160 s, far longer than
    # a prompt exit.
    pipeline = from_source(
        make_records(2000), 32, workers=2, worker_mode="process", batches_per_call=1
    )
    it = iter(pipeline >> HostOperator(slow_after_32))
    next(it)
    workers = [p.pid for p in multiprocessing.active_children() if p.name == "datarax-worker"]
    say("workers", *workers)
    say("started")
    for _ in it:
        pass
