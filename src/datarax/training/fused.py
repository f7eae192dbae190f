"""`FusedLoop`: a pipeline's batches and a train step, many steps per dispatch.

A per-batch loop pays one dispatch for the batch and one for the step, and on a
small model those dispatches, not the model, bound training. For a pipeline whose
source lives on the device, :func:`fuse` compiles the pipeline's device plane and
the user's step into one ``lax.scan`` (:mod:`datarax.training.programs`): the host
only computes the record ids of the next steps (the shuffle is a cheap Feistel
permutation) and dispatches once per ``steps_per_call`` steps.

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

#: Record ids one scan call carries at most (``steps_per_call * batch_size``).
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
        steps_per_call: Steps per dispatch (default: the full batches of an epoch).
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
            steps_per_call = min(max(1, geometry.epoch_end // batch_size), most)
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
            every step stacked on a leading axis, as host NumPy arrays (reading them
            waits for the steps to finish).
        """
        steps = check_int(steps, where="FusedLoop.run(steps=...)", minimum=0, allow_none=True)
        if steps is None:
            steps = self._left_in_epoch()
        leaves, source, programs, sharder = self._prepare()
        parts: list[tuple[Any, int]] = []
        geometry = self._pipeline.view.geometry
        batch_size = geometry.batch_size
        context = sharder.computing() if sharder is not None else contextlib.nullcontext()
        with context:
            while steps > 0 and not self.done:
                rows, epochs, cursor = self._full_batches(min(steps, programs.length))
                if rows:
                    ids = np.zeros((programs.length, batch_size), np.int32)
                    ids[: len(rows)] = np.stack(rows)
                    epoch_of = np.zeros(programs.length, np.uint32)
                    epoch_of[: len(rows)] = epochs
                    carry, metrics = programs.scan(
                        leaves, source, carry, ids, epoch_of, np.int32(len(rows))
                    )
                    parts.append((metrics, len(rows)))
                    steps -= len(rows)
                    self._moved(cursor, epochs[-1])
                    continue
                # The next batch is an epoch's short last one.
                c = self._cursor
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
                parts.append((metrics, 1))
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

    def _full_batches(self, limit: int) -> tuple[list[np.ndarray], list[int], Cursor]:
        """Record ids of up to ``limit`` full batches from the cursor, their epochs,
        and the cursor after them; they stop before a short batch."""
        geometry = self._pipeline.view.geometry
        sampler = self._pipeline.view.sampler
        size = geometry.batch_size
        rows: list[np.ndarray] = []
        epochs: list[int] = []
        c = self._cursor
        last = None if self._num_epochs is None else c.first_epoch + self._num_epochs
        while len(rows) < limit and (last is None or c.epoch < last):
            end = c.origin + geometry.remaining(c.origin).epoch_end
            full = min((end - c.position) // size, limit - len(rows))
            if full:
                ids = sampler.indices(c.epoch, c.position, c.position + full * size)
                rows.extend(np.asarray(ids, np.int32).reshape(full, size))
                epochs.extend([c.epoch] * full)
            position = c.position + full * size
            if position < end:  # stopped by the limit, or at a short batch
                c = Cursor(c.first_epoch, c.epoch, position, c.origin)
                break
            c = Cursor(c.first_epoch, c.epoch + 1, 0, 0)
        return rows, epochs, c

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
        parts: list[tuple[Any, int]],
        leaves: Any,
        source: Any,
        carry: Any,
        programs: FusedPrograms,
    ) -> Any:
        """The metrics of every step run, as host arrays on one leading axis."""
        if not parts:  # no step ran: empty metrics of the step's structure
            length, size = programs.length, self._pipeline.view.geometry.batch_size
            shapes = jax.eval_shape(
                programs.scan,
                leaves,
                source,
                carry,
                jax.ShapeDtypeStruct((length, size), np.int32),
                jax.ShapeDtypeStruct((length,), np.uint32),
                jax.ShapeDtypeStruct((), np.int32),
            )[1]
            return jax.tree_util.tree_map(lambda s: np.zeros((0, *s.shape[1:]), s.dtype), shapes)
        host = jax.device_get([metrics for metrics, _ in parts])
        counts = [n for _, n in parts]
        return jax.tree_util.tree_map(
            lambda *values: np.concatenate([v[:n] for v, n in zip(values, counts, strict=True)]),
            *host,
        )
