"""Records, decoders and host operators shared by the host-plane tests.

Everything here is defined at module level so that worker *processes* can unpickle it.
Each record carries its own id in the field ``"id"``, so decoders and host operators
can misbehave on chosen records.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from datarax.sources.record import StreamingSource


def make_records(n: int, odd: dict[int, int] | None = None) -> list[dict[str, np.ndarray]]:
    """``n`` records ``{"id", "x" (3 ints), "y"}``; ``odd`` gives some records another length."""
    odd = odd or {}
    return [
        {
            "id": np.int32(i),
            "x": np.arange(odd.get(i, 3), dtype=np.int32) + 10 * i,
            "y": np.float32(i) / 4,
        }
        for i in range(n)
    ]


def expected_scale(record: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What :func:`scale` gives, written out field by field."""
    return {
        "id": np.int32(record["id"]),
        "x": (record["x"] * 3 - 1).astype(np.int32),
        "y": np.float32(record["y"]),
        "total": np.int32(record["x"].sum()),
    }


def scale(record):
    """Transforms ``x`` and adds the field ``total``."""
    return {
        "id": record["id"],
        "x": record["x"] * 3 - 1,
        "y": record["y"],
        "total": np.int32(record["x"].sum()),
    }


def jitter(record, rng):
    """Adds two random normal values drawn from the record's generator."""
    return {**record, "noise": rng.normal(size=2).astype(np.float32)}


def drop_y(record):
    """Removes the field ``y``."""
    return {k: v for k, v in record.items() if k != "y"}


class FailOn:
    """A decoder raising ``ValueError`` for the records whose id is in ``ids``."""

    def __init__(self, ids) -> None:
        self.ids = frozenset(int(i) for i in ids)

    def __call__(self, raw):
        if int(raw["id"]) in self.ids:
            raise ValueError(f"corrupt bytes in record {int(raw['id'])}")
        return raw


def misbehave(record):
    """Like :func:`scale`, but returns a list for record 7 and raises for record 9."""
    rid = int(record["id"])
    if rid == 7:
        return [record["x"]]
    if rid == 9:
        raise ZeroDivisionError("no scale for record 9")
    return scale(record)


def kill_on_13(record):
    """Kills its own process (a worker) with SIGKILL on record 13."""
    if int(record["id"]) == 13:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    return record


def slow_after_32(record):
    """Takes 10 s for each record from record 32 on."""
    if int(record["id"]) >= 32:
        time.sleep(10.0)
    return record


def flaky(record, rng):
    """Fails for about a quarter of the records, others in every epoch (its generator decides)."""
    if rng.random() < 0.25:
        raise ValueError("flaky record")
    return record


def tagged(record):
    """Takes 0.1 s and adds the field ``pid``: the process that computed the record."""
    time.sleep(0.1)
    return {**record, "pid": np.int32(os.getpid())}


class CountedStream(StreamingSource):
    """A stream of ``length`` records ``{"id", "x"}`` that notes where each pass starts.

    ``starts`` lists the start of every ``iterate`` call, ``most_ahead`` the most
    records held read ahead after a read. Only the process that built it may read
    the stream.
    """

    def __init__(self, length: int, *, num_records: int | None = None) -> None:
        super().__init__(num_records=num_records, name="CountedStream")
        self.length = length
        self.starts: list[int] = []
        self.most_ahead = 0
        self.owner = os.getpid()

    def iterate(self, start: int):
        if os.getpid() != self.owner:
            raise RuntimeError("the stream is read in a worker process")
        self.starts.append(start)
        for i in range(start, self.length):
            yield {"id": np.int32(i), "x": np.full(2, i, np.int32)}

    def read_records(self, indices):
        out = super().read_records(indices)
        self.most_ahead = max(self.most_ahead, len(self._ahead))
        return out
