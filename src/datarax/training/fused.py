"""`FusedLoop`: a pipeline's batches and a train step, many steps per dispatch.

A per-batch loop pays one dispatch for the batch and one for the step, and on a
small model those dispatches, not the model, bound training. For a pipeline whose
source lives on the device, :func:`fuse` compiles the pipeline's device plane and
the user's step into one program (:mod:`datarax.training.programs`): it computes
the batches of ``steps_per_call`` steps at once, as the iterator computes a chunk,
then runs the step on each in one compiled loop. The host only computes the record
ids of the next steps (the shuffle is a cheap Feistel permutation) and dispatches
once per ``steps_per_call`` steps, without waiting for the previous call.

What the per-batch loop has, the fused loop keeps:

- the same batches and keys: step ``i`` sees exactly the batch ``iter(pipeline)``
  hands out at that position (records, values, random draws);
- an epoch's short last batch, at its true size (one extra small program);
- resume at any step: :meth:`FusedLoop.run` stops after the requested number of
  steps, and :meth:`~FusedLoop.get_state` / :meth:`~FusedLoop.set_state` use the
  iterator's state format (a fused run and a per-batch run resume each other, and
  the Orbax handler of :mod:`datarax.checkpoint` saves either);
- sharding: batches are placed on the pipeline's mesh inside the program;
- metrics per step: whatever the step returns beside its carry, stacked.

Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from datarax import from_source
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> source = MemorySource(MemorySourceConfig(), data={"x": np.arange(10.0)})
    >>> def step(total, batch):
    ...     return total + batch["x"].sum(), batch["x"].sum()
    >>> loop = fuse(from_source(source, batch_size=4), step)
    >>> total, sums = loop.run(jnp.float32(0))
    >>> float(total), sums.tolist(), loop.done
    (45.0, [6.0, 22.0, 17.0], True)
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import check_bool, check_int
from datarax.core.errors import FusionError
from datarax.dag.cache import CacheNode
from datarax.dag.chunks import padded
from datarax.dag.executor import cursor_from_state, state_at
from datarax.dag.program import PROGRAMS, compile
from datarax.dag.rebatch import RebatchNode
from datarax.dag.state import Cursor
from datarax.training.programs import FUSED, FusedPrograms, Step, build_programs

if TYPE_CHECKING:
    from datarax.dag.pipeline import Pipeline

#: Bytes of the batches one call computes before its steps, by default at most.
TARGET_CALL_BYTES = 32 * 1024**2
#: Record ids one call carries at most (``steps_per_call * batch_size``).
MAX_IDS_PER_CALL = 4 * 1024**2


def fuse(
    pipeline: Pipeline, step: Step, *, steps_per_call: int | None = None, donate: bool = False
) -> FusedLoop:
    """A :class:`FusedLoop` running ``step`` on ``pipeline``'s batches (see the module doc).

    Args:
        pipeline: A pipeline whose source lives on the device (an in-memory source),
            without ``CacheNode`` or ``RebatchNode``, in one process.
        step: ``step(carry, batch) -> (carry, metrics)``, a pure function that JAX
            can trace; ``batch`` is a :class:`~datarax.core.batch.Batch` (a tuple of
            them when the pipeline ends in unmerged parallel branches).
        steps_per_call: Steps per dispatch (default: the full batches of an epoch, as
            many as fit in ``TARGET_CALL_BYTES`` of batches). A call never spans two
            epochs.
        donate: Donate the carry's buffers to each call (the carry passed to
            :meth:`FusedLoop.run` cannot be used afterwards).

    Raises:
        FusionError: The pipeline cannot be fused; the message says why.
    """
    return FusedLoop(pipeline, step, steps_per_call=steps_per_call, donate=donate)


def why_not_fused(pipeline: Pipeline) -> FusionError | None:
    """Why ``pipeline`` cannot be fused with a train step, or ``None`` when it can."""
    if pipeline.split_over_processes:
        return FusionError(
            "a fused loop runs in one process",
            where="fuse(pipeline)",
            expected="a pipeline whose batches are computed in this process",
            found="a pipeline split over processes",
            hint="Iterate it (for batch in pipeline): batches are computed ahead",
        )
    if pipeline.runtime.host_plane.device_arrays is None:
        return FusionError(
            "a fused loop needs the records on the device",
            where=pipeline.source.name,
            expected="an in-memory source that fits on the device, without host operators",
            found="records read on the host"
            + (" by host operators" if pipeline.runtime.host_plane.per_record else ""),
            hint="Iterate the pipeline instead: its batches are computed ahead, "
            "`prefetch` chunks in advance, on the device",
        )
    for node in pipeline.device_nodes:
        if isinstance(node, (CacheNode, RebatchNode)):
            return FusionError(
                "a fused loop computes one batch per step",
                where=node.name,
                expected="device nodes that map a batch to a batch",
                found=f"a {type(node).__name__}",
                hint="Remove it (a cache gains nothing when the source is on the "
                "device; batch at the size the step needs)",
            )
    return None


class FusedLoop:
    """Runs a train step on a pipeline's batches, ``steps_per_call`` steps per dispatch.

    Built by :func:`fuse` (see the module doc for what it keeps of the per-batch loop).
    The loop holds the position of the next step, like an iterator; the carry is
    the caller's.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        step: Step,
        *,
        steps_per_call: int | None = None,
        donate: bool = False,
    ) -> None:
        problem = why_not_fused(pipeline)
        if problem is not None:
            raise problem
        if not callable(step):
            raise FusionError(
                "the step is not callable",
                where="fuse(step=...)",
                expected="step(carry, batch) -> (carry, metrics)",
                found=type(step).__name__,
            )
        geometry = pipeline.view.geometry
        batch_size = geometry.batch_size
        most = max(1, MAX_IDS_PER_CALL // batch_size)
        steps_per_call = check_int(
            steps_per_call, where="fuse(steps_per_call=...)", minimum=1, allow_none=True
        )
        if steps_per_call is None:
            by_bytes = TARGET_CALL_BYTES // max(1, pipeline.record_bytes() * batch_size)
            steps_per_call = max(1, min(geometry.epoch_end // batch_size, by_bytes))
        self._pipeline = pipeline
        self._step = step
        self._length = min(steps_per_call, most)
        self._donate = check_bool(donate, where="fuse(donate=...)")
        self._num_epochs = pipeline.source_node.num_epochs
        first = pipeline.runtime.epoch_cursor
        self._cursor = Cursor(first, first, 0, 0)

    # -- where it stands -------------------------------------------------------------
    @property
    def pipeline(self) -> Pipeline:
        """The pipeline whose batches the step receives."""
        return self._pipeline

    @property
    def steps_per_call(self) -> int:
        """Steps one dispatch runs at most."""
        return self._length

    @property
    def cursor(self) -> Cursor:
        """The position of the next step's batch."""
        return self._cursor

    @property
    def done(self) -> bool:
        """Whether the pipeline's epochs are over."""
        c = self._cursor
        return self._num_epochs is not None and c.epoch >= c.first_epoch + self._num_epochs

    def get_state(self) -> dict[str, Any]:
        """The position of the next step (the format of a pipeline iterator's state)."""
        return state_at(self._pipeline, self._cursor, ())

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a state of :meth:`get_state` or of a pipeline iterator.

        Raises:
            StateError: The state belongs to a pipeline producing other records, or
                is malformed (see :meth:`PipelineIterator.set_state`).
        """
        target, position, origin, _ = cursor_from_state(self._pipeline, state)
        self._cursor = Cursor(target.first_epoch, target.epoch, position, origin)

    # -- running ---------------------------------------------------------------------
    def run(self, carry: Any, steps: int | None = None) -> tuple[Any, Any]:
        """Run ``steps`` steps (default: to the end of the current epoch).

        Fewer steps run when the pipeline's epochs end first (see :attr:`done`).
        Operator parameters are read at each call, so values changed in between
        (``nnx.update``, an optimizer) apply from the next call on.

        Returns:
            ``(carry, metrics)``: the carry after the last step, and the metrics of
            every step stacked on a leading axis. Both are device arrays: the call
            returns once the steps are dispatched, and reading them waits for the
            steps to finish.
        """
        steps = check_int(steps, where="FusedLoop.run(steps=...)", minimum=0, allow_none=True)
        if steps is None:
            steps = self._left_in_epoch()
        leaves, source, programs, sharder = self._prepare()
        parts: list[tuple[Any, int, int]] = []
        geometry = self._pipeline.view.geometry
        batch_size = geometry.batch_size
        context = sharder.computing() if sharder is not None else contextlib.nullcontext()
        with context:
            while steps > 0 and not self.done:
                ids, cursor = self._full_batches(min(steps, programs.length))
                c = self._cursor
                if ids.size:
                    count = ids.size // batch_size
                    rows = np.zeros(programs.length * batch_size, np.int32)
                    rows[: ids.size] = ids
                    carry, metrics = programs.scan(
                        leaves, source, carry, rows, np.uint32(c.epoch), np.int32(count)
                    )
                    parts.append((metrics, count, programs.length))
                    steps -= count
                    self._moved(cursor, c.epoch)
                    continue
                # The next batch is an epoch's short last one.
                size = geometry.remaining(c.origin).epoch_end - (c.position - c.origin)
                ids = self._pipeline.view.sampler.indices(c.epoch, c.position, c.position + size)
                carry, metrics = programs.single(
                    leaves,
                    source,
                    carry,
                    padded(ids, batch_size, batch_size),
                    np.uint32(c.epoch),
                    size,
                )
                parts.append((metrics, 1, 1))
                steps -= 1
                self._moved(Cursor(c.first_epoch, c.epoch + 1, 0, 0), c.epoch)
        return carry, self._stacked(parts, leaves, source, carry, programs)

    def _left_in_epoch(self) -> int:
        """Steps from the cursor to the end of its epoch."""
        c = self._cursor
        if self.done:
            return 0
        grid = self._pipeline.view.geometry.remaining(c.origin)
        return -(-(grid.epoch_end - (c.position - c.origin)) // grid.batch_size)

    def _full_batches(self, limit: int) -> tuple[np.ndarray, Cursor]:
        """Record ids of up to ``limit`` full batches of the cursor's epoch, and the
        cursor after them; they stop before a short batch."""
        geometry = self._pipeline.view.geometry
        size = geometry.batch_size
        c = self._cursor
        end = c.origin + geometry.remaining(c.origin).epoch_end
        full = min((end - c.position) // size, limit)
        if full == 0:
            return np.zeros(0, np.int32), c
        stop = c.position + full * size
        ids = self._pipeline.view.sampler.indices(c.epoch, c.position, stop)
        after = Cursor(c.first_epoch, c.epoch, stop, c.origin)
        if stop >= end:
            after = Cursor(c.first_epoch, c.epoch + 1, 0, 0)
        return np.asarray(ids, np.int32), after

    def _moved(self, cursor: Cursor, epoch: int) -> None:
        """Steps ran up to ``cursor``; the last one was a batch of ``epoch``."""
        self._cursor = cursor
        runtime = self._pipeline.runtime
        if epoch >= runtime.epoch_cursor:
            runtime.advance(epoch)

    def _prepare(self) -> tuple[Any, Any, FusedPrograms, Any]:
        """The operators' current values, the source on the device and the programs."""
        pipeline = self._pipeline
        program = compile(pipeline, batches_per_call=1)
        split = PROGRAMS.operator_split(pipeline)
        sharder = program.sharder
        source = program.gather_from
        if sharder is not None and program.layout is None:  # every device reads its rows
            runtime = pipeline.runtime
            if runtime.replicated is None:
                runtime.replicated = jax.device_put(source, sharder.replicated())
            source = runtime.replicated
        key = (
            program.plan,
            split.graphdef,
            split.treedef,
            self._step,
            self._length,
            program.batch_size,
            None if sharder is None else sharder.key(),
            self._donate,
        )

        def build() -> FusedPrograms:
            return build_programs(
                program.plan,
                split.graphdef,
                split.treedef,
                self._step,
                self._length,
                program.batch_size,
                sharder,
                self._donate,
            )

        # The flow a chunk starts from: the source's fields and no state fields yet.
        return program.state_leaves, (source, {}), FUSED.get(key, build), sharder

    def _stacked(
        self,
        parts: list[tuple[Any, int, int]],
        leaves: Any,
        source: Any,
        carry: Any,
        programs: FusedPrograms,
    ) -> Any:
        """The metrics of every step run, on one leading axis (device arrays).

        Nothing here waits for the steps: slices and concatenations are dispatched
        like the steps themselves.
        """
        if not parts:  # no step ran: empty metrics of the step's structure
            length, size = programs.length, self._pipeline.view.geometry.batch_size
            shapes = jax.eval_shape(
                programs.scan,
                leaves,
                source,
                carry,
                jax.ShapeDtypeStruct((length * size,), np.int32),
                jax.ShapeDtypeStruct((), np.uint32),
                jax.ShapeDtypeStruct((), np.int32),
            )[1]
            return jax.tree_util.tree_map(lambda s: jnp.zeros((0, *s.shape[1:]), s.dtype), shapes)
        used = [
            metrics if n == length else jax.tree_util.tree_map(lambda v, n=n: v[:n], metrics)
            for metrics, n, length in parts
        ]
        if len(used) == 1:
            return used[0]
        return jax.tree_util.tree_map(lambda *values: jnp.concatenate(values), *used)
