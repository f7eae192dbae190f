"""The host plane: worker-count independence, Grain-protocol sources, host operators' specs.

A pipeline reading record by record (a record source, or host operators) must give
the same stream bit for bit on 0, 1 or 3 thread workers and on worker processes, and
a stochastic host operator's draws must follow (seed, epoch, record id) only.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from host_records import drop_y, expected_scale, jitter, make_records, scale

from datarax import from_source
from datarax.core.errors import PipelineBuildError, SchemaError, SourceError, StateError
from datarax.dag.nodes import HostOperator, OperatorNode
from datarax.operators.map import MapOperator, MapOperatorConfig
from datarax.sources import ArrayRecordSource, ArrayRecordSourceConfig, write_array_record
from datarax.sources.record import SequenceSource
from harness import snapshot

N, BATCH, SEED = 11, 4, 7


def raises(cls, *parts: str):
    """``pytest.raises`` requiring every part, literally and in order, in the message."""
    return pytest.raises(cls, match=".*".join(re.escape(p) for p in parts))


def augmented(records, workers: int, mode: str = "thread"):
    return (
        from_source(
            SequenceSource(records),
            BATCH,
            shuffle=True,
            seed=SEED,
            num_epochs=2,
            workers=workers,
            worker_mode=mode,
        )
        >> HostOperator(scale)
        >> HostOperator(jitter, stochastic=True)
    )


# -- results never depend on the workers -------------------------------------------------


def test_stream_is_identical_for_any_number_and_kind_of_workers():
    records = make_records(N)
    batches = list(augmented(records, 0))
    reference = [snapshot(b) for b in batches]
    for workers, mode in ((1, "thread"), (3, "thread"), (2, "process")):
        got = [snapshot(b) for b in augmented(records, workers, mode)]
        assert got == reference, f"{workers} {mode} workers give another stream"

    # Every epoch is a permutation of the records, in another order each epoch.
    orders = {}
    for b in batches:
        orders.setdefault(b.epoch, []).extend(int(i) for i in b.record_ids)
    assert sorted(orders) == [0, 1]
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(N))
    assert orders[0] != orders[1]

    # Values: the host operators' output for each record, and the generator of
    # (seed, epoch, record id) for the stochastic one.
    op = HostOperator(jitter, stochastic=True)
    noise = {}
    for b in batches:
        assert sorted(b.keys()) == ["id", "noise", "total", "x", "y"]
        for row, rid in enumerate(int(i) for i in b.record_ids):
            for field, value in expected_scale(records[rid]).items():
                np.testing.assert_array_equal(np.asarray(b[field][row]), value, err_msg=field)
            drawn = op.rng(SEED, b.epoch, rid).normal(size=2).astype(np.float32)
            np.testing.assert_array_equal(np.asarray(b["noise"][row]), drawn)
            noise[b.epoch, rid] = np.asarray(b["noise"][row]).tobytes()
    assert len(set(noise.values())) == 2 * N  # differs per record and per epoch


def test_generator_depends_on_seed_epoch_record_and_stream_name():
    op = HostOperator(jitter, stochastic=True)
    draw = lambda *key: op.rng(*key).integers(1 << 62)  # noqa: E731
    assert draw(1, 0, 5) == draw(1, 0, 5)
    keys = [(1, 0, 5), (0, 1, 5), (1, 5, 0), (1, 0, 6), (2, 0, 5)]
    assert len({draw(*k) for k in keys}) == len(keys)  # seed + epoch never collide
    other = HostOperator(jitter, stochastic=True, stream_name="other")
    assert other.rng(1, 0, 5).integers(1 << 62) != draw(1, 0, 5)


# -- Grain's random-access protocol ------------------------------------------------------


class Lookup:
    """A plain random-access object: ``__len__`` and ``__getitem__``, counting calls."""

    def __init__(self, n: int) -> None:
        self.records = make_records(n)
        self.single: list[int] = []

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        self.single.append(index)
        return self.records[index]


class BatchedLookup(Lookup):
    """Also has Grain's batched read, ``__getitems__``."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.batched: list[list[int]] = []

    def __getitems__(self, indices):
        self.batched.append(list(indices))
        return [self.records[i] for i in indices]


def test_plain_random_access_object_is_read_record_by_record():
    lookup = Lookup(10)
    pipeline = from_source(lookup, BATCH)
    assert pipeline.source.name == "SequenceSource[Lookup]"
    assert lookup.single == [0]  # record 0 gives the fields
    lookup.single.clear()
    batches = list(pipeline)
    assert sorted(lookup.single) == list(range(10))
    assert [b.record_ids.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    x = np.concatenate([np.asarray(b["x"]) for b in batches])
    np.testing.assert_array_equal(x, np.stack([r["x"] for r in lookup.records]))


def test_batched_read_is_used_when_the_object_has_one():
    lookup = BatchedLookup(10)
    batches = list(from_source(lookup, BATCH, shuffle=True, seed=1))
    assert lookup.single == []
    assert lookup.batched[0] == [0]  # the fields, from record 0
    order = [i for b in batches for i in b.record_ids.tolist()]
    assert [i for call in lookup.batched[1:] for i in call] == order
    assert len(lookup.batched) - 1 <= len(batches)  # one read per chunk, not per record
    y = np.concatenate([np.asarray(b["y"]) for b in batches])
    np.testing.assert_array_equal(y, np.float32(order) / 4)


def test_objects_without_the_protocol_are_refused():
    with raises(
        SourceError,
        "SequenceSource: object is not a random-access source; "
        "expected an object with __len__ and __getitem__, found int",
    ):
        SequenceSource(42)
    with raises(SourceError, "mine: object is not a random-access source", "found set"):
        SequenceSource({1, 2}, name="mine")
    with raises(PipelineBuildError, "DataSourceNode: not a data source", "found object"):
        from_source(object(), 2)


def test_records_that_are_not_dicts_name_the_record():
    with raises(
        SourceError,
        "SequenceSource[list], record 0: decoded record is not a dict; "
        "expected a dict of field name to array, found tuple",
    ):
        list(from_source([(1, 2), (3, 4)], 2))


# -- host operators: placement and the spec they produce ------------------------------


def test_host_operator_after_a_device_operator_is_refused():
    device = OperatorNode(MapOperator(MapOperatorConfig(fields=("y",)), fn=lambda v: v + 1))
    base = from_source(SequenceSource(make_records(4)), 2)
    with raises(
        PipelineBuildError,
        "HostOperator(scale): a host operator runs before the device plane; "
        "expected HostOperator nodes before the first device node, found after",
    ):
        base >> device >> HostOperator(scale)
    batch = next(iter(base >> HostOperator(scale) >> device))  # the other way round runs
    np.testing.assert_array_equal(np.asarray(batch["y"]), [1.0, 1.25])


def test_host_operators_spec_comes_from_their_output():
    records = make_records(6)
    pipeline = (
        from_source(SequenceSource(records), 3) >> HostOperator(scale) >> HostOperator(drop_y)
    )
    spec = {k: (s.shape, np.dtype(s.dtype)) for k, s in pipeline.host_plane.element_spec().items()}
    assert spec == {
        "id": ((), np.dtype(np.int32)),
        "x": ((3,), np.dtype(np.int32)),
        "total": ((), np.dtype(np.int32)),
    }
    batch = next(iter(pipeline))
    assert sorted(batch.keys()) == ["id", "total", "x"]
    np.testing.assert_array_equal(np.asarray(batch["total"]), [3, 33, 63])


def test_a_later_record_of_another_shape_is_a_schema_error_naming_it():
    records = make_records(8, odd={6: 4})
    odd = from_source(SequenceSource(records), 4, batches_per_call=1) >> HostOperator(scale)
    it = iter(odd)
    assert next(it).record_ids.tolist() == [0, 1, 2, 3]
    with raises(
        SchemaError,
        "SequenceSource[list], record 6, field 'x': record field differs from the source's "
        "spec; expected int32(3,), found int32(4,)",
    ):
        next(it)


def test_host_operators_after_a_source_that_decodes_whole_batches(tmp_path):
    records = make_records(10)
    path = str(tmp_path / "records.arrayrecord")
    assert write_array_record(path, records) == 10
    source = ArrayRecordSource(ArrayRecordSourceConfig(paths=path))
    for workers in (0, 2):
        batches = list(from_source(source, 4, workers=workers) >> HostOperator(scale))
        assert [b.record_ids.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        for field in ("id", "x", "y", "total"):
            want = np.stack([expected_scale(r)[field] for r in records])
            got = np.concatenate([np.asarray(b[field]) for b in batches])
            np.testing.assert_array_equal(got, want, err_msg=field)


def test_a_state_is_refused_by_a_pipeline_with_another_host_function():
    def build(fn):
        return from_source(SequenceSource(make_records(8)), 4) >> HostOperator(fn)

    first = build(lambda r: {**r, "y": r["y"] + 1})
    it = iter(first)
    next(it)
    state = it.get_state()
    same = iter(build(lambda r: {**r, "y": r["y"] + 1}))
    same.set_state(state)  # the same code restores
    assert next(same).record_ids.tolist() == [4, 5, 6, 7]
    with raises(StateError, "the state was saved by a pipeline that produces other records"):
        iter(build(lambda r: {**r, "y": r["y"] + 2})).set_state(state)
