"""`PipelineIterator`: runs a pipeline, one compiled call per chunk of batches.

The host plane (sampler, host reads, dispatch of the compiled call) runs
``prefetch`` chunks ahead: on a background thread when records are read one by one on
the host, and from the caller's thread otherwise (dispatches are asynchronous, so XLA
computes the next chunks while the caller consumes this one).
The iterator's state is the position of the next batch it will hand out, so
prefetched work is simply recomputed after a restore: the stream is a pure function
of (pipeline, epoch, position).
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from datarax.core.batch import Batch
from datarax.core.errors import RecordError, StateError
from datarax.dag.base import Fanout
from datarax.dag.cache import scatter_rows

STATE_FORMAT = "datarax.pipeline_iterator"
STATE_VERSION = 2
INDEX_WINDOW = 16_384


class PipelineIterator(Iterator[Batch]):
    """Iterator over a pipeline's batches with exact, JSON-able state.

    Example:
        >>> import numpy as np
        >>> from datarax import from_source
        >>> from datarax.sources import MemorySource, MemorySourceConfig
        >>> p = from_source(MemorySource(MemorySourceConfig(), data={"x": np.arange(6)}), 2)
        >>> it = iter(p); _ = next(it); state = it.get_state()
        >>> state["epoch"], state["position"]
        (0, 2)
        >>> it2 = iter(p); it2.set_state(state); next(it2)["x"].tolist()
        [2, 3]
    """

    def __init__(self, pipeline) -> None:
        self._pipeline = pipeline
        self._source = pipeline.source
        self._sampler = pipeline.sampler
        self._geometry = pipeline.geometry
        self._num_epochs = pipeline.source_node.num_epochs
        self._first_epoch = pipeline.epoch_cursor
        self._epoch = self._first_epoch
        self._position = 0
        self._origin = 0  # where this epoch's batches start (0 unless resumed elastically)
        self._ready: deque[Any] = deque()
        self._producer: _Producer | None = None
        self._program: _ProgramSchedule | None = None
        self._skipped: list[int] = []  # records skipped so far in this epoch
        self._skipped_total = 0

    @property
    def pipeline(self):
        """The pipeline this iterator runs."""
        return self._pipeline

    # -- iteration -----------------------------------------------------------------
    def __iter__(self) -> PipelineIterator:
        return self

    def __next__(self) -> Any:
        if not self._ready:
            if self._finished():
                self.close()
                raise StopIteration
            self._ready.extend(self._next_chunk())
        batch = self._ready.popleft()
        first = batch[0] if isinstance(batch, tuple) else batch
        self._pipeline._advance_cursor(first.epoch)
        if first.skipped is not None:
            self._skipped.extend(int(i) for i in first.skipped)
            self._skipped_total += len(first.skipped)
        # Positions count this process's records (its share when split over processes).
        self._position += (
            self._geometry.batch_size if self._pipeline.split_over_processes else (first.batch_size)
        )
        if self._position >= self._origin + self._geometry.remaining(self._origin).epoch_end:
            self._epoch, self._position, self._origin = self._epoch + 1, 0, 0
            self._skipped = []
            if self._program is not None:  # every compilation lands in the first epoch
                self._program.current(wait=True)
        return batch

    def close(self) -> None:
        """Stop the background thread (also done when the iterator is collected)."""
        if self._producer is not None:
            self._producer.stop()
            self._producer = None

    def reset(self) -> None:
        """Go back to the start of this iterator's first epoch.

        The batches that follow are the ones this iterator handed out from its
        start, bit for bit (randomness follows the records and epochs, never the
        number of calls), unless operator parameters were changed meanwhile: like a
        restore, a reset reads them again.
        """
        self._restart()
        self._epoch, self._position, self._origin = self._first_epoch, 0, 0
        self._skipped = []

    def _restart(self) -> None:
        """Drop prefetched work and the compiled program (rebuilt at the next batch)."""
        self.close()
        self._ready.clear()
        if self._program is not None:
            self._program.stop()
            self._program = None

    # -- state ---------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The position of the next batch, as a small JSON-able dict."""
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "pipeline": self._pipeline.records_digest(),
            "first_epoch": self._first_epoch,
            "epoch": self._epoch,
            "position": self._pipeline.global_position(self._position),
            "origin": self._pipeline.global_position(self._origin),
            "batching": _batching(self._pipeline.global_geometry),
        }
        if self._pipeline.host_plane.policy.skips:
            state["skipped"] = list(self._skipped)
        return state

    def metrics(self) -> dict[str, Any]:
        """Counters of this iterator: position and the bad records it skipped.

        ``skipped`` lists the record ids skipped in the current epoch (up to the
        last batch handed out); ``skipped_total`` counts every skip since the
        iterator started or was last restored.
        """
        return {
            "epoch": self._epoch,
            "position": self._pipeline.global_position(self._position),
            "skipped": list(self._skipped),
            "skipped_total": self._skipped_total,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a state returned by :meth:`get_state` (in any process).

        The state may come from a pipeline with other batch sizes (``BatchNode`` or
        ``RebatchNode``), ``drop_remainder``, prefetch depth or number of epochs: the
        record stream continues from the same record, and the rest of that epoch is
        batched from there. Anything that changes the records themselves (source,
        order, seed, operators, other nodes) is refused with a :class:`StateError`.
        Operator parameters are read again at the next batch, so values restored
        into the operators (``nnx.update``) apply.
        """
        pipeline = self._pipeline
        first, epoch, position, origin = _validate_state(state, pipeline, pipeline.global_geometry)
        local, local_origin = pipeline.local_position(position), pipeline.local_position(origin)
        if local is None or local_origin is None:
            raise StateError(
                "the global batch size changed",
                where="PipelineIterator.set_state",
                expected=f"a state saved with global batches of "
                f"{pipeline.global_geometry.batch_size} records (a pipeline split over "
                "processes keeps its global batch size)",
                found=f"position={position}, origin={origin}",
            )
        position, origin = local, local_origin
        skipped = _validate_skipped(state, pipeline) if epoch == state["epoch"] else []
        self._restart()
        self._first_epoch, self._epoch, self._position, self._origin = (
            first,
            epoch,
            position,
            origin,
        )
        self._skipped, self._skipped_total = skipped, len(skipped)

    # -- chunks --------------------------------------------------------------------
    def _finished(self) -> bool:
        return self._num_epochs is not None and self._epoch >= self._first_epoch + self._num_epochs

    def _next_chunk(self) -> list[Any]:
        if self._producer is None:
            if self._program is None:
                self._program = _ProgramSchedule(self._pipeline, self._pipeline.prepare_caches())
            chunks = _chunks(self, self._epoch, self._position, self._origin, self._skipped)
            # Device-resident sources only dispatch asynchronous XLA calls, and vectorised
            # host gathers cost less than handing the interpreter between two threads: the
            # caller's thread runs ahead itself. Records read one by one get a thread.
            threaded = not self._program.final.gather and self._pipeline.host_plane.per_record
            self._producer = _Producer(chunks, self._pipeline.prefetch, threaded=threaded)
            weakref.finalize(self, self._producer.stop)
        epoch, bounds, start, ids, parts, batch_size, skipped = self._producer.get()
        return _batches(epoch, bounds, start, ids, parts, batch_size, self._pipeline, skipped)


def _chunks(it: PipelineIterator, epoch: int, position: int, origin: int, skipped: list[int]):
    """Host plane: indices, host reads and the compiled call for each chunk.

    Takes what it needs from ``it`` up front, so the background thread never keeps
    the iterator alive (an abandoned iterator stops its thread when collected).
    """
    last_epoch = None if it._num_epochs is None else it._first_epoch + it._num_epochs - 1
    assert it._program is not None
    plane = it._pipeline.host_plane
    budget = _SkipBudget(plane.policy, len(it._sampler), plane.source.name, skipped)
    return _chunk_stream(
        it._program, plane, it._sampler, it._geometry, last_epoch, epoch, position, origin, budget
    )


def _chunk_stream(programs, plane, sampler, geometry, last_epoch, epoch, position, origin, budget):
    """Chunks from ``position`` of ``epoch`` on; that epoch's batches start at ``origin``.

    Positions inside an epoch are handled relative to its origin (0 except after an
    elastic restore), so chunk and batch boundaries fall on that epoch's grid.
    """
    first_epoch = epoch
    stores = programs.stores
    batch_size = geometry.stages[0][0]
    while last_epoch is None or epoch <= last_epoch:
        if epoch > first_epoch:
            budget.new_epoch()
        window = _IndexWindow(sampler, epoch, len(sampler))
        grid = geometry.remaining(origin)
        local = position - origin
        start = grid.chunk_start(local)
        seek = getattr(plane.source, "seek", None)
        if seek is not None and start < grid.epoch_end:  # a stream: start it where needed
            ahead = origin + min(start + sampler.lookahead, grid.read_end)
            seek(int(window.get(origin + start, ahead).min()))
        while start < grid.epoch_end:
            program = programs.current(wait=epoch > first_epoch)
            rows = program.rows
            ids = window.get(origin + start, origin + min(start + rows, grid.read_end))
            positions = program.arrange(_padded(np.arange(ids.size), rows, batch_size))
            padded = ids[positions].astype(np.int32)
            skipped: list[int] = []
            failure = None
            with contextlib.ExitStack() as held:  # readers and inserts of shared caches
                for store in stores:
                    held.enter_context(store.lock)
                first, inputs, index = _chunk_inputs(program, stores, ids, padded, batch_size)
                if inputs is None:
                    data, skipped, failure = plane.read(ids, positions, epoch, batch_size)
                    failure = failure or budget.spend(epoch, ids, skipped)
                    inputs = (data, {})
                parts, cached = program(first, inputs, index, padded, epoch, ids.size)
                if failure is None:
                    for store, values in zip(stores[first:], cached, strict=True):
                        store.insert(ids, values, rows)
            # Batch objects are built by the consumer: this thread keeps its Python work
            # (and so its hold on the interpreter) to the minimum.
            bounds = grid.output_bounds(start, rows, local)
            if failure is not None:  # hand out the batches before the failing one, then stop
                row, error = failure
                end = start + row - row % batch_size
                bounds = [(b, size) for b, size in bounds if b + size <= end]
                skipped = [r for r in skipped if r < row - row % batch_size]
                if bounds:
                    yield (epoch, bounds, start, ids, parts, program.batch_size, skipped)
                raise error
            yield (epoch, bounds, start, ids, parts, program.batch_size, skipped)
            programs.started()
            start += rows
        epoch, position, origin = epoch + 1, 0, 0


def _batching(geometry) -> list[list[int | bool]]:
    """The batch size and ``drop_remainder`` of every stage, as saved in states."""
    return [[size, drop] for size, drop in geometry.stages]


def _padded(values: np.ndarray, rows: int, batch_size: int) -> np.ndarray:
    """``values`` as ``rows`` int32 entries; the tail repeats the last batch's first value.

    Padding depends only on the positions of the epoch's last batch, never on how
    the epoch is cut into chunks, so whatever reads a whole batch (a per-batch
    decision) sees the same rows whichever chunk computes it.
    """
    out = np.empty(rows, np.int32)
    out[: values.size] = values
    out[values.size :] = values[(values.size - 1) // batch_size * batch_size]
    return out


def _chunk_inputs(program, stores, ids, padded, batch_size):
    """Where a chunk starts: the last cache holding all its records, else the source.

    The inputs are ``None`` when the chunk's records must be read on the host.
    """
    for c in range(len(stores) - 1, -1, -1):
        slots = stores[c].slots(ids)
        if slots is not None:
            slots = _padded(slots, padded.size, batch_size)
            return c + 1, stores[c].arrays, program.arrange(slots)
    if program.gather:
        return 0, (program.gather_from, {}), padded
    return 0, None, padded


class _SkipBudget:
    """Counts skipped records per epoch and stops the stream when the policy's budget is spent."""

    def __init__(self, policy, records_per_epoch: int, source: str, skipped: list[int]) -> None:
        self.limit = policy.limit(records_per_epoch)
        self.source, self.spent = source, len(skipped)
        self.ids: list[int] = list(skipped)

    def new_epoch(self) -> None:
        self.spent = 0
        self.ids = []

    def spend(self, epoch: int, ids: np.ndarray, rows: list[int]) -> tuple[int, RecordError] | None:
        """Count the chunk's skipped ``rows``; the row and error where the budget runs out."""
        for row in rows:
            self.spent += 1
            self.ids.append(int(ids[row]))
            if self.limit is not None and self.spent > self.limit:
                return row, RecordError(
                    f"too many bad records in epoch {epoch}",
                    where=self.source,
                    expected=f"at most {self.limit} skipped records per epoch",
                    found=f"{self.spent} (records {self.ids[:20]}"
                    + (" ...)" if len(self.ids) > 20 else ")"),
                )
        return None


class _ProgramSchedule:
    """Serves the first chunks with a one-batch program while the full one compiles.

    Compiling a many-batch chunk program takes longer than a one-batch one, so the
    first batch comes from the small program and a background thread compiles (and
    runs once) the large one. From the second epoch on the large program is always
    used, so every compilation happens during the first epoch.
    """

    def __init__(self, pipeline, caches: list) -> None:
        self.final = pipeline.program()
        self.first = self.final
        self.stores = [store for store, _ in caches]
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        warmed = _WARMED.setdefault(self.final.runs[0], set())
        self._pending = None
        self._lock = threading.RLock()
        keys = []
        if self.final.rows > pipeline.geometry.rows_for(1) and self.final.rows not in warmed:
            self.first = pipeline.program(batches_per_call=1)
            keys.append(self.final.rows)
        shapes = tuple(
            (leaf.shape, str(leaf.dtype))
            for store in self.stores
            for leaf in jax.tree_util.tree_leaves(store.arrays)
        )
        if caches and ("caches", self.final.rows, shapes) not in warmed:
            keys.append(("caches", self.final.rows, shapes))
        if keys:
            self._pending = (pipeline.host_plane, caches, warmed, keys)

    def stop(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.join()

    def started(self) -> None:
        """Called after the first chunk is dispatched: compile the full program now.

        Waiting until then keeps the two compilations from competing for the
        interpreter while the first batch is on its way.
        """
        with self._lock:
            if self._pending is None:
                return
            self._thread = threading.Thread(
                target=self._warm_up, args=self._pending, name="datarax-compile", daemon=True
            )
            self._pending = None
            self._thread.start()
            _BACKGROUND.add(self)

    def current(self, wait: bool = False):
        """The program to use now; with ``wait``, the full one (compiled if need be)."""
        with self._lock:
            if self._pending is not None and wait:
                self.started()
            thread = self._thread
            if thread is not None and (wait or not thread.is_alive()):
                thread.join()
                self._thread = None
                if self._error is not None:
                    raise self._error
                self.first = self.final
            return self.first

    def _warm_up(self, plane, caches, warmed, keys) -> None:
        try:
            program = self.final
            for key in keys:
                if isinstance(key, tuple):  # the functions starting at each cache
                    compile_cache_programs(program, caches)
                else:  # the full chunk program: run once, so its cut into batches compiles too
                    ids = np.zeros(program.rows, np.int32)
                    inputs = (
                        program.gather_from
                        if program.gather
                        else _zeros(plane.element_spec(), program.rows)
                    )
                    jax.block_until_ready(program(0, (inputs, {}), ids, ids, 0, 1))
                warmed.add(key)
        except BaseException as error:  # surfaced in the consumer by current()
            self._error = error


class _IndexWindow:
    """Computes an epoch's record ids ``INDEX_WINDOW`` positions at a time.

    Vectorised samplers pay a fixed cost per call; asking for a few thousand
    positions at once keeps that cost negligible while memory stays bounded.
    """

    def __init__(self, sampler, epoch: int, num_records: int) -> None:
        self._sampler, self._epoch, self._n = sampler, epoch, num_records
        self._start, self._ids = 0, np.empty(0, np.int64)

    def get(self, start: int, stop: int) -> np.ndarray:
        end = self._start + self._ids.size
        if start < self._start or stop > end:
            self._start = start
            self._ids = self._sampler.indices(
                self._epoch, start, min(self._n, max(stop, start + INDEX_WINDOW))
            )
        return self._ids[start - self._start : stop - self._start]


def compile_cache_programs(program, caches: list) -> None:
    """Compile (without running) the functions starting at each cache, and the inserts."""
    rows = program.rows
    vector = jax.ShapeDtypeStruct((rows,), np.int32)
    scalar = {t: jax.ShapeDtypeStruct((), t) for t in (np.uint32, np.int32)}
    for j, (store, spec) in enumerate(caches, start=1):
        arrays = jax.tree_util.tree_map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), store.arrays
        )
        run = program.runs[j]
        run.lower(
            program.state_leaves, arrays, vector, vector, scalar[np.uint32], scalar[np.int32]
        ).compile()
        values = jax.tree_util.tree_map(
            lambda s: jax.ShapeDtypeStruct((rows, *s.shape), s.dtype), spec
        )
        scatter_rows.lower(arrays, vector, values).compile()


def _batches(epoch, bounds, start, ids, parts, batch_size, pipeline, skipped) -> list[Any]:
    out: list[Any] = []
    valid_rows = None
    if skipped:  # the rows of records skipped as bad, masked in their batches
        valid_rows = np.ones(ids.size, bool)
        valid_rows[skipped] = False
    for b_start, size in bounds:
        offset = b_start - start
        part = parts[offset // batch_size]
        record_ids = ids[offset : offset + size]
        valid = None if valid_rows is None else valid_rows[offset : offset + size]
        if valid is not None and valid.all():
            valid = None
        if pipeline.split_over_processes:  # a global batch: every process's rows
            record_ids = pipeline.global_record_ids(epoch, b_start)
            size = record_ids.size
        if isinstance(part, Fanout):
            out.append(tuple(_batch(p, size, record_ids, epoch, valid) for p in part))
        else:
            out.append(_batch(part, size, record_ids, epoch, valid))
    return out


def _batch(pair, size: int, record_ids: np.ndarray, epoch: int, valid=None) -> Batch:
    data, states = pair
    if size < len(next(iter(jax.tree_util.tree_leaves(pair)))):
        data, states = jax.tree_util.tree_map(
            lambda v: jax.lax.slice_in_dim(v, 0, size), (data, states)
        )
    return Batch(data, states=states, record_ids=record_ids, epoch=epoch, valid=valid)


class _Producer:
    """Runs a chunk generator ``depth`` items ahead: on a daemon thread, or inline.

    Inline, the caller's thread keeps ``depth`` chunks dispatched ahead; that is all
    the overlap a device-resident source needs, since XLA runs the dispatched calls
    in the background, and it avoids handing the interpreter between two threads.
    Threaded, the thread takes one of ``depth`` slots before making each chunk and
    the consumer frees it when it takes the chunk, so exactly ``depth`` chunks are
    ever made ahead.
    """

    _DONE = object()

    def __init__(self, chunks, depth: int, *, threaded: bool = True) -> None:
        self._chunks = chunks
        self._depth = depth
        self._threaded = threaded and depth > 0
        self._terminal: object | None = None  # once failed or done, it stays so
        self._thread: threading.Thread | None = None
        self._ahead: deque = deque()
        if self._threaded:
            self._queue: queue.Queue = queue.Queue()
            self._slots = threading.Semaphore(depth)
            self._stop = threading.Event()

    def get(self):
        """The next chunk; raises the producer's error (every time) or StopIteration."""
        item = self._terminal
        if item is None:
            if not self._threaded:
                while len(self._ahead) <= self._depth and not self._ended(self._ahead):
                    self._ahead.append(self._next_inline())
                item = self._ahead.popleft()
            elif self._thread is None:
                # The first chunk is made here: waiting for a new thread to be scheduled
                # would only delay the first batch. The thread then works ahead.
                item = self._next_inline()
                if not isinstance(item, _Failure) and item is not self._DONE:
                    self._start()
            else:
                item = self._queue.get()
                self._slots.release()
        if isinstance(item, _Failure) or item is self._DONE:
            self._terminal = item
            if isinstance(item, _Failure):
                raise item.error
            raise StopIteration
        return item

    def _ended(self, items: deque) -> bool:
        return bool(items) and (isinstance(items[-1], _Failure) or items[-1] is self._DONE)

    def _next_inline(self):
        try:
            return next(self._chunks)
        except StopIteration:
            return self._DONE
        except Exception as error:
            return _Failure(error)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="datarax-prefetch", daemon=True)
        self._thread.start()
        _BACKGROUND.add(self)

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._slots.release()  # wake the thread if it waits for a slot
        self._thread.join()

    def _run(self) -> None:
        try:
            while True:
                self._slots.acquire()
                if self._stop.is_set():
                    return
                try:
                    item = next(self._chunks)
                except StopIteration:
                    self._queue.put(self._DONE)
                    return
                self._queue.put(item)
        except BaseException as error:  # forwarded to the consumer, raised there
            self._queue.put(_Failure(error))


#: Chunk sizes already compiled and run once, per compiled chunk function.
_WARMED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Background workers still running; stopped at exit, because a thread killed while
#: inside an XLA call aborts the interpreter.
_BACKGROUND: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_background() -> None:
    for worker in list(_BACKGROUND):
        worker.stop()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _zeros(spec, rows: int) -> dict[str, np.ndarray]:
    """Host arrays of ``rows`` records of ``spec``, to compile and run a program once."""
    return {k: np.zeros((rows, *s.shape), s.dtype) for k, s in spec.items()}


def _validate_skipped(state: dict[str, Any], pipeline) -> list[int]:
    """The record ids a state says were skipped in its epoch (checked)."""
    skipped = state.get("skipped", [])
    n = len(pipeline.source)
    if not isinstance(skipped, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in skipped
    ):
        raise StateError(
            "malformed list of skipped records",
            where="PipelineIterator.set_state",
            expected=f"'skipped': a list of record ids in [0, {n})",
            found=repr(skipped)[:200],
        )
    return list(skipped)


def _validate_state(state: Any, pipeline, geometry) -> tuple[int, int, int, int]:
    """``(first_epoch, epoch, position, origin)`` of a state, checked against ``pipeline``."""
    where = "PipelineIterator.set_state"
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise StateError(
            "not a datarax pipeline iterator state",
            where=where,
            expected=f"a dict with format '{STATE_FORMAT}'",
            found=repr(state)[:200],
        )
    if state.get("version") != STATE_VERSION:
        raise StateError(
            "unsupported state version",
            where=where,
            expected=STATE_VERSION,
            found=state.get("version"),
        )
    digest = pipeline.records_digest()
    if state.get("pipeline") != digest:
        raise StateError(
            "the state was saved by a pipeline that produces other records",
            where=where,
            expected=f"records fingerprint {digest}",
            found=state.get("pipeline"),
            hint="Build the pipeline with the same source, order, seed, operators and "
            "nodes (batch sizes, prefetch and the number of epochs may differ)",
        )
    try:
        first, epoch, position, origin = (
            _integer(state[k]) for k in ("first_epoch", "epoch", "position", "origin")
        )
        batching = [[_integer(size), bool(drop)] for size, drop in state["batching"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(
            "malformed state",
            where=where,
            expected="integer 'first_epoch', 'epoch', 'position', 'origin' and a 'batching' "
            "list of [batch size, drop_remainder]",
            found=repr(state)[:300],
        ) from exc
    num_records = geometry.num_records
    if not (0 <= first <= epoch and 0 <= origin <= position <= num_records):
        raise StateError(
            "state out of range",
            where=where,
            expected=f"0 <= first_epoch <= epoch and 0 <= origin <= position <= {num_records}",
            found=f"first_epoch={first}, epoch={epoch}, position={position}, origin={origin}",
        )
    if batching != _batching(geometry):
        origin = position  # elastic: the rest of this epoch is batched from here
    grid = geometry.remaining(origin)
    local = position - origin
    if local % grid.batch_size != 0:
        raise StateError(
            "position between two batches",
            where=where,
            expected=f"a position on the batch grid (origin {origin} + a multiple of "
            f"{grid.batch_size})",
            found=f"position={position}",
        )
    if local >= grid.epoch_end:  # nothing left in this epoch with these batches
        return first, epoch + 1, 0, 0
    return first, epoch, position, origin


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an int: {value!r}")
    return value
