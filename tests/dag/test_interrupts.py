"""Ctrl-C and several threads: the stream is never corrupted, and nothing is lost."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from interrupting import InterruptAtPoint, InterruptingDecoder, InterruptOnce

from datarax import from_source
from datarax.control import Prefetcher
from datarax.dag.nodes import HostOperator
from datarax.dag.program import Program
from datarax.sources import MemorySource, MemorySourceConfig, SequenceSource
from harness import snapshot

N = 60


def source(placement: str = "host", size: int = N) -> MemorySource:
    return MemorySource(MemorySourceConfig(placement=placement), data={"x": np.arange(size)})


def keep(record):
    return record


def pipeline(op, prefetch: int, workers: int = 0, mode: str = "thread", size: int = N):
    return from_source(
        source(size=size),
        4,
        shuffle=True,
        seed=5,
        num_epochs=2,
        prefetch=prefetch,
        batches_per_call=2,
        workers=workers,
        worker_mode=mode,
    ) >> HostOperator(op)


@pytest.mark.parametrize(
    ("prefetch", "workers", "mode"),
    [(0, 0, "thread"), (2, 0, "thread"), (0, 2, "thread"), (2, 2, "thread"), (1, 2, "process")],
    ids=["inline", "prefetch-thread", "thread-workers", "both", "process-workers"],
)
def test_an_interrupted_read_loses_nothing_and_the_state_stays_before_it(
    tmp_path, prefetch, workers, mode
):
    reference = [snapshot(b) for b in pipeline(keep, 0)]
    # Record 37 of epoch 1's order: interrupted in the middle of the second epoch.
    victim = int(reference_ids(pipeline(keep, 0))[N + 37])
    it = iter(pipeline(InterruptOnce(victim, tmp_path / "interrupted"), prefetch, workers, mode))
    got, state_at_interrupt = [], None
    while True:
        state = it.get_state()
        try:
            batch = next(it)
        except KeyboardInterrupt:
            state_at_interrupt = it.get_state()
            assert state_at_interrupt == state  # nothing handed out, nothing skipped
            continue
        except StopIteration:
            break
        got.append(snapshot(batch))
    assert state_at_interrupt is not None, "the interrupt never happened"
    assert got == reference  # every batch once, in order, after the interrupt too
    restored = iter(  # built alike (its record function is equal), it no longer interrupts
        pipeline(InterruptOnce(victim, tmp_path / "interrupted"), prefetch, workers, mode)
    )
    restored.set_state(state_at_interrupt)
    rest = [snapshot(b) for b in restored]
    assert rest == reference[len(reference) - len(rest) :] and len(rest) > 0


def record_pipeline(decoder, prefetch: int, workers: int = 0, mode: str = "thread"):
    records = [{"x": np.int32(i)} for i in range(N)]
    return from_source(
        SequenceSource(records, decoder=decoder),
        4,
        shuffle=True,
        seed=5,
        num_epochs=2,
        prefetch=prefetch,
        batches_per_call=2,
        workers=workers,
        worker_mode=mode,
    )


def pass_through(raw):
    return raw


def assert_interrupt_loses_nothing(make, reference) -> None:
    """One interrupt somewhere in the stream: nothing lost, the state stays before it,
    and a new iterator restored from that state gives the rest of the stream."""
    it = iter(make())
    got, state_at_interrupt = [], None
    while True:
        state = it.get_state()
        try:
            batch = next(it)
        except KeyboardInterrupt:
            state_at_interrupt = it.get_state()
            assert state_at_interrupt == state
            continue
        except StopIteration:
            break
        got.append(snapshot(batch))
    assert state_at_interrupt is not None, "the interrupt never happened"
    assert got == reference
    restored = iter(make())
    restored.set_state(state_at_interrupt)
    rest = [snapshot(b) for b in restored]
    assert rest == reference[len(reference) - len(rest) :] and len(rest) > 0


@pytest.mark.parametrize(
    ("prefetch", "workers", "mode"),
    [(0, 0, "thread"), (2, 0, "thread"), (0, 2, "thread"), (1, 2, "process")],
    ids=["inline", "prefetch-thread", "thread-workers", "process-workers"],
)
def test_an_interrupted_decode_loses_nothing(tmp_path, prefetch, workers, mode):
    reference = [snapshot(b) for b in record_pipeline(pass_through, 0)]
    victim = int(reference_ids(record_pipeline(pass_through, 0))[N + 21])
    marker = tmp_path / "interrupted"
    assert_interrupt_loses_nothing(
        lambda: record_pipeline(InterruptingDecoder(victim, marker), prefetch, workers, mode),
        reference,
    )


@pytest.mark.parametrize(
    ("prefetch", "workers"), [(0, 0), (2, 0), (0, 2)], ids=["inline", "prefetch-thread", "workers"]
)
def test_an_interrupted_transfer_or_dispatch_loses_nothing(monkeypatch, prefetch, workers):
    reference = [snapshot(b) for b in pipeline(keep, 0)]
    calls = {"n": 0}
    run = Program.run

    def interrupted_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # a chunk in the middle of the stream, before its output
            raise KeyboardInterrupt
        return run(self, *args, **kwargs)

    monkeypatch.setattr(Program, "run", interrupted_once)
    assert_interrupt_loses_nothing(lambda: pipeline(keep, prefetch, workers), reference)
    assert calls["n"] > 7


@pytest.mark.slow
@pytest.mark.parametrize(
    ("prefetch", "workers"), [(0, 0), (2, 0), (0, 2)], ids=["inline", "prefetch-thread", "workers"]
)
def test_an_interrupt_at_any_point_of_datarax_loses_nothing(prefetch, workers):
    # Every call is interrupted at the first point of datarax where CPython can deliver
    # a Ctrl-C, then at its second, and so on, until one call gets through: each batch
    # is handed out only after an interrupt at every point on its way, the hand-over
    # and the making of each chunk included.
    reference = [snapshot(b) for b in pipeline(keep, 0, size=16)]
    it = iter(pipeline(keep, prefetch, workers, size=16))
    got, k, interrupts = [], 1, 0
    while True:
        state = it.get_state()
        tracer = InterruptAtPoint(k)
        sys.settrace(tracer)
        try:
            batch = next(it)
        except KeyboardInterrupt:
            sys.settrace(None)
            assert it.get_state() == state, f"interrupted at point {k}"
            k, interrupts = k + 1, interrupts + 1
            continue
        except StopIteration:
            break
        finally:
            sys.settrace(None)
        assert not tracer.fired, f"the interrupt at point {k} was swallowed"
        got.append(snapshot(batch))
        k = 1
    assert got == reference
    assert interrupts > 20 * len(reference)  # many points of every call were hit


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_prefetcher_hands_an_interrupt_over_once_and_loses_nothing(tmp_path, prefetch):
    reference = [snapshot(b) for b in pipeline(keep, 0)]
    op = InterruptOnce(int(reference_ids(pipeline(keep, 0))[22]), tmp_path / "interrupted")
    prefetcher = Prefetcher(iter(pipeline(op, prefetch)), buffer_size=3)
    got, interrupted = [], 0
    while True:
        state = prefetcher.get_state()
        try:
            got.append(snapshot(next(prefetcher)))
        except KeyboardInterrupt:
            interrupted += 1
            assert prefetcher.get_state() == state
        except StopIteration:
            break
    assert interrupted == 1 and got == reference


def reference_ids(pipe) -> np.ndarray:
    return np.concatenate([np.asarray(b["x"]) for b in pipe])


@pytest.mark.parametrize("placement", ["host", "device"])
def test_threads_sharing_one_iterator_get_each_batch_once(placement):
    pipe = from_source(source(placement), 3, shuffle=True, seed=1, num_epochs=3, prefetch=2)
    reference = [snapshot(b) for b in pipe.with_options()]
    it = iter(pipe)
    taken: list[list[tuple]] = [[] for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def pull(k: int) -> None:
        start.wait()
        try:
            for batch in it:
                taken[k].append((snapshot(batch), batch.epoch, int(batch.record_ids[0])))
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=pull, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    everything = [item for part in taken for item in part]
    assert len(everything) == len(reference)
    assert sorted(s for s, _, _ in everything) == sorted(reference)
    for part in taken:  # each thread sees its batches in stream order
        positions = [reference.index(s) for s, _, _ in part]
        assert positions == sorted(positions)


def test_threads_with_their_own_iterators_of_one_pipeline_each_get_the_whole_stream():
    pipe = from_source(source("device"), 4, shuffle=True, seed=2, num_epochs=1)
    reference = [snapshot(b) for b in pipe.with_options()]
    results: dict[int, list[tuple]] = {}
    iterators = [iter(pipe) for _ in range(3)]  # made together: all start at epoch 0

    def run(k: int) -> None:
        results[k] = [snapshot(b) for b in iterators[k]]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[k] == reference for k in range(3))
