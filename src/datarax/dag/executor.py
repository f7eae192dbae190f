"""`PipelineIterator`: runs a pipeline's program, one compiled call per chunk of batches.

The iterator owns its cursor (epoch, position) and nothing else of the pipeline:
it compiles the pipeline when it starts (:mod:`datarax.dag.schedule`), reads chunks
through a :class:`~datarax.dag.chunks.ChunkStream` that the host plane's
:class:`~datarax.control.RunAhead` keeps ``prefetch`` chunks ahead, and cuts each
chunk into :class:`~datarax.core.batch.Batch` objects. Chunks of records read one
by one on the host are made on a background thread; for device-resident sources
and vectorised host gathers the caller's thread runs ahead itself (dispatches are
asynchronous, so XLA computes the next chunks while the caller consumes this one).

The iterator's state is the position of the next batch it will hand out, so
prefetched work is simply recomputed after a restore: the stream is a pure function
of (pipeline, epoch, position).
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, NamedTuple, ParamSpec, TypeVar

import jax
import numpy as np

from datarax.control.run_ahead import RunAhead
from datarax.control.wait_clock import WaitClock
from datarax.core.batch import Batch
from datarax.core.errors import StateError
from datarax.dag.base import Fanout
from datarax.dag.chunks import Chunk, ChunkStream
from datarax.dag.schedule import ProgramSchedule
from datarax.dag.slicing import ProcessSlice
from datarax.dag.state import (
    STATE_FORMAT,
    STATE_VERSION,
    Cursor,
    batching_of,
    validate_skipped,
    validate_state,
)

if TYPE_CHECKING:
    from datarax.batching.geometry import Geometry
    from datarax.dag.pipeline import Pipeline

__all__ = ["STATE_FORMAT", "STATE_VERSION", "PipelineIterator", "cursor_from_state", "state_at"]


P = ParamSpec("P")
R = TypeVar("R")


def _one_caller_at_a_time(
    method: Callable[Concatenate[PipelineIterator, P], R],
) -> Callable[Concatenate[PipelineIterator, P], R]:
    """Run ``method`` under the iterator's lock.

    Threads may share an iterator: each batch is handed out once, in order, and a
    state is never taken halfway through a batch.
    """

    def locked(self: PipelineIterator, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    functools.update_wrapper(locked, method)  # its name and docstring
    return locked


class _Standing(NamedTuple):
    """Everything a batch's hand-over changes, replaced by one assignment.

    The cursor (this process's positions), the records skipped as bad so far in the
    epoch, and the batches made and not handed out yet, in order. Being one value,
    they move together: an interrupt (Ctrl-C) can fall before or after a hand-over,
    never between the batch leaving and the cursor moving.
    """

    first_epoch: int
    epoch: int
    position: int
    origin: int
    epoch_end: int  # where this epoch's batches end
    skipped: tuple[int, ...]
    skipped_total: int
    ready: tuple[Any, ...]

    def holding(self, ready: tuple[Any, ...]) -> _Standing:
        """The same place, with ``ready`` as the batches not handed out yet."""
        return self._replace(ready=ready)

    def handed_out(self, step: int, skipped: Any) -> _Standing:
        """After handing out the first ready batch (``step`` records, ``skipped`` bad)."""
        more = () if skipped is None else tuple(int(i) for i in skipped)
        return _Standing(
            self.first_epoch,
            self.epoch,
            self.position + step,
            self.origin,
            self.epoch_end,
            self.skipped + more,
            self.skipped_total + len(more),
            self.ready[1:],
        )

    def moved(
        self,
        epoch: int,
        position: int,
        origin: int,
        geometry: Geometry,
        ready: tuple[Any, ...] = (),
        skipped: tuple[int, ...] = (),
    ) -> _Standing:
        """At ``position`` of ``epoch``, whose batches start at ``origin``."""
        end = origin + geometry.remaining(origin).epoch_end
        return _Standing(
            self.first_epoch, epoch, position, origin, end, skipped, self.skipped_total, ready
        )


class PipelineIterator(Iterator[Any]):
    """Iterator over a pipeline's batches with exact, JSON-able state.

    Two iterators of one pipeline are independent: each has its own position,
    program and run-ahead. They share what :mod:`datarax.dag.runtime` lists (the
    worker pool, the cache stores and the epoch a new ``for`` loop starts at).

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

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._runtime = pipeline.runtime
        self._view = pipeline.view
        self._geometry = pipeline.view.geometry
        self._num_epochs = pipeline.source_node.num_epochs
        first = self._runtime.epoch_cursor
        self._at = _Standing(first, first, 0, 0, self._geometry.epoch_end, (), 0, ())
        self._ahead: RunAhead | None = None
        self._schedule: ProgramSchedule | None = None
        self._lock = threading.Lock()
        self._clock = WaitClock()

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline this iterator runs."""
        return self._pipeline

    @property
    def cursor(self) -> Cursor:
        """Where this iterator stands (this process's positions)."""
        at = self._at
        return Cursor(at.first_epoch, at.epoch, at.position, at.origin)

    # -- iteration -----------------------------------------------------------------
    def __iter__(self) -> PipelineIterator:
        return self

    def __next__(self) -> Any:
        before: _Standing | None = None
        after: _Standing | None = None
        began = time.perf_counter()
        try:
            with self._lock:  # threads may share an iterator: each batch goes to one
                batch, before, after = self._hand_over()
                self._clock.record(began, time.perf_counter())
            return batch
        except BaseException:
            # A Ctrl-C after the hand-over, before the batch left: it is taken back,
            # and the next call hands it out again.
            if before is not None and after is not None:
                with self._lock:
                    if self._at is after:
                        self._at = before
            raise

    def _hand_over(self) -> tuple[Any, _Standing, _Standing]:
        """The next batch, and the standing before and after handing it over."""
        at = self._at
        if not at.ready:
            if self._finished():
                self.close()
                raise StopIteration
            chunk = None
            try:
                chunk = self._next_chunk()
                # One assignment: an interrupt before it leaves the chunk to be made
                # again (the run-ahead is dropped), after it the batches are held.
                self._at = at = at.holding(tuple(self._batches(chunk)))
            except BaseException as failure:
                # Ctrl-C or SystemExit (not a failure of the stream), or a chunk taken
                # and not turned into held batches: it is made again at the next call.
                # A failure to make a chunk stays, and the next call raises it again.
                if chunk is not None or not isinstance(failure, Exception):
                    self._abandon()
                raise
        batch = at.ready[0]
        first = batch[0] if isinstance(batch, tuple) else batch
        # Positions count this process's records (its share when split over processes).
        step = self._geometry.batch_size if self._view.slice is not None else first.batch_size
        epoch_done = at.position + step >= at.epoch_end
        if epoch_done and self._schedule is not None:
            # Every compilation lands in the first epoch. Waited for before anything
            # moves, so that a Ctrl-C here leaves the batch to the next call.
            self._schedule.current(wait=True)
        after = at.handed_out(step, first.skipped)
        if epoch_done:
            after = after.moved(at.epoch + 1, 0, 0, self._geometry, after.ready)
        if first.epoch >= self._runtime.epoch_cursor:
            self._runtime.advance(first.epoch)
        # The hand-over is this one assignment: the batch leaves the ready ones and
        # the cursor moves together, whenever an interrupt falls.
        self._at = after
        return batch, at, after

    def close(self) -> None:
        """Stop the background thread (also done when the iterator is collected)."""
        if self._ahead is not None:
            self._ahead.stop()
            self._ahead = None

    def _abandon(self) -> None:
        """Drop the chunks being made after an interrupt; the next call starts at the cursor.

        The thread is not waited for (it may be in a long read); what it still makes
        is dropped. Nothing was handed out, so the state is the one before the batch
        that was interrupted.
        """
        if self._ahead is not None:
            self._ahead.stop(wait=False)
            self._ahead = None
        self._at = self._at.holding(())

    @_one_caller_at_a_time
    def reset(self) -> None:
        """Go back to the start of this iterator's first epoch.

        The batches that follow are the ones this iterator handed out from its
        start, bit for bit (randomness follows the records and epochs, never the
        number of calls), unless operator parameters were changed meanwhile: like a
        restore, a reset reads them again.
        """
        self._restart()
        at = self._at
        self._at = at.moved(at.first_epoch, 0, 0, self._geometry)

    def _restart(self) -> None:
        """Drop prefetched work and the compiled program (compiled again at the next batch)."""
        self.close()
        self._at = self._at.holding(())
        if self._schedule is not None:
            self._schedule.stop()
            self._schedule = None

    # -- state ---------------------------------------------------------------------
    @_one_caller_at_a_time
    def get_state(self) -> dict[str, Any]:
        """The position of the next batch, as a small JSON-able dict."""
        return state_at(self._pipeline, self.cursor, self._at.skipped)

    @_one_caller_at_a_time
    def metrics(self) -> dict[str, Any]:
        """Counters of this iterator: position and the bad records it skipped.

        ``skipped`` lists the record ids skipped in the current epoch (up to the
        last batch handed out); ``skipped_total`` counts every skip since the
        iterator started or was last restored.
        """
        at = self._at
        return {
            "epoch": at.epoch,
            "position": self._view.global_position(at.position),
            "skipped": list(at.skipped),
            "skipped_total": at.skipped_total,
        }

    @_one_caller_at_a_time
    def waits(self) -> dict[str, Any]:
        """How long the consumer waited for its batches (a :class:`~datarax.control.WaitClock`).

        ``first_wait_s`` is the time ``next()`` took for the first batch
        (compilation included); ``wait_s`` the time spent in ``next()`` after it,
        ``wall_s`` the loop's wall time since the first batch, and ``wait_ratio``
        their ratio: near 1 the loader bounds the loop, near 0 the consumer does.
        :meth:`reset_waits` starts measuring again.

        Example:
            >>> import numpy as np
            >>> from datarax import from_source
            >>> from datarax.sources import MemorySource, MemorySourceConfig
            >>> src = MemorySource(MemorySourceConfig(), data={"x": np.arange(8.0)})
            >>> it = iter(from_source(src, batch_size=2))
            >>> for batch in it:
            ...     pass
            >>> w = it.waits()
            >>> w["batches"], 0.0 <= w["wait_ratio"] <= 1.0
            (4, True)
        """
        return self._clock.figures()

    @_one_caller_at_a_time
    def reset_waits(self) -> None:
        """Start measuring the consumer's waits again (the next batch counts as the first)."""
        self._clock.reset()

    @_one_caller_at_a_time
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
        target, local, local_origin, skipped = cursor_from_state(self._pipeline, state)
        self._restart()
        start = _Standing(target.first_epoch, 0, 0, 0, 0, (), len(skipped), ())
        self._at = start.moved(
            target.epoch, local, local_origin, self._geometry, skipped=tuple(skipped)
        )

    # -- chunks --------------------------------------------------------------------
    def _finished(self) -> bool:
        at = self._at
        return self._num_epochs is not None and at.epoch >= at.first_epoch + self._num_epochs

    def _next_chunk(self) -> Chunk:
        if self._ahead is None:
            if self._schedule is None:
                self._schedule = ProgramSchedule(self._pipeline)
            c = self.cursor
            last = None if self._num_epochs is None else c.first_epoch + self._num_epochs - 1
            plane = self._runtime.host_plane
            # The stream holds no reference to the iterator, so an abandoned iterator
            # is collected and stops its thread.
            stream = ChunkStream(
                self._schedule, plane, self._view.sampler, self._geometry, last, plane.policy
            )
            chunks = stream.run(c.epoch, c.position, c.origin, list(self._at.skipped))
            # Device-resident sources only dispatch asynchronous XLA calls, and vectorised
            # host gathers cost less than handing the interpreter between two threads: the
            # caller's thread runs ahead itself. Records read one by one get a thread.
            threaded = not self._schedule.final.gather and plane.per_record
            self._ahead = RunAhead(
                chunks,
                self._pipeline.prefetch,
                threaded=threaded,
                first_inline=True,
                name="datarax-prefetch",
            )
            # Collected: stop the thread. At exit the thread is stopped by
            # datarax.core.exit instead, after the worker pools it may wait on. The
            # finalizer holds the run-ahead weakly: its last error's traceback may
            # reach this iterator, and a strong reference would keep both alive.
            weakref.finalize(self, _stop_run_ahead, weakref.ref(self._ahead)).atexit = False
        chunk: Chunk = self._ahead.get()
        return chunk

    def _batches(self, chunk: Chunk) -> list[Any]:
        """The batches a chunk hands out (built here, on the consumer's thread)."""
        out: list[Any] = []
        valid_rows = None
        if chunk.skipped:  # the rows of records skipped as bad, masked in their batches
            valid_rows = np.ones(chunk.ids.size, bool)
            valid_rows[chunk.skipped] = False
        split: ProcessSlice | None = self._view.slice
        sharder = None if split is not None else self._pipeline.sharder
        first_rows = _first_rows if sharder is None else sharder.first_rows
        epoch, full = chunk.epoch, chunk.batch_size
        for b_start, size in chunk.bounds:
            offset = b_start - chunk.start
            part = chunk.outputs[offset // full]
            record_ids = chunk.ids[offset : offset + size]
            valid = None if valid_rows is None else valid_rows[offset : offset + size]
            if valid is not None and valid.all():
                valid = None
            short = size < full  # an epoch's last batch, computed padded
            if split is not None:  # a global batch: every process's rows
                record_ids = split.global_record_ids(epoch, b_start)
                size = record_ids.size
            if isinstance(part, Fanout):
                out.append(
                    tuple(
                        _batch(p, short, size, first_rows, record_ids, epoch, valid) for p in part
                    )
                )
            else:
                out.append(_batch(part, short, size, first_rows, record_ids, epoch, valid))
        return out


def state_at(pipeline: Pipeline, cursor: Cursor, skipped: tuple[int, ...]) -> dict[str, Any]:
    """The state of an iterator of ``pipeline`` at ``cursor`` (this process's positions).

    ``skipped`` lists the records of the cursor's epoch skipped as bad before it.
    """
    view = pipeline.view
    state: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "pipeline": pipeline.records_digest(),
        "first_epoch": cursor.first_epoch,
        "epoch": cursor.epoch,
        "position": view.global_position(cursor.position),
        "origin": view.global_position(cursor.origin),
        "batching": batching_of(view.global_geometry),
    }
    if pipeline.runtime.host_plane.policy.skips:
        state["skipped"] = list(skipped)
    return state


def cursor_from_state(pipeline: Pipeline, state: Any) -> tuple[Cursor, int, int, list[int]]:
    """Where a state points in ``pipeline``: the checked global cursor, this
    process's position and origin in that epoch, and the records skipped before it.

    Raises:
        StateError: The state does not fit ``pipeline`` (see :meth:`PipelineIterator.set_state`).
    """
    view = pipeline.view
    target = validate_state(state, pipeline.records_digest(), view.global_geometry)
    local, local_origin = (
        view.local_position(target.position),
        view.local_position(target.origin),
    )
    if local is None or local_origin is None:
        raise StateError(
            "the global batch size changed",
            where="PipelineIterator.set_state",
            expected=f"a state saved with global batches of "
            f"{view.global_geometry.batch_size} records (a pipeline split over "
            "processes keeps its global batch size)",
            found=f"position={target.position}, origin={target.origin}",
        )
    epochs = pipeline.source_node.num_epochs
    if epochs is not None and target.epoch > target.first_epoch + epochs:
        raise StateError(
            "the state is past this pipeline's last epoch",
            where="PipelineIterator.set_state",
            expected=f"epoch <= first_epoch + num_epochs = {target.first_epoch + epochs}",
            found=f"epoch={target.epoch}, first_epoch={target.first_epoch}",
            hint="Build the pipeline with num_epochs covering the saved epoch (or None)",
        )
    skipped = (
        validate_skipped(state, len(pipeline.source)) if target.epoch == state["epoch"] else []
    )
    return target, local, local_origin, skipped


def _batch(
    pair: Any,
    short: bool,
    size: int,
    first_rows: Callable[[Any, int], Any],
    record_ids: np.ndarray,
    epoch: int,
    valid: np.ndarray | None,
) -> Batch:
    data, states = first_rows(pair, size) if short else pair
    return Batch(data, states=states, record_ids=record_ids, epoch=epoch, valid=valid)


def _first_rows(tree: Any, size: int) -> Any:
    """The first ``size`` rows of every leaf of ``tree``."""
    return jax.tree_util.tree_map(lambda v: jax.lax.slice_in_dim(v, 0, size), tree)


def _stop_run_ahead(ahead: weakref.ref[RunAhead]) -> None:
    """Stop a collected iterator's run-ahead thread, if the run-ahead still exists."""
    run_ahead = ahead()
    if run_ahead is not None:
        run_ahead.stop()
