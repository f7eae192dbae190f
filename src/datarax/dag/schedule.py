"""`ProgramSchedule`: a one-batch program first; the full one only for runs that need it.

Compiling a many-batch chunk program costs as much as a one-batch one or more
(and its cut into batches compiles too), so an iterator's first chunks come from
a one-batch program, compiled quickly (:data:`~datarax.dag.compiler.QUICK_COMPILE`):
one compilation before the first batch. The full program
is needed only from the second epoch on, so a short run (a tutorial's three
batches, a smoke test) never compiles it, and its process exits without waiting
for it. Once the consumer has taken enough batches to show that the run is not
a short one (:func:`start_after`: a full chunk's worth, at least
:data:`SHORT_RUN_BATCHES`, or half an epoch if that comes first), a background
thread compiles the full program (and runs it once) while the one-batch program
keeps serving; the iterator waits for it at the end of the first epoch at the
latest, so every compilation happens during the first epoch (tests count them).
Both programs compute every record alike, so the stream is the same bit for bit
whichever computes a chunk.

What was compiled is noted in the program cache's entry
(:attr:`~datarax.dag.program.CompiledChunk.warmed`), so a later iterator of an
equal pipeline starts with the full program at once.

A compilation in progress cannot be abandoned: a thread still inside XLA when the
interpreter exits aborts the process. At exit (and when the iterator restarts)
:meth:`ProgramSchedule.stop` lets the step in progress finish and drops the rest.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from datarax.control.host_plane import HostPlane
from datarax.core.exit import stop_at_exit
from datarax.dag.program import Program, compile

if TYPE_CHECKING:
    from datarax.dag.pipeline import Pipeline

#: Fewer batches than this taken from an iterator make a short run: the full
#: program is not compiled for it (unless its epoch ends first).
SHORT_RUN_BATCHES = 8


class ProgramSchedule:
    """Which program computes the next chunk (see the module doc).

    Args:
        pipeline: The pipeline; compiled here, with the operators' current values.

    Example:
        >>> import numpy as np
        >>> from datarax import from_source
        >>> from datarax.sources import MemorySource, MemorySourceConfig
        >>> src = MemorySource(MemorySourceConfig(), data={"x": np.arange(40.0)})
        >>> schedule = ProgramSchedule(from_source(src, batch_size=2, batches_per_call=4))
        >>> schedule.current().rows, schedule.current(wait=True).rows
        (2, 8)
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.final: Program = compile(pipeline)
        self.first: Program = self.final
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._cancelled = False
        self._lock = threading.RLock()
        final, warmed = self.final, self.final.compiled.warmed
        keys: list[Any] = []
        if final.rows > final.geometry.rows_for(1) and final.rows not in warmed:
            self.first = compile(pipeline, batches_per_call=1, quick=True)
            keys.append(final.rows)
        shapes = tuple(
            (leaf.shape, str(leaf.dtype))
            for store in final.stores
            for leaf in jax.tree_util.tree_leaves(store.arrays)
        )
        if final.caches and ("caches", final.rows, shapes) not in warmed:
            keys.append(("caches", final.rows, shapes))
        self._pending: tuple[HostPlane, list[Any]] | None = None
        if keys:
            self._pending = (pipeline.host_plane, keys)
        # Chunks are dispatched ``prefetch`` ahead of the consumer: count from there.
        ahead = max(0, pipeline.prefetch - 1) * self.first.batches_per_call
        self._dispatched = 0
        self._start_after = ahead + start_after(
            final.batches_per_call, final.geometry.batches_per_epoch
        )

    def started(self) -> None:
        """Called when the next chunk is asked for: start the full compile once it pays.

        Counts the batches the one-batch program computed; once the consumer has
        taken :func:`start_after` of them (the chunks dispatched ahead aside), the
        background compilation starts.
        """
        with self._lock:
            if self._pending is None:
                return
            self._dispatched += self.first.batches_per_call
            if self._dispatched >= self._start_after:
                self._start()

    def current(self, wait: bool = False) -> Program:
        """The program to use now; with ``wait``, the full one (compiled if need be)."""
        with self._lock:
            if self._pending is not None and wait:
                self._start()
            thread = self._thread
            if thread is not None and (wait or not thread.is_alive()):
                thread.join()
                self._thread = None
                if self._error is not None:
                    raise self._error
                self.first = self.final
            return self.first

    def stop(self) -> None:
        """Drop the compilation steps not begun, and wait for the one in progress.

        Called at exit and when the iterator restarts; nothing is started any more.
        """
        with self._lock:
            self._cancelled = True
            self._pending = None
            thread = self._thread
        if thread is not None:
            thread.join()

    def _start(self) -> None:
        """Start the background compilation of what is pending (under the lock)."""
        if self._pending is None or self._cancelled:
            return
        self._thread = threading.Thread(
            target=self._warm_up, args=self._pending, name="datarax-compile", daemon=True
        )
        self._pending = None
        # A thread inside XLA when the interpreter exits aborts it: exit waits for it.
        stop_at_exit(self)
        self._thread.start()

    def _warm_up(self, plane: HostPlane, keys: list[Any]) -> None:
        try:
            program = self.final
            for key in keys:
                if self._cancelled:
                    return
                if isinstance(key, tuple):  # the functions starting at each cache
                    program.compile_caches()
                else:  # the full chunk program: run once, so its cut into batches compiles too
                    ids = np.zeros(program.rows, np.int32)
                    inputs = (
                        program.gather_from
                        if program.gather
                        else _zeros(plane.element_spec(), program.rows)
                    )
                    jax.block_until_ready(program.run(0, (inputs, {}), ids, ids, 0, 1))
                program.compiled.warmed.add(key)
        except BaseException as error:  # surfaced in the consumer by current()
            self._error = error


def start_after(batches_per_call: int, batches_per_epoch: int) -> int:
    """Batches taken from the one-batch program before the full one starts compiling.

    A full chunk's worth (the batches a compiled call of the full program holds),
    at least :data:`SHORT_RUN_BATCHES`, or half an epoch if that comes first, so
    that the compilation overlaps the rest of the first epoch.

    Example:
        >>> start_after(32, 32), start_after(2, 100), start_after(32, 4)
        (16, 8, 2)
    """
    return max(1, min(max(batches_per_call, SHORT_RUN_BATCHES), batches_per_epoch // 2))


def _zeros(spec: dict[str, Any], rows: int) -> dict[str, np.ndarray]:
    """Host arrays of ``rows`` records of ``spec``, to compile and run a program once."""
    return {k: np.zeros((rows, *s.shape), s.dtype) for k, s in spec.items()}
