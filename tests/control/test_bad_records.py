"""Bad records: the skip policy against a NumPy model, budgets, state, and the raise policy.

A skipped record keeps its place in its batch, is marked invalid and repeats the first
good record of the batch (zeros when there is none); budgets count per epoch; the
iterator state lists the records skipped so far in the epoch. With the raise policy
the first bad record stops iteration with the same message on any workers.
"""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
from host_records import FailOn, flaky, jitter, make_records, misbehave, scale
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax import from_source
from datarax.control import BadRecordPolicy
from datarax.core.errors import ConfigError, DataraxError, RecordError, SchemaError, StateError
from datarax.dag.nodes import HostOperator
from datarax.sources.record import SequenceSource
from harness import assert_resumes_at_every_step, assert_same_rest, snapshot

N, BATCH, BAD = 11, 4, (2, 5, 6)
FIELDS = ("id", "x", "y")


def raises(cls, *parts: str):
    """``pytest.raises`` requiring every part, literally and in order, in the message."""
    return pytest.raises(cls, match=".*".join(re.escape(p) for p in parts))


def skipping(policy="skip", bad=BAD, *, n: int = N, workers: int = 0, epochs: int = 2):
    source = SequenceSource(make_records(n), decoder=FailOn(bad))
    return from_source(source, BATCH, num_epochs=epochs, workers=workers, bad_records=policy)


def model(records, order, bad, batch_size):
    """Each batch as the skip policy must give it: ids, validity and every field's rows."""
    for start in range(0, len(order), batch_size):
        ids = [int(i) for i in order[start : start + batch_size]]
        valid = np.array([i not in bad for i in ids])
        good = np.flatnonzero(valid)
        fields = {}
        for field in FIELDS:
            rows = np.stack([records[i][field] for i in ids])
            rows[~valid] = rows[good[0]] if good.size else 0
            fields[field] = rows
        yield ids, valid, fields


# -- the skip policy ---------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 23),
    batch_size=st.integers(1, 6),
    workers=st.integers(0, 3),
    data=st.data(),
)
def test_skip_policy_matches_a_numpy_model(n, batch_size, workers, data):
    bad = data.draw(st.sets(st.integers(0, n - 1), max_size=n // 2), label="bad")
    records = make_records(n)
    pipeline = from_source(
        SequenceSource(records, decoder=FailOn(bad)),
        batch_size,
        shuffle=True,
        seed=n,
        workers=workers,
        bad_records="skip",
    )
    order = pipeline.sampler.indices(0, 0, n)
    assert sorted(order.tolist()) == list(range(n))
    it = iter(pipeline)
    batches = list(it)
    expected = list(model(records, order, bad, batch_size))
    assert len(batches) == len(expected)
    skipped = []
    for batch, (ids, valid, fields) in zip(batches, expected, strict=True):
        assert batch.record_ids.tolist() == ids
        np.testing.assert_array_equal(batch.mask, valid)
        for field, rows in fields.items():
            np.testing.assert_array_equal(np.asarray(batch[field]), rows, err_msg=field)
        if batch.skipped is not None:
            skipped += batch.skipped.tolist()
    assert skipped == [int(i) for i in order if i in bad]
    assert it.metrics()["skipped_total"] == len(bad)


def test_skip_policy_is_the_same_on_worker_processes():
    """Records 3 (decoder), 5 (shape), 7 (not a dict) and 9 (operator raises) are skipped."""
    records = make_records(12, odd={5: 4})

    def run(workers: int, mode: str):
        pipeline = from_source(
            SequenceSource(records, decoder=FailOn({3})),
            4,
            shuffle=True,
            seed=2,
            workers=workers,
            worker_mode=mode,
            bad_records="skip",
        ) >> HostOperator(misbehave)
        it = iter(pipeline)
        batches = list(it)
        skipped = [int(i) for b in batches if b.skipped is not None for i in b.skipped]
        return [(snapshot(b), b.mask.tolist()) for b in batches], skipped, it.metrics()

    inline = run(0, "thread")
    assert run(2, "process") == inline
    _, skipped, metrics = inline
    assert sorted(skipped) == [3, 5, 7, 9] and metrics["skipped_total"] == 4


def test_skipped_records_are_logged_by_id(caplog):
    with caplog.at_level(logging.WARNING, logger="datarax"):
        list(skipping(epochs=1))
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped a bad record: SequenceSource[list], record {i}: the record cannot be read; "
        "expected a source and decoder that read it, "
        f"found ValueError: corrupt bytes in record {i}"
        for i in BAD
    ]


def test_a_bad_record_0_is_left_to_the_policy():
    records = make_records(6)
    skip = from_source(SequenceSource(records, decoder=FailOn({0})), 3, bad_records="skip")
    first = next(iter(skip))
    assert first.mask.tolist() == [False, True, True]
    np.testing.assert_array_equal(np.asarray(first["id"]), [1, 1, 2])  # fields from record 1
    operator = from_source(SequenceSource(records), 3, bad_records="skip") >> HostOperator(
        FailOn({0})
    )
    assert next(iter(operator)).mask.tolist() == [False, True, True]

    stop = iter(from_source(SequenceSource(records, decoder=FailOn({0})), 3))  # builds
    with raises(
        RecordError,
        "SequenceSource[list], record 0: the record cannot be read; "
        "expected a source and decoder that read it, "
        "found ValueError: corrupt bytes in record 0",
    ):
        next(stop)
    with raises(
        RecordError,
        "SequenceSource[list], record 0, HostOperator(FailOn): the host operator raised; "
        "expected a function that returns the record, found ValueError: corrupt bytes in record 0",
    ):
        next(iter(from_source(SequenceSource(records), 3) >> HostOperator(FailOn({0}))))


def test_fields_cannot_be_learned_when_the_first_records_are_all_bad():
    source = SequenceSource(make_records(40), decoder=FailOn(range(30)))
    for policy in ("raise", "skip"):
        with raises(
            RecordError,
            "SequenceSource[list], record 0: the record cannot be read; "
            "expected a source and decoder that read it, "
            "found ValueError: corrupt bytes in record 0",
        ):
            from_source(source, 4, bad_records=policy)


# -- budgets -----------------------------------------------------------------------------


def test_budget_at_the_limit_completes_and_resets_every_epoch():
    it = iter(skipping(BadRecordPolicy("skip", max_skipped=3)))
    batches = list(it)
    assert [b.epoch for b in batches] == [0, 0, 0, 1, 1, 1]
    assert it.metrics()["skipped_total"] == 6  # three per epoch, never more than three
    it = iter(skipping(BadRecordPolicy("skip", max_fraction=0.3)))  # floor(0.3 * 11) = 3
    assert len(list(it)) == 6 and it.metrics()["skipped_total"] == 6


def test_one_record_over_the_budget_raises_naming_limit_and_records():
    for policy, limit in (
        (BadRecordPolicy("skip", max_skipped=2), 2),
        (BadRecordPolicy("skip", max_fraction=0.2), 2),  # floor(0.2 * 11)
        (BadRecordPolicy("skip", max_skipped=0), 0),
    ):
        with raises(
            RecordError,
            "SequenceSource[list]: too many bad records in epoch 0; "
            f"expected at most {limit} skipped records per epoch, "
            f"found {limit + 1} (records {[2, 5, 6][: limit + 1]})",
        ):
            list(skipping(policy, epochs=1))


def test_budget_counts_each_epoch_on_its_own():
    """A stochastic host operator fails other records every epoch: epoch 1 runs over."""
    n, seed = 12, 0
    op = HostOperator(flaky, stochastic=True)
    failing = lambda s, e: [r for r in range(n) if op.rng(s, e, r).random() < 0.25]  # noqa: E731
    while not 0 < len(failing(seed, 0)) < len(failing(seed, 1)):
        seed += 1
    first, second = failing(seed, 0), failing(seed, 1)
    limit = len(first)
    policy = BadRecordPolicy("skip", max_skipped=limit)
    pipeline = (
        from_source(
            SequenceSource(make_records(n)),
            BATCH,
            seed=seed,
            num_epochs=2,
            batches_per_call=1,
            bad_records=policy,
        )
        >> op
    )
    # Records are read a batch at a time: the batch that crosses the limit names every
    # record skipped in the epoch up to it.
    over = next(
        (b + 1) * BATCH
        for b in range(n // BATCH)
        if sum(r < (b + 1) * BATCH for r in second) > limit
    )
    named = [r for r in second if r < over]
    it = iter(pipeline)
    seen = []
    with raises(
        RecordError,
        f"SequenceSource[list]: too many bad records in epoch 1; expected at most {limit} "
        f"skipped records per epoch, found {len(named)} (records {named})",
    ):
        for batch in it:
            seen.append((batch.epoch, batch.skipped.tolist() if batch.skipped is not None else []))
    assert [i for epoch, ids in seen if epoch == 0 for i in ids] == first  # within budget
    assert len([ids for epoch, ids in seen if epoch == 1]) == over // BATCH - 1
    assert it.metrics()["skipped_total"] == limit + sum(r < over - BATCH for r in second)


def test_fraction_limits_round_as_written():
    assert BadRecordPolicy("skip", max_fraction=0.29).limit(100) == 29
    assert BadRecordPolicy("skip", max_fraction=0.57).limit(100) == 57
    assert BadRecordPolicy("skip", max_fraction=0.3).limit(11) == 3
    assert BadRecordPolicy("skip", max_fraction=1).limit(7) == 7
    assert BadRecordPolicy("skip", max_skipped=5, max_fraction=0.2).limit(11) == 2
    assert BadRecordPolicy("skip", max_skipped=1, max_fraction=0.5).limit(11) == 1
    assert BadRecordPolicy("skip").limit(11) is None


def test_invalid_policies_are_config_errors():
    cases = [
        (dict(on_error="ignore"), "BadRecordPolicy.on_error: unknown policy", "found 'ignore'"),
        (
            dict(on_error="skip", max_skipped=-1),
            "BadRecordPolicy.max_skipped: invalid budget; expected an int >= 0 or None, found -1",
        ),
        (dict(on_error="skip", max_skipped=True), "max_skipped: invalid budget", "found True"),
        (dict(on_error="skip", max_skipped=2.0), "max_skipped: invalid budget", "found 2.0"),
        (
            dict(on_error="skip", max_fraction=1.5),
            "BadRecordPolicy.max_fraction: out of range; expected a finite number in [0, 1] or "
            "None, found 1.5",
        ),
        (dict(on_error="skip", max_fraction=-0.1), "max_fraction: out of range", "found -0.1"),
        (dict(on_error="skip", max_fraction=float("nan")), "max_fraction", "found nan"),
        (
            dict(on_error="raise", max_skipped=3),
            "BadRecordPolicy: a budget needs the skip policy; expected on_error='skip' with "
            "max_skipped or max_fraction, found on_error='raise'",
        ),
        (dict(max_fraction=0.1), "a budget needs the skip policy"),
    ]
    for kwargs, *parts in cases:
        with raises(ConfigError, *parts):
            BadRecordPolicy(**kwargs)
    with raises(
        ConfigError,
        "from_source(bad_records=...): unknown bad-record policy; expected 'raise', 'skip' or a "
        "BadRecordPolicy, found 'ignore'",
    ):
        skipping("ignore")


# -- state -------------------------------------------------------------------------------


def test_state_lists_the_skipped_records_and_restores_stream_and_metrics():
    it = iter(skipping())
    states, metrics, stream = [it.get_state()], [it.metrics()], []
    for batch in it:
        stream.append(snapshot(batch))
        states.append(it.get_state())
        metrics.append(it.metrics())
    assert [s["skipped"] for s in states] == [[], [2], [2, 5, 6], [], [2], [2, 5, 6], []]
    assert [m["skipped"] for m in metrics] == [s["skipped"] for s in states]
    assert [m["skipped_total"] for m in metrics] == [0, 1, 3, 3, 4, 6, 6]

    for k, state in enumerate(states):
        restored = iter(skipping())
        restored.set_state(json.loads(json.dumps(state)))
        # The total counts skips since the restore; the restored epoch's own skips are known.
        before = metrics[k]["skipped_total"] - len(state["skipped"])
        rest = []
        while True:
            step = k + len(rest)
            assert restored.get_state() == states[step], f"from {k}: state before {step}"
            got = restored.metrics()
            assert got["skipped"] == metrics[step]["skipped"], f"from {k}: metrics at {step}"
            assert got["skipped_total"] == metrics[step]["skipped_total"] - before
            try:
                rest.append(snapshot(next(restored)))
            except StopIteration:
                break
        assert_same_rest(rest, stream[k:], f"restored from step {k}")


def test_restored_skips_count_against_the_budget():
    pipeline = skipping(BadRecordPolicy("skip", max_skipped=3))
    it = iter(pipeline)
    next(it)
    state = it.get_state()
    assert state["skipped"] == [2]
    state["skipped"] = [0, 1, 2]  # as if records 0 and 1 had been skipped too
    restored = iter(skipping(BadRecordPolicy("skip", max_skipped=3)))
    restored.set_state(state)
    with raises(RecordError, "too many bad records in epoch 0", "found 4 (records [0, 1, 2, 5])"):
        next(restored)


def test_malformed_skipped_list_is_a_state_error():
    it = iter(skipping())
    good = it.get_state()
    for skipped in ([N], [-1], [2.0], [True], "2, 5", {"2": 5}, [[2]]):
        with raises(
            StateError,
            "PipelineIterator.set_state: malformed list of skipped records; "
            f"expected 'skipped': a list of record ids in [0, {N})",
        ):
            it.set_state({**good, "skipped": skipped})


def test_resumes_at_every_step_with_skip_policy_and_with_thread_workers():
    # A skip policy that meets no bad record keeps an empty list in every state.
    assert_resumes_at_every_step(lambda: skipping(bad=(), workers=2))
    assert_resumes_at_every_step(
        lambda: (
            from_source(
                SequenceSource(make_records(N)), 3, shuffle=True, seed=3, num_epochs=2, workers=2
            )
            >> HostOperator(scale)
            >> HostOperator(jitter, stochastic=True)
        )
    )


# -- the raise policy --------------------------------------------------------------------


def test_raise_policy_names_the_first_bad_record_on_any_workers():
    """Records 3 (decoder), 5 (shape), 7 (not a dict), 9 (operator raises) are bad."""
    records = make_records(12, odd={5: 4})
    expected = [
        (
            RecordError,
            "SequenceSource[list], record 3: the record cannot be read; "
            "expected a source and decoder that read it, "
            "found ValueError: corrupt bytes in record 3",
        ),
        (
            SchemaError,
            "SequenceSource[list], record 5, field 'x': record field differs from the source's "
            "spec; expected int32(3,), found int32(4,)",
        ),
        (
            RecordError,
            "SequenceSource[list], record 7, HostOperator(misbehave): the host operator did "
            "not return a record; expected a dict of field name to array, found list",
        ),
        (
            RecordError,
            "SequenceSource[list], record 9, HostOperator(misbehave): the host operator "
            "raised; expected a function that returns the record, found ZeroDivisionError: no "
            "scale for record 9",
        ),
    ]
    for workers, mode in ((0, "thread"), (2, "thread"), (2, "process")):
        pipeline = from_source(
            SequenceSource(records, decoder=FailOn({3})),
            2,
            workers=workers,
            worker_mode=mode,
        ) >> HostOperator(misbehave)
        errors = []
        for position in (0, 4, 6, 8):  # after each bad record's batch, the next one
            it = iter(pipeline)
            state = it.get_state()
            it.set_state({**state, "position": position})
            good = []
            with pytest.raises(DataraxError) as info:
                for batch in it:
                    good.extend(batch.record_ids.tolist())
            bad = {0: 3, 4: 5, 6: 7, 8: 9}[position]
            assert good == list(range(position, bad - bad % 2))  # the batches before it
            errors.append((type(info.value), str(info.value)))
        assert errors == expected, f"{workers} {mode} workers"
        tail = iter(pipeline)
        tail.set_state({**tail.get_state(), "position": 10})
        assert [b.record_ids.tolist() for b in tail] == [[10, 11]]

        # Within one read the lowest row wins, whichever worker finishes first.
        plane = pipeline.host_plane
        for ids, first in ((np.arange(12), 3), (np.arange(12)[::-1].copy(), 9)):
            _, _, (row, error) = plane.read(ids, np.arange(12), 0, 2)
            assert int(ids[row]) == first
            with raises(expected[[3, 5, 7, 9].index(first)][0], f"record {first}"):
                raise error
