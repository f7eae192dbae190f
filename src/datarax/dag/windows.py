"""Windowed stages: a pipeline's batches regrouped on the host, resumable exactly.

Packing and length bucketing change how many records a batch holds, depending on
the data, so they cannot be a reshape inside the compiled function (as
:class:`~datarax.dag.rebatch.RebatchNode` is). They run after it, on the host: a
stage reads ``window_batches`` of the pipeline's batches at a time (never across an
epoch), turns that window into *items* (packed rows, bucket batches) with NumPy, and
hands them out in order.

The stream stays a pure function of the pipeline's stream: a window's items depend
on that window alone. So the state is the pipeline's state at the start of the
window holding the next item, and how many of its items were already handed out;
a restored iterator reads that window again and continues. It stays a few
integers, whatever the window holds.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from datarax.core.batch import Batch
from datarax.core.config import check_int
from datarax.core.digest import digest
from datarax.core.errors import PipelineBuildError, StateError
from datarax.dag.base import Fanout

if TYPE_CHECKING:
    from datarax.dag.executor import PipelineIterator
    from datarax.dag.pipeline import Pipeline

#: Records of a window, per field, and their record ids.
WindowFields = tuple[dict[str, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Window:
    """The items one window of upstream batches gives.

    Attributes:
        epoch: The epoch of the window's batches.
        count: How many items it has.
        take: ``take(start, stop)``: items ``start..stop`` (a value the stage assembles).
    """

    epoch: int
    count: int
    take: Callable[[int, int], Any]


class WindowedPipeline(abc.ABC):
    """Base of the host stages that regroup a pipeline's output batches.

    Subclasses say how a window becomes items (:meth:`window`), how many items make
    one output batch (:attr:`items_per_batch`) and how items become a batch
    (:meth:`assemble`). Iterating yields :class:`~datarax.core.batch.Batch` objects
    of host NumPy arrays; ``iter(stage)`` returns a :class:`WindowedIterator` with
    ``get_state()`` / ``set_state()``.
    """

    def __init__(self, pipeline: Pipeline, window_batches: int) -> None:
        from datarax.dag.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline):
            raise PipelineBuildError(
                "not a pipeline",
                where=type(self).__name__,
                expected="a Pipeline (from_source(...) >> ...)",
                found=type(pipeline).__name__,
            )
        if isinstance(pipeline.output_spec, Fanout):
            raise PipelineBuildError(
                "the outputs of parallel branches must be merged first",
                where=type(self).__name__,
                expected="Merge(...) at the end of the pipeline",
                found=f"{len(pipeline.output_spec)} unmerged branch outputs",
            )
        self.pipeline = pipeline
        self.window_batches = check_int(
            window_batches, where=type(self).__name__, minimum=1, error=PipelineBuildError
        )
        data_spec, _ = pipeline.output_spec
        self.check_spec(dict(data_spec))

    #: Items per output batch.
    items_per_batch: int = 1

    @abc.abstractmethod
    def check_spec(self, data_spec: dict[str, jax.ShapeDtypeStruct]) -> None:
        """Raise a :class:`~datarax.core.errors.SchemaError` for fields the stage cannot use."""

    @abc.abstractmethod
    def window(self, fields: dict[str, np.ndarray], record_ids: np.ndarray, epoch: int) -> Window:
        """The items of one window's records (real records only, in stream order)."""

    @abc.abstractmethod
    def assemble(self, parts: list[Any], epoch: int) -> Batch:
        """One output batch from the ``take`` results that make it up, in order."""

    @abc.abstractmethod
    def stage_fingerprint(self) -> dict[str, Any]:
        """What determines the stage's output apart from the pipeline."""

    def fingerprint(self) -> dict[str, Any]:
        """What determines the stream: the pipeline's records and the stage."""
        return {
            "type": type(self).__name__,
            "pipeline": self.pipeline.records_digest(),
            "window_batches": self.window_batches,
            "stage": self.stage_fingerprint(),
        }

    def __iter__(self) -> WindowedIterator:
        return WindowedIterator(self)


class WindowedIterator(Iterator[Batch]):
    """Iterator over a windowed stage, with a small JSON-able state.

    The state is ``{"stage": <digest>, "upstream": <pipeline state at the window's
    start>, "taken": <items of that window already handed out>}``.
    """

    def __init__(self, stage: WindowedPipeline) -> None:
        self._stage = stage
        self._digest = digest(stage.fingerprint())
        self._upstream: PipelineIterator = iter(stage.pipeline)
        self._start = self._upstream.get_state()  # where the current window starts
        self._window: Window | None = None
        self._taken = 0

    def __iter__(self) -> WindowedIterator:
        return self

    def __next__(self) -> Batch:
        parts: list[Any] = []
        wanted, got, epoch = self._stage.items_per_batch, 0, 0
        while got < wanted:
            if self._window is None:
                if got and self._upstream.cursor.epoch != epoch:
                    break  # an output batch never spans two epochs
                try:
                    self._window = self._read_window()
                except StopIteration:
                    if got:
                        break
                    raise
                self._check_taken()
            window = self._window
            if not got:
                epoch = window.epoch
            stop = min(window.count, self._taken + wanted - got)
            if stop > self._taken:
                parts.append(window.take(self._taken, stop))
                got += stop - self._taken
                self._taken = stop
            if self._taken == window.count:
                self._start, self._window, self._taken = self._upstream.get_state(), None, 0
        return self._stage.assemble(parts, epoch)

    def _read_window(self) -> Window:
        """The next window's items (``StopIteration`` when the pipeline has no more)."""
        batches: list[Batch] = []
        for _ in range(self._stage.window_batches):
            try:
                batch = next(self._upstream)
            except StopIteration:
                break
            batches.append(batch)
            if self._upstream.cursor.epoch != batch.epoch:
                break  # the epoch ended
        if not batches:
            raise StopIteration
        fields, record_ids = window_fields(batches)
        return self._stage.window(fields, record_ids, int(batches[0].epoch))

    def _check_taken(self) -> None:
        assert self._window is not None
        if self._taken > self._window.count:
            raise StateError(
                "state out of range",
                where=f"{type(self._stage).__name__}.set_state",
                expected=f"'taken' <= {self._window.count}, the items of its window",
                found=self._taken,
            )

    def get_state(self) -> dict[str, Any]:
        """Where the next item is: its window's start and the items taken from it."""
        return {"stage": self._digest, "upstream": self._start, "taken": self._taken}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a state of :meth:`get_state` (of a stage built alike, any process)."""
        where = f"{type(self._stage).__name__}.set_state"
        if not isinstance(state, dict) or set(state) != {"stage", "upstream", "taken"}:
            raise StateError(
                "not a windowed stage state",
                where=where,
                expected="a dict with 'stage', 'upstream' and 'taken'",
                found=repr(state)[:200],
            )
        if state["stage"] != self._digest:
            raise StateError(
                "the state was saved by another stage or pipeline",
                where=where,
                expected=f"stage fingerprint {self._digest}",
                found=state["stage"],
            )
        taken = check_int(state["taken"], where=where, minimum=0, error=StateError)
        self._upstream.set_state(state["upstream"])
        self._start = json.loads(json.dumps(state["upstream"]))
        self._window, self._taken = None, taken

    def reset(self) -> None:
        """Go back to the start of the first epoch."""
        self._upstream.reset()
        self._start, self._window, self._taken = self._upstream.get_state(), None, 0

    def close(self) -> None:
        """Stop the pipeline's background work."""
        self._upstream.close()


def window_fields(batches: list[Batch]) -> WindowFields:
    """The real records of ``batches`` (skipped bad records left out), per field, in order."""
    masks = [np.asarray(b.mask) for b in batches]
    keep = [None if m.all() else m for m in masks]  # whole batches are not copied twice

    def real(values: Any, mask: np.ndarray | None) -> np.ndarray:
        array = np.asarray(values)
        return array if mask is None else array[mask]

    fields = {
        name: np.concatenate([real(b.data[name], m) for b, m in zip(batches, keep, strict=True)])
        for name in batches[0].data
    }
    ids = np.concatenate([real(b.record_ids, m) for b, m in zip(batches, keep, strict=True)])
    return fields, ids
