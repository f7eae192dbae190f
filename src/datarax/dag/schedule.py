"""`ProgramSchedule`: the first batch from a small program while the full one compiles.

Compiling a many-batch chunk program takes longer than a one-batch one, so an
iterator's first chunks come from a one-batch program and a background thread
compiles (and runs once) the full one after the first chunk is dispatched. From
the second epoch on the full program is always used, so every compilation
happens during the first epoch (tests count them). What was compiled is noted in
the program cache's entry (:attr:`~datarax.dag.program.CompiledChunk.warmed`), so
a later iterator of an equal pipeline starts with the full program at once.
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


class ProgramSchedule:
    """Which program computes the next chunk (see the module doc).

    Args:
        pipeline: The pipeline; compiled here, with the operators' current values.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.final: Program = compile(pipeline)
        self.first: Program = self.final
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.RLock()
        final, warmed = self.final, self.final.compiled.warmed
        keys: list[Any] = []
        if final.rows > final.geometry.rows_for(1) and final.rows not in warmed:
            self.first = compile(pipeline, batches_per_call=1)
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

    def stop(self) -> None:
        """Wait for the background compilation, if one runs."""
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
            stop_at_exit(self)
            self._thread.start()

    def current(self, wait: bool = False) -> Program:
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

    def _warm_up(self, plane: HostPlane, keys: list[Any]) -> None:
        try:
            program = self.final
            for key in keys:
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


def _zeros(spec: dict[str, Any], rows: int) -> dict[str, np.ndarray]:
    """Host arrays of ``rows`` records of ``spec``, to compile and run a program once."""
    return {k: np.zeros((rows, *s.shape), s.dtype) for k, s in spec.items()}
