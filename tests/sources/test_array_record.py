"""ArrayRecordSource and write_array_record: round trips, pipelines, resume, bad files."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordWriter
from array_record_child import BATCH_SIZE, EPOCHS, digest, pipeline

from datarax import from_source
from datarax.core.errors import ConfigError, DataraxError, SchemaError, SourceError
from datarax.core.optional import MissingDependencyError, require
from datarax.sources import ArrayRecordSource, ArrayRecordSourceConfig, write_array_record
from datarax.sources.codec import decode_record, encode_record
from datarax.sources.record import SequenceSource
from harness import run_child

HERE = Path(__file__).parent
N = 22  # records of the shared dataset: batches of 6 leave a short last batch


def make_records(n: int = N, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "image": rng.integers(0, 256, (4, 5, 3), dtype=np.uint8),
            "label": np.array([i], np.int32),
            "vec": rng.normal(size=3).astype(np.float32),
        }
        for i in range(n)
    ]


def open_source(paths, **options) -> ArrayRecordSource:
    return ArrayRecordSource(ArrayRecordSourceConfig(paths=paths, **options))


def assert_records_equal(got: dict[str, np.ndarray], want: list[dict], ids) -> None:
    """Every field of row r of ``got`` equals record ``ids[r]`` of ``want`` bit for bit."""
    assert sorted(got) == sorted(want[0])
    for field, values in got.items():
        expected = np.stack([want[i][field] for i in ids])
        assert values.dtype == expected.dtype and values.shape == expected.shape, field
        assert values.tobytes() == expected.tobytes(), field


@pytest.fixture
def dataset(tmp_path) -> tuple[str, list[dict]]:
    records = make_records()
    path = str(tmp_path / "train.arrayrecord")
    assert write_array_record(path, records, compress=["image"]) == N
    return path, records


def raises(cls, *parts: str):
    """``pytest.raises`` requiring every part, literally and in order, in the message."""
    return pytest.raises(cls, match=".*".join(re.escape(p) for p in parts))


# -- round trips -------------------------------------------------------------------------


def test_round_trip_is_bit_exact_for_raw_and_compressed_fields(dataset):
    path, records = dataset
    source = open_source(path)
    assert len(source) == N and source.files == (path,)
    ids = np.random.default_rng(1).permutation(N)
    assert_records_equal(source.read(ids), records, ids)
    raw = source.read_records(np.array([3]))[0]
    header = raw[: raw.index(b"}]}") + 3].decode(errors="replace")
    assert '"name":"image","dtype":"|u1","shape":[4,5,3]' in header
    assert re.search(r'"name":"image"[^}]*"codec":"zlib"', header)
    assert re.search(r'"name":"label"[^}]*"codec":"raw"', header)
    assert re.search(r'"name":"vec"[^}]*"codec":"raw"', header)


def test_scalar_fields_keep_their_shape(tmp_path):
    path = tmp_path / "scalars.arrayrecord"
    write_array_record(path, [{"label": np.int32(i), "score": np.float32(i / 2)} for i in range(3)])
    got = open_source(path).read(np.arange(3))
    assert got["label"].shape == (3,) and got["label"].tolist() == [0, 1, 2]
    assert got["score"].shape == (3,) and got["score"].tolist() == [0.0, 0.5, 1.0]


def test_dict_of_columns_is_written_row_by_row(tmp_path):
    records = make_records(7)
    columns = {k: np.stack([r[k] for r in records]) for k in records[0]}
    path = tmp_path / "columns.arrayrecord"  # a path-like works too
    assert write_array_record(path, columns, compress=["vec"]) == 7
    source = open_source(path)
    assert_records_equal(source.read(np.arange(7)), records, range(7))
    assert source[5]["label"].tolist() == [5]


def test_several_files_by_glob_in_sorted_order_and_by_list_in_given_order(tmp_path):
    records = make_records(20)
    parts = {"b": records[7:12], "a": records[:7], "c": records[12:]}  # sizes 5, 7, 8
    for key, part in parts.items():
        write_array_record(tmp_path / f"part-{key}.arrayrecord", part)
    source = open_source(str(tmp_path / "part-*.arrayrecord"))
    assert [Path(f).name for f in source.files] == [
        "part-a.arrayrecord",
        "part-b.arrayrecord",
        "part-c.arrayrecord",
    ]
    ids = np.random.default_rng(2).permutation(20)
    assert_records_equal(source.read(ids), records, ids)

    listed = open_source([tmp_path / "part-c.arrayrecord", str(tmp_path / "part-a.arrayrecord")])
    order = records[12:] + records[:7]
    assert len(listed) == 15
    assert_records_equal(listed.read(np.array([14, 0, 8, 7])), order, [14, 0, 8, 7])


def test_shuffled_epochs_are_permutations_of_the_written_records(dataset):
    path, records = dataset
    epochs: dict[int, list[int]] = {}
    for batch in from_source(open_source(path), 6, shuffle=True, seed=3, num_epochs=3):
        ids = np.asarray(batch.record_ids).tolist()
        epochs.setdefault(int(batch.epoch), []).extend(ids)
        data = {k: np.asarray(v) for k, v in batch.data.items()}
        assert_records_equal(data, records, ids)
    assert sorted(epochs) == [0, 1, 2]
    for ids in epochs.values():
        assert sorted(ids) == list(range(N))
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2] and epochs[0] != epochs[2]


def test_concurrent_readers_of_one_source_read_the_same_records(dataset):
    path, records = dataset
    source = open_source(path)  # no reader open yet: the threads race to open it
    batches = [np.random.default_rng(s).integers(0, N, 8) for s in range(24)]
    results: dict[int, dict] = {}

    def work(k: int) -> None:
        for j in range(k, len(batches), 4):
            results[j] = source.read(batches[j])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for j, ids in enumerate(batches):
        assert_records_equal(results[j], records, ids.tolist())


def test_pickled_source_reads_the_same_records(dataset):
    path, records = dataset
    source = open_source(path)
    ids = np.array([5, 0, 21, 5])
    before = source.read(ids)  # readers are open now
    clone = pickle.loads(pickle.dumps(source))
    assert clone.name == source.name and len(clone) == N
    after = clone.read(ids)
    assert {k: v.tobytes() for k, v in after.items()} == {k: v.tobytes() for k, v in before.items()}
    assert_records_equal(after, records, ids.tolist())
    assert clone.fingerprint() == source.fingerprint()


def test_fingerprint_names_files_by_base_name_and_size(dataset, tmp_path):
    path, _ = dataset
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(path, moved / "train.arrayrecord")
    fingerprint = open_source(path).fingerprint()
    assert fingerprint["files"] == [["train.arrayrecord", os.path.getsize(path)]]
    assert fingerprint["length"] == N and fingerprint["type"] == "ArrayRecordSource"
    assert fingerprint["spec"]["image"] == [[4, 5, 3], "uint8"]
    assert open_source(str(moved / "train.arrayrecord")).fingerprint() == fingerprint


# -- resume ------------------------------------------------------------------------------


def test_mid_epoch_state_resumes_in_a_new_process(dataset):
    path, _ = dataset
    full = list(pipeline(path))
    assert len(full) == EPOCHS * -(-N // BATCH_SIZE)
    ks = (2, 6)  # mid-epoch in epochs 0 and 1
    states = []
    for k in ks:
        it = iter(pipeline(path))
        for _ in range(k):
            next(it)
        states.append(it.get_state())
    request = {"path": path, "states": states}
    assert run_child(HERE / "array_record_child.py", request) == [digest(full[k:]) for k in ks]


def test_resumes_at_every_step(tmp_path):
    from harness import assert_resumes_at_every_step

    path = tmp_path / "small.arrayrecord"
    write_array_record(path, make_records(9), compress=["image"])

    def make():
        return from_source(open_source(path), 4, shuffle=True, seed=5, num_epochs=2)

    assert len(assert_resumes_at_every_step(make)) == 6


# -- bad files and records ---------------------------------------------------------------


def test_missing_file_and_unmatched_glob_name_the_path(tmp_path):
    missing = str(tmp_path / "missing.arrayrecord")
    with raises(SourceError, "the file does not exist", f"an ArrayRecord file at '{missing}'"):
        open_source(missing)
    pattern = str(tmp_path / "shard-*.arrayrecord")
    with raises(SourceError, "no file matches the pattern", f"matching '{pattern}'", "no match"):
        open_source(pattern)
    with raises(SourceError, "the file does not exist", "found a folder"):
        open_source(str(tmp_path))


def test_truncated_file_is_named_when_opened(dataset):
    path, _ = dataset
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    source = open_source(path)  # files open on first use
    with raises(
        SourceError,
        f"file '{path}': file is not a readable ArrayRecord file",
        "expected an intact ArrayRecord file, found",
    ):
        len(source)


def test_file_of_random_bytes_is_named_when_opened(tmp_path):
    path = tmp_path / "noise.arrayrecord"
    path.write_bytes(np.random.default_rng(0).bytes(70_000))
    with raises(
        SourceError,
        f"file '{path}': file is not a readable ArrayRecord file",
        "expected an intact ArrayRecord file, found Corrupted",
    ):
        open_source(path).read(np.array([0]))
    small = tmp_path / "small.arrayrecord"
    small.write_bytes(b"not an array record file")
    with raises(SourceError, f"file '{small}'", "found ArrayRecord file should be at least 64KB"):
        len(open_source(small))


def test_damaged_record_is_named_when_read(tmp_path):
    path = tmp_path / "damaged.arrayrecord"
    rng = np.random.default_rng(0)
    write_array_record(path, [{"noise": rng.integers(0, 256, 1000, np.uint8)} for _ in range(200)])
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 200] = rng.bytes(200)
    path.write_bytes(bytes(data))
    source = open_source(path)
    with pytest.raises(SourceError) as info:
        source.read(np.arange(200))
    message = str(info.value)
    found = re.search(rf"record (\d+) \(record (\d+) of '{re.escape(str(path))}'\)", message)
    assert found and found[1] == found[2], message
    assert "record cannot be read; expected an intact ArrayRecord record, found" in message
    bad = int(found[1])
    assert 0 < bad < 199
    with raises(SourceError, f"record {bad} "):
        source.read(np.array([bad]))
    assert source.read(np.array([0]))["noise"].shape == (1, 1000)


def test_record_in_another_encoding_is_named(tmp_path):
    path = str(tmp_path / "mixed.arrayrecord")
    writer = ArrayRecordWriter(path, "group_size:1")
    for i in range(5):
        writer.write(b"raw bytes, not datarax" if i == 3 else encode_record({"x": np.arange(2)}))
    writer.close()
    source = open_source(path)
    name = source.name
    assert name == "ArrayRecordSource[mixed.arrayrecord]"
    with raises(
        SourceError,
        f"{name}, record 3: record is not in the datarax encoding; expected the magic bytes "
        "b'DRX1', found b'raw '. Pass decoder= to read records written another way",
    ):
        source.read(np.array([0, 3]))
    with raises(SourceError, f"{name}, record 9: record is too short"):
        source.decode(b"DR", 9)


def test_failing_decoder_error_names_the_record(dataset):
    path, _ = dataset

    def picky(raw: bytes) -> dict:
        record = decode_record(raw)
        if int(record["label"][0]) == 4:
            raise ValueError("label 4 is not allowed")
        return record

    source = ArrayRecordSource(ArrayRecordSourceConfig(paths=path), decoder=picky, name="picky")
    with raises(
        SourceError,
        "picky, record 4: the decoder failed; expected ",
        "picky to return a dict of arrays, found ValueError: label 4 is not allowed",
    ) as info:
        source.read(np.array([1, 4, 2]))
    assert isinstance(info.value.__cause__, ValueError)
    raw = source.read_records(np.array([4]))[0]
    with raises(SourceError, "picky, record 17: the decoder failed"):
        source.decode(raw, 17)
    assert source.decode(source.read_records(np.array([5]))[0], 5)["label"].tolist() == [5]


def test_record_with_another_shape_is_named_with_its_field(tmp_path):
    records = make_records(10)
    records[7]["image"] = np.zeros((5, 5, 3), np.uint8)
    path = tmp_path / "ragged.arrayrecord"
    write_array_record(path, records)
    source = open_source(path)
    assert_records_equal(source.read(np.arange(7)), records, range(7))
    with raises(
        SchemaError,
        f"{source.name}, record 7, field 'image': record field differs from the source's spec; "
        "expected uint8(4, 5, 3), found uint8(5, 5, 3)",
    ):
        source.read(np.array([6, 7, 8]))


def test_empty_file_is_an_empty_source(tmp_path):
    path = tmp_path / "empty.arrayrecord"
    assert write_array_record(path, []) == 0
    source = open_source(path)
    assert len(source) == 0
    with raises(SourceError, "the source is empty; expected at least one record, found 0 records"):
        source.element_spec()
    with raises(SourceError, "the source is empty", str(path)):
        source.read(np.array([0]))


def test_index_out_of_range(dataset):
    path, _ = dataset
    source = open_source(path)
    for index in (N, -1):
        with raises(SourceError, f"record index out of range; expected indices in [0, {N})"):
            source.read_records(np.array([0, index]))


def test_bad_configs_are_refused():
    with raises(ConfigError, "ArrayRecordSourceConfig.paths: no files given"):
        ArrayRecordSourceConfig(paths=[])
    with raises(ConfigError, "ArrayRecordSourceConfig.paths: no files given"):
        ArrayRecordSourceConfig(paths=3)  # type: ignore[arg-type]
    with raises(ConfigError, "entry 1 is not a path; expected a non-empty str or path-like"):
        ArrayRecordSourceConfig(paths=["a", ""])
    with raises(ConfigError, "reader_options: unknown or incomplete reader option", "'nope:1'"):
        ArrayRecordSourceConfig(paths="a", reader_options="readahead_buffer_size:0,nope:1")
    with raises(ConfigError, "reader_options: reader options are not a string"):
        ArrayRecordSourceConfig(paths="a", reader_options=None)  # type: ignore[arg-type]


def test_reader_options_refused_by_array_record_name_the_file(dataset):
    path, records = dataset
    source = open_source(path, reader_options="readahead_buffer_size:many")
    with raises(ConfigError, f"file '{path}': ArrayRecord refuses the reader options"):
        len(source)
    fast = open_source(path, reader_options="readahead_buffer_size:0,max_parallelism:0")
    assert_records_equal(fast.read(np.array([2, 1])), records, [2, 1])


# -- writing -----------------------------------------------------------------------------


def test_write_failure_leaves_no_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "data.arrayrecord"
    records = make_records(5)
    bad = [*records[:3], {"image": np.array(["text"], dtype=object)}]
    with raises(SourceError, f"write_array_record('{path}'), record 3, field 'image'"):
        write_array_record(path, bad)
    assert list(tmp_path.iterdir()) == []
    write_array_record(path, records)
    size = path.stat().st_size
    with raises(SourceError, "record 2: record is not a dict"):
        write_array_record(path, [*records[:2], "oops"])
    assert [p.name for p in tmp_path.iterdir()] == ["data.arrayrecord"]
    assert path.stat().st_size == size
    assert_records_equal(open_source(path).read(np.arange(5)), records, range(5))


def test_write_errors(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    with raises(SourceError, "the folder does not exist", f"'{missing}'"):
        write_array_record(missing / "x.arrayrecord", make_records(2))
    with raises(SourceError, "columns do not share one record axis", "'b': (2,)"):
        write_array_record(tmp_path / "x.arrayrecord", {"a": np.zeros(3), "b": np.zeros(2)})
    with raises(ConfigError, "ArrayRecord refuses the writer options", "'group_size:0'"):
        write_array_record(tmp_path / "x.arrayrecord", make_records(2), options="group_size:0")
    with raises(SourceError, "fields to compress are not in the record", "['nope']"):
        write_array_record(tmp_path / "x.arrayrecord", make_records(2), compress=["nope"])
    assert list(tmp_path.iterdir()) == []


# -- optional dependency -----------------------------------------------------------------


def test_require_names_the_extra_for_a_missing_module():
    assert require("json", "none", "JSON") is json
    with pytest.raises(MissingDependencyError) as info:
        require("datarax_no_such_module", "array-record", "ArrayRecordSource")
    error = info.value
    assert isinstance(error, ImportError) and isinstance(error, DataraxError)
    assert str(error).startswith("ArrayRecordSource: a package it needs is not installed")
    assert "install datarax[array-record]" in str(error)
    assert isinstance(error.__cause__, ModuleNotFoundError)
    assert pickle.loads(pickle.dumps(error)).hint == error.hint


def test_missing_array_record_package_names_the_extra(dataset, monkeypatch):
    path, _ = dataset
    monkeypatch.setitem(sys.modules, "array_record.python.array_record_module", None)
    with raises(MissingDependencyError, "ArrayRecordSource:", "install datarax[array-record]"):
        open_source(path)
    with raises(MissingDependencyError, "write_array_record:", "install datarax[array-record]"):
        write_array_record(path, make_records(1))


# -- Grain -------------------------------------------------------------------------------


def test_grain_reads_files_written_here_and_streams_match(dataset):
    grain = pytest.importorskip("grain")
    path, records = dataset
    grain_source = grain.sources.ArrayRecordDataSource(path)
    assert len(grain_source) == N
    assert_records_equal(
        {k: np.stack([decode_record(grain_source[i])[k] for i in range(N)]) for k in records[0]},
        records,
        range(N),
    )
    ours = from_source(open_source(path), 5, shuffle=True, seed=8, num_epochs=2)
    theirs = from_source(
        SequenceSource(grain_source, decoder=decode_record), 5, shuffle=True, seed=8, num_epochs=2
    )
    assert digest(ours) == digest(theirs)
