"""TFDS sources over a tiny dataset prepared once per session (ArrayRecord and TFRecord)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")
pytest.importorskip("tensorflow")

import tfds_builder as tb  # noqa: E402
from tfds_child import NAME, build, digest  # noqa: E402

from datarax import from_source  # noqa: E402
from datarax.core.errors import ConfigError, PipelineBuildError, SourceError  # noqa: E402
from datarax.core.optional import MissingDependencyError  # noqa: E402
from datarax.dag import ShuffleNode  # noqa: E402
from datarax.sources import (  # noqa: E402
    TFDSSource,
    TFDSSourceConfig,
    TFDSStreamingSource,
    TFDSStreamingSourceConfig,
)
from harness import run_child  # noqa: E402

HERE = Path(__file__).parent
N = tb.NUM_RECORDS
SPEC = {
    "image": ((8, 8, 3), np.uint8),
    "index": ((), np.int32),
    "label": ((), np.int32),
    "score": ((), np.float32),
}


@pytest.fixture(scope="session")
def data_dirs(tmp_path_factory) -> dict[str, str]:
    return tb.prepare(str(tmp_path_factory.mktemp("tfds")))


def eager(data_dirs, **config) -> TFDSSource:
    return TFDSSource(TFDSSourceConfig(NAME, data_dir=data_dirs["array_record"], **config))


def streaming(data_dirs, **config) -> TFDSStreamingSource:
    return TFDSStreamingSource(
        TFDSStreamingSourceConfig(NAME, data_dir=data_dirs["tfrecord"], **config)
    )


def expected(index: int, fields=tuple(SPEC)) -> dict[str, np.ndarray]:
    """The generator's record ``index`` as a source returns it (64-bit values narrowed)."""
    return {k: np.asarray(v, SPEC[k][1]) for k, v in tb.record(index).items() if k in fields}


def assert_rows_are_generator_records(batch, fields=tuple(SPEC)) -> None:
    assert sorted(batch) == sorted(fields)
    for k in fields:
        shape, dtype = SPEC[k]
        assert batch[k].dtype == dtype and batch[k].shape[1:] == shape, k
    for row, index in enumerate(np.asarray(batch["index"]).tolist()):
        for k, want in expected(index, fields).items():
            np.testing.assert_array_equal(np.asarray(batch[k][row]), want, err_msg=k)


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("make", [eager, streaming], ids=["eager", "streaming"])
def test_every_record_round_trips_exactly(data_dirs, make):
    src = make(data_dirs)
    assert len(src) == N
    spec = {k: (s.shape, s.dtype) for k, s in src.element_spec().items()}
    assert spec == {k: (shape, np.dtype(dtype)) for k, (shape, dtype) in SPEC.items()}
    records = src.read(np.arange(N))
    assert sorted(records["index"].tolist()) == list(range(N))
    assert_rows_are_generator_records(records)


def test_stream_order_is_the_split_order_and_is_stable(data_dirs):
    # Two shards of 20 records: TFDS's default interleaving would mix them in blocks.
    order = eager(data_dirs).read(np.arange(N))["index"].tolist()
    first = streaming(data_dirs).read(np.arange(N))["index"].tolist()
    again = streaming(data_dirs)
    assert first == order
    assert again.read(np.arange(N))["index"].tolist() == order
    assert again.read(np.arange(5, 9))["index"].tolist() == order[5:9]  # restarts behind


def test_a_stream_starts_at_any_position_of_a_split_expression(data_dirs):
    order = eager(data_dirs).read(np.arange(N))["index"].tolist()
    split = "train[30:]+train[5:15]"  # 10 + 10 records, two shards and two parts
    want = order[30:] + order[5:15]
    src = streaming(data_dirs, split=split)
    assert len(src) == 20
    for start in (0, 3, 10, 11, 19):
        got = [int(r["index"]) for r in src.iterate(start)]
        assert got == want[start:], start
    assert list(src.iterate(20)) == []
    prefix = streaming(data_dirs, split=split, num_records=12)
    assert [int(r["index"]) for r in prefix.iterate(4)] == want[4:12]


def test_columns_select_features(data_dirs):
    for src in (
        eager(data_dirs, columns=["index", "label"]),
        streaming(data_dirs, columns=("index", "label")),
    ):
        assert src.config.columns == ("index", "label")
        assert_rows_are_generator_records(src.read(np.arange(6)), fields=("index", "label"))


def test_a_builder_instance_is_read_like_its_name(data_dirs):
    builder = tb.DataraxTinyImages(data_dir=data_dirs["array_record"])
    src = TFDSSource(TFDSSourceConfig(NAME), builder=builder)
    want = eager(data_dirs).read(np.arange(N))
    got = src.read(np.arange(N))
    assert all(np.array_equal(got[k], want[k]) for k in SPEC)
    stream_builder = tb.DataraxTinyImages(data_dir=data_dirs["tfrecord"])
    stream = TFDSStreamingSource(TFDSStreamingSourceConfig(NAME), builder=stream_builder)
    assert stream.read(np.arange(N))["index"].tolist() == want["index"].tolist()


def test_split_slices_and_num_records(data_dirs):
    order = eager(data_dirs).read(np.arange(N))["index"].tolist()
    assert (
        eager(data_dirs, split="train[10:15]").read(np.arange(5))["index"].tolist() == order[10:15]
    )
    src = streaming(data_dirs, split="train[10:15]")
    assert len(src) == 5 and src.read(np.arange(5))["index"].tolist() == order[10:15]
    prefix = streaming(data_dirs, num_records=7)
    assert len(prefix) == 7 and prefix.read(np.arange(7))["index"].tolist() == order[:7]


def test_sources_pickle_and_read_on(data_dirs):
    src, stream = eager(data_dirs), streaming(data_dirs)
    want = src.read(np.arange(N))["index"].tolist()
    stream.read(np.arange(3))  # a live tf.data stream is open
    src2, stream2 = pickle.loads(pickle.dumps(src)), pickle.loads(pickle.dumps(stream))
    assert src2.read(np.array([7, 2]))["index"].tolist() == [want[7], want[2]]
    assert stream2.read(np.arange(3, 6))["index"].tolist() == want[3:6]
    assert stream.read(np.arange(3, 6))["index"].tolist() == want[3:6]
    assert src2.fingerprint() == src.fingerprint() and stream2.fingerprint() == stream.fingerprint()


def test_fingerprint_names_the_dataset(data_dirs):
    fp = eager(data_dirs, columns=("image", "label")).fingerprint()
    assert fp["type"] == "TFDSSource" and fp["length"] == N
    assert (fp["dataset"], fp["version"], fp["split"], fp["columns"]) == (
        f"{NAME}/1.0.0",
        "1.0.0",
        "train",
        ["image", "label"],
    )
    fp = streaming(data_dirs, split="train[:12]").fingerprint()
    assert (fp["type"], fp["length"], fp["split"], fp["columns"]) == (
        "TFDSStreamingSource",
        12,
        "train[:12]",
        None,
    )


# -- pipelines ------------------------------------------------------------------------------


def epochs_of(pipeline) -> list[list]:
    """The batches of each epoch; checks every record against the generator."""
    epochs: dict[int, list] = {}
    for batch in pipeline:
        data = {k: np.asarray(v) for k, v in batch.data.items()}
        assert_rows_are_generator_records(data)
        epochs.setdefault(int(batch.epoch), []).append(batch)
    return [epochs[e] for e in sorted(epochs)]


@pytest.mark.parametrize("kind", ["eager", "stream"])
def test_each_epoch_is_a_new_permutation(data_dirs, kind):
    order = np.asarray(eager(data_dirs).read(np.arange(N))["index"])
    epochs = epochs_of(build(kind, data_dirs))
    assert len(epochs) == 3
    ids = []
    for batches in epochs:
        epoch_ids = np.concatenate([np.asarray(b.record_ids) for b in batches])
        assert sorted(epoch_ids.tolist()) == list(range(N))
        # The record at source position i is the one the source reads for i.
        got = np.concatenate([np.asarray(b["index"]) for b in batches])
        assert got.tolist() == order[epoch_ids].tolist()
        ids.append(epoch_ids.tolist())
    assert ids[0] != list(range(N))
    assert ids[0] != ids[1] and ids[1] != ids[2] and ids[0] != ids[2]


def test_thread_workers_give_the_same_stream(data_dirs):
    src = eager(data_dirs)
    alone = digest(from_source(src, 8, shuffle=True, seed=3, num_epochs=2))
    pooled = from_source(src, 8, shuffle=True, seed=3, num_epochs=2, workers=2)
    assert digest(pooled) == alone
    stream = streaming(data_dirs)
    alone = digest(from_source(stream, 8) >> ShuffleNode(16, seed=5))
    assert digest(from_source(stream, 8, workers=2) >> ShuffleNode(16, seed=5)) == alone


def test_a_stream_is_not_shuffled_globally(data_dirs):
    with pytest.raises(PipelineBuildError, match="cannot be shuffled globally.*ShuffleNode"):
        from_source(streaming(data_dirs), 8, shuffle=True)


RESUME_AFTER = {"eager": (2, 6, 11), "stream": (3, 12)}  # batches; 5 per epoch


@pytest.fixture(scope="module")
def resumed_in_a_new_process(data_dirs):
    """States saved after k batches, the digests of the rests here and the child's reply."""
    cases, digests = [], []
    for kind, ks in RESUME_AFTER.items():
        it, batches = iter(build(kind, data_dirs)), []
        while True:
            if len(batches) in ks:
                cases.append([kind, it.get_state()])
            try:
                batches.append(next(it))
            except StopIteration:
                break
        digests += [digest(batches[k:]) for k in ks]
    request = {"data_dirs": data_dirs, "cases": cases}
    return digests, run_child(HERE / "tfds_child.py", request)


@pytest.mark.slow
def test_resume_mid_epoch_in_a_new_process(resumed_in_a_new_process):
    digests, reply = resumed_in_a_new_process
    assert len(digests) == 5 and reply["digests"] == digests


def test_importing_datarax_imports_no_tensorflow(resumed_in_a_new_process):
    _, reply = resumed_in_a_new_process
    assert reply["tf_modules_at_import"] == []  # `import datarax, datarax.sources`
    # Random access through TFDS's ArrayRecord data source needs no TensorFlow either.
    assert reply["tensorflow_after_eager"] is False


SMALL = {
    "eager": lambda dirs: build("eager", dirs, split="train[:12]", batch_size=4, num_epochs=2),
    "stream": lambda dirs: build("stream", dirs, split="train[:12]", batch_size=4, num_epochs=2),
}


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_small_pipelines_resume_at_every_step(data_dirs, kind):
    from harness import assert_reset_replays, assert_resumes_at_every_step

    stream = assert_resumes_at_every_step(lambda: SMALL[kind](data_dirs))
    assert len(stream) == 6  # 2 epochs of 3 batches
    assert_reset_replays(lambda: SMALL[kind](data_dirs))


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [eager, streaming], ids=["eager", "streaming"])
def test_unknown_dataset_or_unprepared_data_dir(data_dirs, make, tmp_path):
    name = "no_such_dataset_xyz"
    config_type = TFDSSourceConfig if make is eager else TFDSStreamingSourceConfig
    source_type = TFDSSource if make is eager else TFDSStreamingSource
    with pytest.raises(SourceError, match=rf"dataset '{name}' not found.*{tmp_path}") as err:
        source_type(config_type(name, data_dir=str(tmp_path)))
    assert f"Dataset {name} not found" in str(err.value)
    # A registered dataset that was never prepared in this data dir.
    with pytest.raises(SourceError, match=rf"dataset '{NAME}' is not prepared.*{tmp_path}"):
        source_type(config_type(NAME, data_dir=str(tmp_path)))


@pytest.mark.parametrize("make", [eager, streaming], ids=["eager", "streaming"])
def test_unknown_split(data_dirs, make):
    with pytest.raises(
        SourceError, match=r"unknown split 'validation'.*expected one of \['train'\]"
    ):
        make(data_dirs, split="validation")
    with pytest.raises(SourceError, match=r"unknown split 'train\[50:\]'.*incompatible"):
        make(data_dirs, split="train[50:]")


@pytest.mark.parametrize("make", [eager, streaming], ids=["eager", "streaming"])
def test_empty_split(data_dirs, make):
    with pytest.raises(SourceError, match=r"split 'train\[:0\]' is empty.*found 0 records"):
        make(data_dirs, split="train[:0]")


@pytest.mark.parametrize("make", [eager, streaming], ids=["eager", "streaming"])
def test_missing_column(data_dirs, make):
    with pytest.raises(
        SourceError,
        match=r"no column 'caption'; "
        r"expected one of the dataset's features \['image', 'index', 'label', 'score'\], "
        r"found 'caption'",
    ):
        make(data_dirs, columns=("image", "caption"))


def test_missing_column_after_a_decoder(data_dirs):
    src = eager(data_dirs, columns=("label",))
    with pytest.raises(
        SourceError,
        match=r"record 3: no column 'label'; expected one of the record's fields \['image'\]",
    ):
        src.decode({"image": np.zeros(2)}, 3)


@pytest.mark.parametrize("make", [eager, streaming], ids=["eager", "streaming"])
def test_a_raising_decoder_propagates(data_dirs, make):
    def decoder(record):
        if int(record["index"]) == 7:
            raise ValueError("cannot decode record 7")
        return record

    order = eager(data_dirs).read(np.arange(N))["index"].tolist()
    position = order.index(7)
    source_type = TFDSSource if make is eager else TFDSStreamingSource
    src = source_type(make(data_dirs).config, decoder=decoder)
    assert src.read(np.array([position - 1]))["index"].tolist() == [order[position - 1]]
    with pytest.raises(ValueError, match="cannot decode record 7"):
        src.read(np.array([position]))


def test_formats_each_source_cannot_read(data_dirs):
    with pytest.raises(
        SourceError, match=r"do not allow random access.*found tfrecord files.*TFDSStreamingSource"
    ):
        TFDSSource(TFDSSourceConfig(NAME, data_dir=data_dirs["tfrecord"]))
    with pytest.raises(
        SourceError, match=r"cannot be streamed with tf.data.*found array_record files"
    ):
        TFDSStreamingSource(TFDSStreamingSourceConfig(NAME, data_dir=data_dirs["array_record"]))


def test_builder_and_config_must_agree(data_dirs, tmp_path):
    builder = tb.DataraxTinyImages(data_dir=data_dirs["array_record"])
    with pytest.raises(SourceError, match=r"builder is for another dataset.*a builder of 'mnist'"):
        TFDSSource(TFDSSourceConfig("mnist"), builder=builder)
    with pytest.raises(SourceError, match=r"data_dir is not the builder's"):
        TFDSSource(TFDSSourceConfig(NAME, data_dir=str(tmp_path)), builder=builder)
    with pytest.raises(SourceError, match=r"num_records exceeds the split's size.*at most 40"):
        streaming(data_dirs, num_records=41)


def test_configs_are_validated():
    for bad, message in [
        (lambda: TFDSSourceConfig(""), r"TFDSSourceConfig.name: must be a non-empty string"),
        (lambda: TFDSSourceConfig("x", split=None), r"TFDSSourceConfig.split"),
        (lambda: TFDSSourceConfig("x", columns="image"), r"columns: must be distinct"),
        (lambda: TFDSSourceConfig("x", columns=("a", "a")), r"columns: must be distinct"),
        (lambda: TFDSSourceConfig("x", data_dir=3), r"data_dir: must be a path string"),
        (lambda: TFDSStreamingSourceConfig("x", num_records=0), r"num_records: must be a positive"),
    ]:
        with pytest.raises(ConfigError, match=message):
            bad()
    with pytest.raises(ConfigError, match="wrong config type"):
        TFDSSource(TFDSStreamingSourceConfig("x"))


def test_missing_packages_name_the_extra(data_dirs, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingDependencyError, match=r"TFDSStreamingSource.*datarax\[tensorflow\]"):
        streaming(data_dirs)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(MissingDependencyError, match=r"datarax\[tfds\]"):
        eager(data_dirs)
