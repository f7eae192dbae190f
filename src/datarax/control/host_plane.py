"""The host plane's reads: whole-batch gathers, or records computed one by one on workers.

An array-backed source with no host operators is read with one vectorised gather
per field per chunk. A :class:`~datarax.sources.record.RecordSource`, or any source
followed by :class:`~datarax.dag.nodes.HostOperator` nodes, is read record by record:
the chunk's records are cut into contiguous tasks, each task reads its raw records
in one call, decodes them, applies the host operators and writes each record into
its row of the chunk's arrays (in shared memory for worker processes). Every record
is checked against the fields, shapes and dtypes of record 0.

Bad records follow the pipeline's :class:`~datarax.control.BadRecordPolicy`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import jax
import numpy as np

from datarax.control.bad_records import BadRecordPolicy
from datarax.control.host_operator import HostFunction
from datarax.control.workers import WorkerMode, Workers, make_workers
from datarax.core.errors import DataraxError, RecordError, SchemaError
from datarax.core.fields import fields_match, record_fields, record_rows
from datarax.memory.shared import SharedArrays
from datarax.sources.base import DataSource
from datarax.sources.record import (
    SPEC_ATTEMPTS,
    RecordSource,
    first_good_record,
    record_error,
    store_record,
)

logger = logging.getLogger("datarax")

Spec = dict[str, jax.ShapeDtypeStruct]
#: Name of the shared array where process workers note the row they are computing.
PROGRESS = "__progress__"


class RecordJob:
    """Computes records into rows of a chunk: read, decode, host operators, check.

    Picklable, so that worker processes can run it.
    """

    def __init__(self, source: DataSource, operators: Sequence[HostFunction], seed: int) -> None:
        self.source, self.operators, self.seed = source, tuple(operators), seed
        self.spec: Spec | None = None  # after the host operators
        self.source_spec: Spec = {}  # as decoded
        self.skip = False
        self._text: tuple[str, ...] | None = None  # text fields, handed over as str/bytes

    def record(self, raw: Any, record_id: int, epoch: int) -> dict[str, np.ndarray]:
        """One record through the decoder and the host operators."""
        source = self.source
        record = source.decode(raw, record_id) if isinstance(source, RecordSource) else dict(raw)
        return self.transform(record, record_id, epoch)

    def transform(
        self, record: dict[str, np.ndarray], record_id: int, epoch: int
    ) -> dict[str, np.ndarray]:
        """One decoded record through the host operators.

        Text fields reach them as ``str`` or ``bytes``, not as 0-d object arrays.
        """
        source = self.source
        if self.operators:
            if self._text is None:
                self._text = tuple(
                    k for k, v in record.items() if v.dtype == object and v.ndim == 0
                )
            for k in self._text:
                record[k] = record[k].item()
        for op in self.operators:
            try:
                out = op.apply(record, self.seed, epoch, record_id)
            except DataraxError:
                raise
            except Exception as exc:
                raise RecordError(
                    "the host operator raised",
                    where=f"{source.name}, record {record_id}, {op.name}",
                    expected="a function that returns the record",
                    found=f"{type(exc).__name__}: {exc}",
                ) from exc
            record = _fields(out, source.name, record_id, op.name)
        return record

    def raw_records(self, ids: np.ndarray, epoch: int = 0) -> Sequence[Any]:
        """The raw records of ``ids`` (dicts of one row each for array-backed sources)."""
        source = self.source
        if isinstance(source, RecordSource):
            return source.read_records_epoch(ids, epoch)
        arrays = source.read_epoch(ids, epoch)
        return record_rows(arrays)

    def run(
        self,
        target: Any,
        task: int,
        rows: tuple[int, int],
        ids: np.ndarray,
        epoch: int,
        raws: Sequence[Any] | None = None,
    ) -> list[tuple[int, DataraxError]]:
        """Compute records ``ids`` into ``rows`` of ``target``; returns the bad ones.

        ``target`` is a dict of arrays, or the handle of a :class:`SharedArrays` block
        whose ``PROGRESS`` array receives, at index ``task``, the row being computed.
        ``raws`` are the rows' raw records when already read (else they are read
        here). With the raise policy the first bad record stops the task.
        """
        block = SharedArrays.attach(target) if isinstance(target, tuple) else None
        out = block.arrays if block is not None else target
        try:
            return self._run(out, task, rows, ids, epoch, raws)
        finally:
            if block is not None:
                block.close()

    def _run(self, out, task, rows, ids, epoch, raws=None) -> list[tuple[int, DataraxError]]:
        assert self.spec is not None
        progress = out.pop(PROGRESS, None)
        start, stop = rows
        bad: list[tuple[int, DataraxError]] = []
        if raws is None:
            try:
                raws = self.raw_records(ids[start:stop], epoch)
            except Exception:  # find the records that fail, one by one
                raws = None
        decoded = self._decode_batch(raws, ids[start:stop])
        if decoded is not None and not self.operators:
            for field, values in decoded.items():
                out[field][start:stop] = values
            return bad
        for row in range(start, stop):
            record_id = int(ids[row])
            if progress is not None:
                progress[task] = row
            try:
                if decoded is not None:
                    record = self.transform(
                        {k: v[row - start] for k, v in decoded.items()}, record_id, epoch
                    )
                else:
                    raw = (
                        raws[row - start] if raws is not None else self._read_one(record_id, epoch)
                    )
                    record = self.record(raw, record_id, epoch)
                store_record(out, row, record, self.spec, self.source.name, record_id)
            except Exception as exc:
                bad.append((row, record_error(exc, self.source.name, record_id)))
                if not self.skip:
                    break
        return bad

    def _decode_batch(self, raws: Sequence[Any] | None, ids: np.ndarray) -> dict | None:
        """The task's records decoded together when the source can and they all match the spec."""
        source = self.source
        if raws is None or not isinstance(source, RecordSource):
            return None
        try:
            decoded = source.decode_batch(raws, ids)
        except Exception:  # decoded again one by one, to name the bad records
            return None
        if decoded is None or not fields_match(decoded, self.source_spec, leading=(len(raws),)):
            return None
        return decoded

    def _read_one(self, record_id: int, epoch: int = 0) -> Any:
        return self.raw_records(np.asarray([record_id], np.int64), epoch)[0]


class HostPlane:
    """Reads a pipeline's chunks: vectorised, or record by record on a worker pool.

    Args:
        source: The pipeline's source.
        operators: The host operators, in order.
        seed: The pipeline seed (host operators' generators derive from it).
        workers: Worker count (0: on the reading thread).
        mode: ``"thread"`` or ``"process"``.
        policy: What to do with bad records.
    """

    def __init__(
        self,
        source: DataSource,
        operators: Sequence[HostFunction],
        *,
        seed: int,
        workers: int,
        mode: WorkerMode,
        policy: BadRecordPolicy,
    ) -> None:
        self.source = source
        self.per_record = isinstance(source, RecordSource) or bool(operators)
        self.policy = policy
        self._job = RecordJob(source, operators, seed)
        self._job.skip = policy.skips
        self._workers_config = (workers, mode)
        self._workers: Workers | None = None
        self._spec: Spec | None = None

    @property
    def device_arrays(self) -> Any:
        """The source's device arrays when the compiled function may gather from them."""
        return None if self.per_record else self.source.device_arrays

    def element_spec(self) -> Spec:
        """Fields of one record after the host operators (from record 0, or the first good one)."""
        if self._spec is None:
            spec = dict(self.source.element_spec())
            if self._job.operators:
                count = min(len(self.source), SPEC_ATTEMPTS)
                record = first_good_record(
                    ((i, partial(self._record, i)) for i in range(count)), self.source.name
                )
                assert record is not None  # the source has records: its spec exists
                spec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in record.items()}
            self._spec = spec
        return self._spec

    def check_batchable(self) -> None:
        """Raise unless every field of :meth:`element_spec` can be batched (none is text).

        Record sources may deliver text for host operators to turn into numbers;
        text that reaches the batch is refused when the pipeline starts.
        """
        text = [k for k, v in self.element_spec().items() if v.dtype == object]
        if text:
            raise SchemaError(
                "text cannot be batched",
                where=f"{self.source.name}, field '{text[0]}'",
                expected="numeric fields: a host operator that turns the text into numbers "
                "(e.g. datarax.operators.text.Tokenize), or a decoder that drops it",
                found="a text field reaching the batch",
            )

    def _record(self, record_id: int) -> dict[str, np.ndarray]:
        return self._job.record(self._job._read_one(record_id), record_id, 0)

    def workers(self) -> Workers:
        """The worker pool (made on first use)."""
        if self._workers is None:
            self.element_spec()
            self._job.spec = self._spec
            self._job.source_spec = dict(self.source.element_spec())
            size, mode = self._workers_config
            self._workers = make_workers(self._job, size, mode, where=self.source.name)
        return self._workers

    def read(
        self, ids: np.ndarray, positions: np.ndarray, epoch: int, batch_size: int
    ) -> tuple[dict[str, np.ndarray], list[int], tuple[int, DataraxError] | None]:
        """The arrays of a chunk, the rows (into ``ids``) of bad records, and the failure.

        With the skip policy every bad row is skipped and the failure is ``None``.
        With the raise policy the failure is the first bad row and its error: rows
        before its batch are complete (the caller hands those batches out, then
        raises); bad rows are filled like skipped ones so the arrays stay defined.

        Args:
            ids: The chunk's record ids, in batch order.
            positions: For every row of the chunk's arrays, the index into ``ids`` of
                the record it holds (padding and device-major arrangement included).
            epoch: The epoch (host operators' generators depend on it).
            batch_size: Records per batch (a skipped record is replaced within its batch).
        """
        if not self.per_record:
            return self.source.read_epoch(ids[positions], epoch), [], None
        workers = self.workers()
        spec = self.element_spec()
        n = ids.size
        fields = {k: ((n, *s.shape), s.dtype) for k, s in spec.items()}
        tasks = _split(n, max(1, 2 * workers.size))
        shared = streamed = None
        if _is_process(workers):
            if not self.source.random_access:
                streamed = self._read_stream(ids, epoch)
            shared = SharedArrays.create({**fields, PROGRESS: ((len(tasks),), np.int64)})
            shared.arrays[PROGRESS][:] = [start for start, _ in tasks]
        try:
            if shared is not None:
                target: Any = shared.handle
                out = {k: v for k, v in shared.arrays.items() if k != PROGRESS}
            else:
                target = out = {k: np.empty(shape, dtype) for k, (shape, dtype) in fields.items()}

            def describe(task: int) -> str:
                assert shared is not None
                row = int(shared.arrays[PROGRESS][task])
                return f"computing record {int(ids[row])}"

            results = workers.run(
                [
                    (target, t, (a, b), ids, epoch, None if streamed is None else streamed[a:b])
                    for t, (a, b) in enumerate(tasks)
                ],
                describe,
            )
            bad = sorted((b for r in results for b in r), key=lambda b: b[0])
            failure = None if self.policy.skips or not bad else bad[0]
            skipped = [row for row, _ in bad]
            if failure is None:
                for _, error in bad:
                    logger.warning("skipped a bad record: %s", error)
            else:  # rows after the first bad one may not have been computed
                skipped = list(range(failure[0], n))
            _replace_skipped(out, skipped, n, batch_size)
            if positions.size == n and (positions == np.arange(n)).all():
                arrays = out if shared is None else {k: v.copy() for k, v in out.items()}
            else:
                arrays = {k: v[positions] for k, v in out.items()}
        finally:
            if shared is not None:
                shared.close()
        return arrays, skipped, failure

    def _read_stream(self, ids: np.ndarray, epoch: int) -> Sequence[Any] | None:
        """A stream's raw records for a chunk, read here in order for worker processes.

        Each worker process reading the stream itself would read all of it and keep
        the records the other workers compute; so the stream is read once, here, and
        the workers only decode and run the host operators.
        """
        try:
            return self._job.raw_records(ids, epoch)
        except Exception:  # the workers read the records one by one and name the bad ones
            return None


def _is_process(workers: Workers) -> bool:
    from datarax.control.workers import ProcessWorkers

    return isinstance(workers, ProcessWorkers)


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """``[0, n)`` cut into at most ``parts`` contiguous, nearly equal ranges."""
    bounds = np.linspace(0, n, min(parts, n) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _replace_skipped(out: dict[str, np.ndarray], skipped: list[int], n: int, size: int) -> None:
    """Fill each skipped row with the first good record of its batch (zeros if none)."""
    if not skipped:
        return
    bad = np.zeros(n, bool)
    bad[skipped] = True
    for row in skipped:
        first = row - row % size
        good = np.flatnonzero(~bad[first : min(first + size, n)])
        for v in out.values():
            v[row] = v[first + good[0]] if good.size else 0


def _fields(value: Any, source: str, record_id: int, op: str) -> dict[str, np.ndarray]:
    if not isinstance(value, Mapping):
        raise RecordError(
            "the host operator did not return a record",
            where=f"{source}, record {record_id}, {op}",
            expected="a dict of field name to array",
            found=type(value).__name__,
        )
    return record_fields(value, source=source, record=record_id)
