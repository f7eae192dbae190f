"""MixedSource: exact proportions per window, components cycling through their own
epochs, determinism, resume, errors, and record sources among the components read on
the pipeline's workers under its bad-record policy."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datarax import from_source
from datarax.core.errors import ConfigError, SchemaError, SourceError
from datarax.core.rng import mix64
from datarax.samplers.feistel import FeistelPermutation
from datarax.sources import (
    ArrayRecordSource,
    ArrayRecordSourceConfig,
    MemorySource,
    MemorySourceConfig,
    MixedRecordSource,
    MixedSource,
    MixedSourceConfig,
    RecordSource,
    SequenceSource,
    write_array_record,
)
from datarax.sources.mixed import _MIX_STREAM, window_counts
from harness import assert_resumes_at_every_step, snapshot


def component(offset: int, n: int) -> MemorySource:
    return MemorySource(
        MemorySourceConfig(placement="host"),
        data={"x": offset + np.arange(n, dtype=np.int32), "y": np.full(n, offset, np.float32)},
    )


def mixed(weights=(3, 1), sizes=(10, 4), window=4, **config) -> MixedSource:
    sources = [component(1000 * i, n) for i, n in enumerate(sizes)]
    return MixedSource(
        MixedSourceConfig(weights=tuple(weights), window=window, source_field="src", **config),
        sources=sources,
    )


@given(
    weights=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=5).filter(lambda w: sum(w) > 0),
    window=st.integers(1, 500),
)
@settings(max_examples=60, deadline=None)
def test_window_counts_are_the_largest_remainder_rounding(weights, window):
    counts = window_counts(weights, window)
    exact = np.asarray(weights) / sum(weights) * window
    assert counts.sum() == window
    assert np.all(np.abs(counts - exact) < 1.0)  # never more than one away from exact
    assert np.all(counts >= np.floor(exact))


@given(
    weights=st.lists(st.integers(1, 9), min_size=2, max_size=4),
    window=st.integers(2, 60),
    windows=st.integers(1, 4),
    shift=st.integers(0, 50),
)
@settings(max_examples=40, deadline=None)
def test_every_window_has_exact_proportions(weights, window, windows, shift):
    mix = mixed(weights=weights, sizes=[7] * len(weights), window=window, shuffle=True)
    counts = window_counts(weights, window)
    for w in range(windows):
        positions = np.arange(w * window, (w + 1) * window)
        src = mix.read(positions)["src"]
        assert np.bincount(src, minlength=len(weights)).tolist() == counts.tolist()


def test_components_cycle_through_their_own_epochs():
    mix = mixed(weights=(1, 1), sizes=(6, 2), window=2, num_records=8, shuffle=False)
    x = mix.read(np.arange(8))["x"].tolist()
    # component 0 gets one record per window, in order; component 1 (2 records) cycles
    assert x == [0, 1000, 1, 1001, 2, 1000, 3, 1001]
    # the pipeline's next epoch continues the components where epoch 0 stopped
    epoch1 = mix.read_epoch(np.arange(8), 1)["x"].tolist()
    assert epoch1 == [4, 1000, 5, 1001, 0, 1000, 1, 1001]


def test_shuffled_components_are_a_permutation_per_component_epoch():
    mix = mixed(weights=(1, 1), sizes=(6, 3), window=2, num_records=12, seed=5)
    component, ids = mix.locate(np.arange(12))
    for c, n in ((0, 6), (1, 3)):
        mine = ids[component == c]
        for e in range(len(mine) // n):
            block = mine[e * n : (e + 1) * n]
            assert sorted(block.tolist()) == list(range(n))
            expected = FeistelPermutation(n, mix64(_MIX_STREAM, 5, c, e))(np.arange(n))
            assert block.tolist() == expected.tolist()
    # component 1 has 6 records in 12 positions: two of its epochs, in different orders
    ones = ids[component == 1]
    assert ones[:3].tolist() != ones[3:].tolist()


def test_values_come_from_the_located_records():
    mix = mixed(weights=(2, 1, 1), sizes=(5, 3, 4), window=8, num_records=24, seed=1)
    out = mix.read_epoch(np.arange(24), 2)
    component, ids = mix.locate(np.arange(24), 2)
    assert out["x"].tolist() == (1000 * component + ids).tolist()
    assert out["y"].tolist() == (1000.0 * component).tolist()
    assert out["src"].tolist() == component.tolist()


def test_a_pipeline_over_a_mix_is_deterministic_and_resumes_exactly():
    def build():
        return from_source(
            mixed(weights=(3, 1), sizes=(10, 4), window=4, num_records=16),
            4,
            shuffle=True,
            seed=3,
            num_epochs=3,
        )

    first = [snapshot(b) for b in build()]
    assert first == [snapshot(b) for b in build()]
    epochs = [[b for b in first if b[0] == e] for e in range(3)]
    assert epochs[0] != epochs[1]  # the components move on between epochs
    assert_resumes_at_every_step(build)


def test_unshuffled_pipeline_windows_are_exact_in_batches():
    p = from_source(mixed(weights=(3, 1), sizes=(9, 5), window=4, num_records=40), 4)
    for batch in p:
        assert sorted(np.asarray(batch["src"]).tolist()) == [0, 0, 0, 1]


def test_errors_name_what_is_wrong():
    a = component(0, 4)
    other = MemorySource(MemorySourceConfig(), data={"x": np.zeros(3, np.int64) + 1})
    with pytest.raises(
        SourceError,
        match=r"MixedSource, component 1 \(MemorySource\): component has other fields than "
        r"component 0; expected \['x', 'y'\], found \['x'\]",
    ):
        MixedSource(MixedSourceConfig(weights=(1, 1)), sources=[a, other])
    floats = MemorySource(
        MemorySourceConfig(), data={"x": np.zeros(3, np.float32), "y": np.zeros(3, np.float32)}
    )
    with pytest.raises(
        SourceError,
        match=r"component 1 \(MemorySource\), field 'x': component field differs from "
        r"component 0; expected int32\(\), found float32\(\)",
    ):
        MixedSource(MixedSourceConfig(weights=(1, 1)), sources=[a, floats])
    with pytest.raises(ConfigError, match="one weight per source; expected 2 weights, found 1"):
        MixedSource(MixedSourceConfig(weights=(1,)), sources=[a, a])
    with pytest.raises(ConfigError, match="weights sum to zero"):
        MixedSourceConfig(weights=(0, 0))
    with pytest.raises(ConfigError, match="invalid weights"):
        MixedSourceConfig(weights=(1, -1))
    with pytest.raises(SourceError, match="not a data source"):
        MixedSource(MixedSourceConfig(weights=(1, 1)), sources=[a, [1, 2]])
    with pytest.raises(
        SourceError,
        match=r"^MixedSource: the components are not a sequence; "
        r"expected a list or tuple of data sources, found generator$",
    ):
        MixedSource(MixedSourceConfig(weights=(1, 1)), sources=(s for s in [a, a]))


def _negate(record):
    return {**record, "x": -record["x"]}


def test_host_operators_see_each_epochs_records_of_the_mix():
    from datarax.dag.nodes import HostOperator

    def build(host: bool):
        mix = mixed(weights=(1, 1), sizes=(6, 2), window=2, num_records=8, shuffle=False)
        pipeline = from_source(mix, 4, num_epochs=2)
        return pipeline >> HostOperator(_negate) if host else pipeline

    plain = [np.asarray(b["x"]).tolist() for b in build(False)]
    negated = [(-np.asarray(b["x"])).tolist() for b in build(True)]
    assert negated == plain
    assert plain[2] == [4, 1000, 5, 1001]  # epoch 1 continues the components


# -- record sources among the components ---------------------------------------------------

NOISE = 1000  # bytes per record of the damaged ArrayRecord file
FILE_RECORDS = 200
MEMORY_RECORDS = 40


def damaged_array_record(path) -> tuple[ArrayRecordSource, list[int]]:
    """An ArrayRecord source whose file has bytes damaged in its first third, and its bad ids."""
    rng = np.random.default_rng(0)
    records = [{"noise": rng.integers(0, 256, NOISE, np.uint8)} for _ in range(FILE_RECORDS)]
    write_array_record(path, records)
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 200] = rng.bytes(200)
    path.write_bytes(bytes(data))
    source = ArrayRecordSource(ArrayRecordSourceConfig(paths=str(path)))
    bad = []
    for i in range(FILE_RECORDS):
        try:
            source.read(np.array([i]))
        except SourceError:
            bad.append(i)
    assert 0 < len(bad) <= 2 and bad[0] > 0, bad
    return source, bad


def file_and_memory_mix(path) -> tuple[MixedSource, list[int]]:
    """The damaged file (every record once per epoch) mixed with 40 records in memory."""
    source, bad = damaged_array_record(path)
    rows = np.repeat(np.arange(MEMORY_RECORDS, dtype=np.uint8)[:, None], NOISE, axis=1)
    memory = MemorySource(MemorySourceConfig(placement="host"), data={"noise": rows})
    config = MixedSourceConfig(
        weights=(5, 1),
        window=6,
        num_records=FILE_RECORDS + MEMORY_RECORDS,
        seed=2,
        source_field="src",
    )
    return MixedSource(config, sources=[source, memory]), bad


def bad_mixed_ids(mix: MixedSource, bad: list[int], epoch: int) -> list[int]:
    """The mixed record ids of epoch ``epoch`` that hold a bad record of component 0."""
    positions = np.arange(len(mix))
    component, ids = mix.locate(positions, epoch)
    return sorted(positions[(component == 0) & np.isin(ids, bad)].tolist())


def test_a_mix_with_a_record_source_is_a_record_source_reading_the_same_records():
    records = [{"x": np.int32(100 + i), "y": np.float32(i)} for i in range(5)]
    mix = MixedSource(
        MixedSourceConfig(weights=(1, 1), window=2, num_records=14, seed=1, source_field="src"),
        sources=[component(0, 10), SequenceSource(records)],
    )
    assert isinstance(mix, MixedRecordSource) and isinstance(mix, RecordSource)
    assert isinstance(mixed(), MixedSource) and not isinstance(mixed(), RecordSource)
    component_of, ids = mix.locate(np.arange(14), 1)
    raws = mix.read_records_epoch(np.arange(14), 1)
    located = zip(component_of.tolist(), ids.tolist(), strict=True)
    assert [(c, i) for c, i, _ in raws] == list(located)
    decoded = [mix.decode(raw, p) for p, raw in enumerate(raws)]
    expected = mix.read_epoch(np.arange(14), 1)
    assert [int(r["x"]) for r in decoded] == expected["x"].tolist()
    assert [int(r["src"]) for r in decoded] == expected["src"].tolist() == component_of.tolist()
    assert all(r["src"].dtype == np.int32 and r["src"].shape == () for r in decoded)
    # the workers' stream is the one read on the calling thread, epoch after epoch
    pipeline = from_source(mix, 4, shuffle=True, seed=5, num_epochs=2, workers=2)
    for batch in pipeline:
        want = mix.read_epoch(np.asarray(batch.record_ids), int(batch.epoch))
        assert np.asarray(batch["x"]).tolist() == want["x"].tolist()
        assert np.asarray(batch["src"]).tolist() == want["src"].tolist()


def test_a_record_mix_resumes_exactly():
    records = [{"x": np.int32(100 + i), "y": np.float32(i)} for i in range(5)]

    def build():
        mix = MixedSource(
            MixedSourceConfig(weights=(2, 1), window=3, num_records=15, seed=3),
            sources=[component(0, 10), SequenceSource(records)],
        )
        return from_source(mix, 4, shuffle=True, seed=3, num_epochs=2, workers=2)

    assert_resumes_at_every_step(build)


def skipping_stream(
    mix: MixedSource, workers: int, mode: str = "thread"
) -> list[tuple[tuple, list[int], dict]]:
    """(snapshot, invalid record ids, the iterator's metrics after it) of every batch."""
    pipeline = from_source(
        mix,
        16,
        shuffle=True,
        seed=1,
        num_epochs=2,
        workers=workers,
        worker_mode=mode,
        bad_records="skip",
    )
    it = iter(pipeline)
    out = []
    for batch in it:
        ids = np.asarray(batch.record_ids)
        out.append((snapshot(batch), sorted(ids[~batch.mask].tolist()), it.metrics()))
    return out


def test_bad_records_of_an_array_record_component_are_skipped_on_the_workers(tmp_path):
    mix, bad = file_and_memory_mix(tmp_path / "damaged.arrayrecord")
    assert isinstance(mix, MixedRecordSource)
    stream = skipping_stream(mix, workers=2)
    per_epoch = (FILE_RECORDS + MEMORY_RECORDS) // 16
    assert len(stream) == 2 * per_epoch
    for epoch in range(2):
        expected = bad_mixed_ids(mix, bad, epoch)
        assert len(expected) == len(bad)  # each file record comes once per epoch
        part = stream[epoch * per_epoch : (epoch + 1) * per_epoch]
        assert sorted(i for _, invalid, _ in part for i in invalid) == expected
        # the metrics name exactly those mixed ids, batch after batch (until the epoch ends)
        so_far: list[int] = []
        for _, invalid, metrics in part[:-1]:
            so_far += invalid
            assert sorted(metrics["skipped"]) == sorted(so_far)
        assert part[-1][2]["skipped"] == [] and part[-1][2]["epoch"] == epoch + 1
        assert part[-1][2]["skipped_total"] == len(bad) * (epoch + 1)
        for (_, ((_, ids, leaves),)), invalid, _ in part:
            good = [row for row, i in enumerate(ids) if i not in invalid]
            want = mix.read_epoch(np.asarray(ids)[good], epoch)
            got = {path: np.frombuffer(raw, dt).reshape(shape) for path, dt, shape, raw in leaves}
            assert got["['data']['noise']"][good].tobytes() == want["noise"].tobytes()
            assert got["['data']['src']"][good].tolist() == want["src"].tolist()
    assert stream == skipping_stream(mix, workers=0)  # bit for bit, skips included
    assert stream == skipping_stream(mix, workers=2, mode="process")


def test_a_bad_record_of_an_array_record_component_raises_naming_it(tmp_path):
    mix, bad = file_and_memory_mix(tmp_path / "damaged.arrayrecord")
    file_source = mix.sources[0]
    order = [i for (_, ((_, ids, _),)), _, _ in skipping_stream(mix, workers=0)[:15] for i in ids]
    first_bad = next(i for i in order if i in bad_mixed_ids(mix, bad, 0))
    component_of, ids = mix.locate(np.array([first_bad]))
    record = int(ids[0])
    assert int(component_of[0]) == 0 and record in bad
    for workers in (0, 2):
        it = iter(from_source(mix, 16, shuffle=True, seed=1, num_epochs=2, workers=workers))
        seen: list[int] = []
        with pytest.raises(SourceError) as info:
            for batch in it:
                seen.extend(np.asarray(batch.record_ids).tolist())
        assert str(info.value).startswith(
            f"MixedRecordSource, record {first_bad} (component 0: {file_source.name}, "
            f"record {record} (record {record} of '{file_source.files[0]}')): "
            "record cannot be read; expected an intact ArrayRecord record, found "
        ), str(info.value)
        # the batches before the bad record's batch were handed out, as read
        assert seen == order[: order.index(first_bad) // 16 * 16]


def test_a_component_record_of_another_shape_is_named_in_the_mix(tmp_path):
    records = [{"v": np.full(3, i, np.int32)} for i in range(6)]
    records[4] = {"v": np.zeros(5, np.int32)}
    path = tmp_path / "ragged.arrayrecord"
    write_array_record(path, records)
    file_source = ArrayRecordSource(ArrayRecordSourceConfig(paths=str(path)))
    memory = MemorySource(MemorySourceConfig(), data={"v": np.full((4, 3), -1, np.int32)})
    mix = MixedSource(
        MixedSourceConfig(weights=(1, 1), window=2, shuffle=False), sources=[file_source, memory]
    )
    # mixed positions 0, 2, 4, ... are the file's records 0, 1, 2, ...: record 4 is position 8
    raws = mix.read_records(np.arange(8))
    assert [(c, i) for c, i, _ in raws] == [(p % 2, p // 2) for p in range(8)]
    together = mix.decode_batch(raws, np.arange(8))
    assert together is not None  # the file's part is decoded in one call
    assert together["v"][:, 0].tolist() == [0, -1, 1, -1, 2, -1, 3, -1]
    with pytest.raises(
        SchemaError,
        match=re.escape(
            f"MixedRecordSource, record 8 (component 0: {file_source.name}, record 4, "
            "field 'v'): record field differs from the source's spec; "
            "expected int32(3,), found int32(5,)"
        ),
    ):
        mix.decode(mix.read_records(np.array([8]))[0], 8)
    batches = list(from_source(mix, 4, bad_records="skip", workers=2))
    assert [np.asarray(b.record_ids)[~b.mask].tolist() for b in batches] == [[], [], [8]]


def test_a_source_field_that_would_overwrite_a_field_is_refused():
    a = MemorySource(MemorySourceConfig(), data={"x": np.arange(4)})
    b = MemorySource(MemorySourceConfig(), data={"x": np.arange(4) + 10})
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "MixedSourceConfig.source_field: source_field would overwrite a field of the "
            "records; expected a name other than the components' fields ['x'], found 'x'"
        ),
    ):
        MixedSource(MixedSourceConfig(weights=(1, 1), window=2, source_field="x"), sources=[a, b])


def test_numpy_weights_mix_like_python_ones():
    a = MemorySource(MemorySourceConfig(), data={"x": np.arange(6)})
    b = MemorySource(MemorySourceConfig(), data={"x": np.arange(6) + 10})
    as_numpy = MixedSource(
        MixedSourceConfig(weights=np.array([2.0, 1.0]), window=3), sources=[a, b]
    )
    as_python = MixedSource(MixedSourceConfig(weights=(2.0, 1.0), window=3), sources=[a, b])
    ids = np.arange(len(as_python))
    assert as_numpy.config.weights == (2.0, 1.0)
    np.testing.assert_array_equal(as_numpy.read(ids)["x"], as_python.read(ids)["x"])
