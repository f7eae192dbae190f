"""Soak: a pipeline on two worker processes under random worker kills, Ctrl-C and restores.

Usage::

    python -m benchmarks.soak --minutes 30 --output soak.json
    python -m benchmarks.soak --minutes 1            # a quick look

The pipeline reads a record source through a host operator on two worker processes,
shuffled, for as many epochs as time allows. At random steps the script

- kills one of the worker processes with SIGKILL (the next batches report a
  ``WorkerError``; the script then continues from ``get_state()``),
- sends itself SIGINT, as Ctrl-C would (the ``KeyboardInterrupt`` is let through
  only while the main thread is inside datarax, so that the script's own
  bookkeeping is never the part interrupted),
- restores: the state goes through JSON into a fresh iterator, sometimes of a
  freshly built pipeline (new worker processes).

After an error or an interrupt the iterator's state must equal the state saved
before the batch that failed; the script alternates between calling the same
iterator again and restoring a new one from that state. Every record of every epoch
must be seen exactly once, with its correct value. Memory is the resident set of
the main process and of each worker process, sampled every 5 s; the report
compares the medians of the first and of the last tenth of the run (after a
minute of warm-up), lists the median of every tenth, and gives the most worker
processes seen alive at once. The records seen are tallied in bounded memory
(:class:`EpochTally`), so that the script's own bookkeeping does not grow.

The report (printed, and written as JSON with ``--output``) counts steps, epochs,
kills, interrupts and restores, records lost and duplicated (must be 0), wrong
values (must be 0), failed state checks (must be 0) and the memory figures. The
exit code is 1 when any of the counts that must be 0 is not.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RECORDS = 3000
BATCH = 32


def work(record: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The host operator: a value the checks can recompute from the record id."""
    rid = int(record["id"])
    return {"id": record["id"], "value": np.int64(rid * 7 + 3), "payload": record["payload"]}


def make_records(n: int) -> list[dict[str, np.ndarray]]:
    """``n`` records with an id and a 1 KiB payload."""
    return [{"id": np.int64(i), "payload": np.full(256, i, dtype=np.int32)} for i in range(n)]


def build_pipeline(records: list[dict[str, np.ndarray]], seed: int):
    """The soaked pipeline: two process workers, a host operator, shuffled, endless."""
    from datarax import from_source
    from datarax.dag.nodes import HostOperator
    from datarax.sources import SequenceSource

    return from_source(
        SequenceSource(records),
        BATCH,
        shuffle=True,
        seed=seed,
        num_epochs=None,
        workers=2,
        worker_mode="process",
    ) >> HostOperator(work)


class EpochTally:
    """How often each record of each epoch was handed out, in bounded memory.

    The counts of an epoch are kept as one array until the stream is two epochs
    past it (a restore never goes back that far); it is then folded into the
    totals of records lost and duplicated, and dropped.
    """

    def __init__(self, records: int) -> None:
        self.records = records
        self.open: dict[int, np.ndarray] = {}
        self.completed = self.lost = self.duplicated = 0

    def add(self, epochs: np.ndarray, ids: np.ndarray) -> None:
        """Count the records ``ids`` of a batch, of epochs ``epochs`` (one per record)."""
        for epoch in np.unique(epochs).tolist():
            counts = self.open.setdefault(epoch, np.zeros(self.records, np.int32))
            np.add.at(counts, ids[epochs == epoch], 1)
        newest = max(self.open)
        for epoch in [e for e in self.open if e < newest - 1]:
            self._close(self.open.pop(epoch))

    def finish(self) -> None:
        """Fold every epoch but the one in progress (checked for duplicates only)."""
        newest = max(self.open, default=0)
        for epoch in [e for e in self.open if e < newest]:
            self._close(self.open.pop(epoch))
        if self.open:
            self.duplicated += int(np.maximum(self.open[newest] - 1, 0).sum())

    def _close(self, counts: np.ndarray) -> None:
        self.completed += 1
        self.lost += int(np.count_nonzero(counts == 0))
        self.duplicated += int(np.maximum(counts - 1, 0).sum())


class Interrupter:
    """Delivers SIGINT to this process at a random moment inside ``next()``.

    The handler raises ``KeyboardInterrupt`` only while :meth:`inside` is active
    and some frame of the main thread's stack belongs to datarax; otherwise (the
    script's own bookkeeping is running) the interrupt waits for the next call.
    """

    def __init__(self, rng: random.Random) -> None:
        import datarax

        self.package = str(Path(datarax.__file__).resolve().parent)
        self.rng = rng
        self.enabled = False
        self.pending = False
        self.delivered = 0
        self.step_seconds = 0.01  # running mean of one next(), to time the interrupts
        self.previous_int = signal.signal(signal.SIGINT, self._handle)
        self.previous_alarm = signal.signal(
            signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT)
        )

    def arm(self) -> None:
        """Interrupt the next ``next()`` at a random moment within it."""
        self.pending = True

    def next(self, it: Any) -> Any:
        """``next(it)``, interrupted if an interrupt is armed."""
        if self.pending:
            self.pending = False
            delay = self.rng.uniform(0.00005, 1.5 * self.step_seconds)
            signal.setitimer(signal.ITIMER_REAL, delay)
        self.enabled = True
        start = time.perf_counter()
        try:
            return next(it)
        finally:
            self.enabled = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.step_seconds += 0.05 * (time.perf_counter() - start - self.step_seconds)

    def close(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGINT, self.previous_int)
        signal.signal(signal.SIGALRM, self.previous_alarm)

    def _handle(self, _signum: int, frame: Any) -> None:
        if self.enabled:
            while frame is not None:
                if frame.f_code.co_filename.startswith(self.package):
                    self.delivered += 1
                    raise KeyboardInterrupt
                frame = frame.f_back
        self.pending = True  # not inside datarax: interrupt the next call instead


def memory_mib() -> tuple[float, float, int]:
    """Resident set of this process, and of its worker processes, in MiB; how many workers."""
    import psutil

    me = psutil.Process()
    children, workers = 0, 0
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()):
                children += child.memory_info().rss
                workers += 1
    return me.memory_info().rss / 2**20, children / 2**20, workers


def worker_pids() -> list[int]:
    """The pids of this process's worker processes (not multiprocessing's helpers)."""
    import psutil

    pids = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()):
                pids.append(child.pid)
    return pids


def soak(
    minutes: float,
    seed: int = 0,
    records: int = RECORDS,
    max_steps: int | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Run the soak for ``minutes`` (or until ``max_steps`` batches); returns the report.

    ``log`` (a file) gets a line of counts every minute.
    """
    from datarax.core.errors import WorkerError

    rng = random.Random(seed)
    data = make_records(records)
    pipeline = build_pipeline(data, seed)
    it = iter(pipeline)
    tally = EpochTally(records)
    counts = collections.Counter()
    wrong_values = 0
    state_mismatches: list[str] = []
    memory: list[tuple[float, float]] = []
    interrupter = Interrupter(rng)
    start = time.monotonic()
    deadline = start + minutes * 60
    next_sample = start
    pending_kill = False
    try:
        while time.monotonic() < deadline and counts["steps"] != max_steps:
            before = it.get_state()
            action = rng.random()
            if action < 0.004 and not pending_kill:
                pids = worker_pids()
                if pids:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    counts["kills"] += 1
                    pending_kill = True
            elif action < 0.10:
                interrupter.arm()
            elif action < 0.11:
                fresh = rng.random() < 0.3
                if fresh:
                    pipeline = build_pipeline(data, seed)
                    pending_kill = False  # the old pool (and its dead worker) is dropped
                it = iter(pipeline)
                it.set_state(json.loads(json.dumps(before)))
                counts["restores_fresh_pipeline" if fresh else "restores"] += 1
                continue
            try:
                batch = interrupter.next(it)
            except (KeyboardInterrupt, WorkerError) as error:
                kind = "interrupts" if isinstance(error, KeyboardInterrupt) else "worker_errors"
                counts[kind] += 1
                pending_kill = pending_kill and kind != "worker_errors"
                after = it.get_state()
                if after != before:
                    state_mismatches.append(f"{kind}: state moved from {before} to {after}")
                if rng.random() < 0.5:
                    it = iter(pipeline)
                    it.set_state(json.loads(json.dumps(after)))
                    counts["restores_after_failure"] += 1
                continue
            counts["steps"] += 1
            ids = np.asarray(batch.record_ids)
            wrong_values += int(np.sum(np.asarray(batch.data["value"]) != ids * 7 + 3))
            wrong_values += int(np.sum(np.asarray(batch.data["payload"])[:, 0] != ids))
            tally.add(np.broadcast_to(np.asarray(batch.epoch), ids.shape), ids)
            now = time.monotonic()
            if now >= next_sample:
                memory.append((now - start, *memory_mib()))
                next_sample = now + 5
                if len(memory) % 12 == 0 and log is not None:  # a line a minute
                    print(f"{(now - start) / 60:.1f} min {dict(counts)}", file=log, flush=True)
    finally:
        interrupter.close()
    tally.finish()
    return _report(tally, counts, wrong_values, state_mismatches, memory, minutes, start)


def _report(tally, counts, wrong_values, mismatches, memory, minutes, start):
    warm = [m for m in memory if m[0] >= 60] or memory
    tenth = max(1, len(warm) // 10)

    def median(rows: list, column: int) -> float:
        return round(statistics.median(r[column] for r in rows), 1)

    return {
        "minutes": round((time.monotonic() - start) / 60, 2),
        "minutes_asked": minutes,
        "records_per_epoch": tally.records,
        "epochs_completed": tally.completed,
        **dict(sorted(counts.items())),
        "records_lost": tally.lost,
        "records_duplicated": tally.duplicated,
        "wrong_values": wrong_values,
        "state_mismatches": len(mismatches),
        "state_mismatch_examples": mismatches[:3],
        "rss_mib_main_first_tenth": median(warm[:tenth], 1),
        "rss_mib_main_last_tenth": median(warm[-tenth:], 1),
        "rss_growth_mib_main": round(median(warm[-tenth:], 1) - median(warm[:tenth], 1), 1),
        "rss_mib_per_worker_first_tenth": round(_per_worker(warm[:tenth]), 1),
        "rss_mib_per_worker_last_tenth": round(_per_worker(warm[-tenth:]), 1),
        "workers_alive_max": max(m[3] for m in memory),
        "rss_mib_main_max": round(max(m[1] for m in memory), 1),
        "rss_mib_main_by_tenth": [
            median(warm[i * tenth : (i + 1) * tenth], 1) for i in range(len(warm) // tenth)
        ],
        "memory_samples": len(memory),
    }


def _per_worker(rows: list) -> float:
    """Median resident set of one worker process over ``rows`` of memory samples."""
    values = [r[2] / r[3] for r in rows if r[3]]
    return statistics.median(values) if values else 0.0


def failed(report: dict[str, Any]) -> bool:
    """Whether any figure that must be 0 is not."""
    keys = ("records_lost", "records_duplicated", "wrong_values", "state_mismatches")
    return any(report[k] for k in keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", type=int, default=RECORDS)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    report = soak(args.minutes, args.seed, args.records, log=sys.stderr)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 1 if failed(report) else 0


if __name__ == "__main__":
    sys.exit(main())
