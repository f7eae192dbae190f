"""HFSource and HFStreamingSource over datasets built locally (no hub)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import json  # noqa: E402
import pickle  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hf_child import (  # noqa: E402
    BATCH_SIZE,
    EAGER,
    EPOCHS,
    FEATURES,
    STREAMING,
    N,
    columns,
    digest,
    load,
    pipeline,
    source,
    write_files,
)

from datarax import from_source  # noqa: E402
from datarax.core.errors import (  # noqa: E402
    ConfigError,
    PipelineBuildError,
    SchemaError,
    SourceError,
)
from datarax.core.optional import MissingDependencyError  # noqa: E402
from datarax.sources import (  # noqa: E402
    HFSource,
    HFSourceConfig,
    HFStreamingSource,
    HFStreamingSourceConfig,
)
from harness import run_child  # noqa: E402

HERE = Path(__file__).parent
needs_x32 = pytest.mark.skipif(jax.config.jax_enable_x64, reason="narrowing only without x64")
BATCHES_PER_EPOCH = -(-N // BATCH_SIZE)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hf")
    write_files(path)
    return path


def raises(cls, *parts: str):
    """``pytest.raises`` matching every part of the message, in order."""
    return pytest.raises(cls, match=".*".join(re.escape(p) for p in parts))


def assert_written(batch_or_fields, ids) -> None:
    """Every field of the records at ``ids`` equals what was written, in its dtype."""
    written = columns()
    ids = np.asarray(ids)
    np.testing.assert_array_equal(np.asarray(batch_or_fields["image"]), written["image"][ids])
    np.testing.assert_array_equal(np.asarray(batch_or_fields["label"]), ids)
    np.testing.assert_array_equal(
        np.asarray(batch_or_fields["score"]), written["score"][ids].astype(np.float32)
    )


def epochs_of(batches) -> dict[int, list]:
    out: dict[int, list] = {}
    for batch in batches:
        ids = np.asarray(batch.record_ids)
        assert_written(batch, ids)
        out.setdefault(int(batch.epoch), []).extend(ids.tolist())
    return out


# -- reading ---------------------------------------------------------------------------


@needs_x32
@pytest.mark.parametrize("kind", EAGER + STREAMING)
def test_every_field_of_every_record_round_trips(root, kind):
    src = source(kind, root)
    assert len(src) == N
    assert src.element_spec() == {
        "image": jax.ShapeDtypeStruct((4, 5, 3), np.uint8),
        "label": jax.ShapeDtypeStruct((), np.int32),
        "score": jax.ShapeDtypeStruct((), np.float32),
    }
    order = np.arange(N) if kind in STREAMING else np.random.default_rng(1).permutation(N)
    fields = src.read(order)
    assert {k: v.dtype for k, v in fields.items()} == {
        "image": np.uint8,
        "label": np.int32,
        "score": np.float32,
    }
    assert_written(fields, order)


def test_eager_reads_follow_chunks_and_index_mappings(root):
    saved = load("disk", root)
    assert saved.data.table.column("image").num_chunks == 3
    remapped = saved.shuffle(seed=4).select(range(5, 25))  # an index mapping over chunks
    ids = np.asarray(remapped["label"])
    src = HFSource(HFSourceConfig(), dataset=remapped)
    assert len(src) == 20
    order = np.array([19, 0, 7, 7, 3])
    assert_written(src.read(order), ids[order])
    assert_written(src[4], ids[4])


def test_columns_select_and_order_fields(root):
    src = source("disk", root, columns=("score", "label"))
    assert list(src.element_spec()) == ["score", "label"]
    assert list(src.read(np.array([1]))) == ["score", "label"]
    streaming = source("parquet-stream", root, columns=("label",))
    assert streaming.read(np.array([3, 4]))["label"].tolist() == [3, 4]
    assert list(streaming.element_spec()) == ["label"]


def test_dataset_dict_split_and_other_feature_kinds(root):
    n = 4
    features = datasets.Features(
        {
            "seq": datasets.Sequence(datasets.Value("float32"), length=3),
            "grid": datasets.Array2D((2, 2), "int16"),
            "cls": datasets.ClassLabel(names=["a", "b"]),
            "flag": datasets.Value("bool"),
            "half": datasets.Value("float16"),
        }
    )
    data = {
        "seq": np.arange(n * 3, dtype=np.float32).reshape(n, 3),
        "grid": np.arange(n * 4, dtype=np.int16).reshape(n, 2, 2),
        "cls": [0, 1, 1, 0],
        "flag": [True, False, True, True],
        "half": np.array([0.5, 1.5, 2.5, 3.5], np.float16),
    }
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict(data, features=features)})
    src = HFSource(HFSourceConfig(split="train"), dataset=splits)
    assert {k: (s.shape, np.dtype(s.dtype)) for k, s in src.element_spec().items()} == {
        "seq": ((3,), np.float32),
        "grid": ((2, 2), np.int16),
        "cls": ((), np.int32 if not jax.config.jax_enable_x64 else np.int64),
        "flag": ((), np.bool_),
        "half": ((), np.float16),
    }
    fields = src.read(np.array([3, 1]))
    np.testing.assert_array_equal(fields["seq"], data["seq"][[3, 1]])
    np.testing.assert_array_equal(fields["grid"], data["grid"][[3, 1]])
    assert fields["cls"].tolist() == [0, 1]
    assert fields["flag"].tolist() == [True, False]
    assert fields["half"].tolist() == [3.5, 1.5]


@needs_x32
def test_json_without_features_reads_equal_length_lists_as_arrays(root):
    dataset = datasets.load_dataset(
        "json", data_files=str(root / "data.jsonl"), split="train", cache_dir=str(root / "c2")
    )
    src = HFSource(HFSourceConfig(columns=("image",)), dataset=dataset)
    assert src.element_spec()["image"] == jax.ShapeDtypeStruct((4, 5, 3), np.int32)
    np.testing.assert_array_equal(src.read(np.array([2]))["image"], columns()["image"][[2]])
    stream = datasets.load_dataset(
        "json", data_files=str(root / "data.jsonl"), split="train", streaming=True
    )
    src = HFStreamingSource(HFStreamingSourceConfig(columns=("image",)), dataset=stream)
    np.testing.assert_array_equal(src.read(np.array([0, 5]))["image"], columns()["image"][[0, 5]])


def test_streaming_decoder_receives_numpy_records_and_restarts_exactly(root):
    seen = []

    def decoder(record):
        seen.append({k: (type(v).__name__, getattr(v, "dtype", None)) for k, v in record.items()})
        return {"pixels": record["image"].astype(np.float32) / 255.0, "label": record["label"]}

    stream = load("parquet-stream", root)
    src = HFStreamingSource(HFStreamingSourceConfig(num_records=N), dataset=stream, decoder=decoder)
    assert len(src) == N
    first = src.read(np.array([5, 6, 7]))
    again = src.read(np.array([2, 9]))  # behind the stream: it restarts at record 2
    np.testing.assert_array_equal(first["label"], [5, 6, 7])
    np.testing.assert_array_equal(again["label"], [2, 9])
    np.testing.assert_allclose(again["pixels"], columns()["image"][[2, 9]] / np.float32(255.0))
    assert seen[0] == {
        "image": ("ndarray", np.uint8),
        "label": ("int64", np.int64),
        "score": ("float64", np.float64),
    }
    assert [list(src.iterate(27))[i]["label"] for i in range(3)] == [27, 28, 29]


def test_sources_survive_pickling(root):
    eager = source("disk", root)
    copy = pickle.loads(pickle.dumps(eager))
    assert_written(copy.read(np.array([29, 0, 15])), [29, 0, 15])
    assert copy.fingerprint() == eager.fingerprint()
    streaming = source("parquet-stream", root)
    streaming.read(np.array([4, 5]))  # a stream is open: it does not travel
    copy = pickle.loads(pickle.dumps(streaming))
    assert_written(copy.read(np.array([1, 2])), [1, 2])
    assert copy.fingerprint() == streaming.fingerprint()


def test_fingerprints_name_dataset_columns_and_length(root):
    dataset = load("disk", root)
    fingerprint = source("disk", root).fingerprint()
    assert fingerprint["dataset"] == dataset._fingerprint
    assert fingerprint["columns"] == ["image", "label", "score"]
    assert fingerprint["length"] == N
    assert source("disk", root, columns=("label",)).fingerprint()["columns"] == ["label"]
    other = HFSource(HFSourceConfig(), dataset=dataset.select(range(5)))
    assert other.fingerprint()["dataset"] != dataset._fingerprint
    streaming = source("parquet-stream", root).fingerprint()
    assert streaming["length"] == N and streaming["columns"] == ["image", "label", "score"]
    assert streaming["dataset"]["builder"] == "parquet" and streaming["dataset"]["split"] == "train"
    assert json.loads(json.dumps(streaming)) == streaming


# -- pipelines -------------------------------------------------------------------------


def test_eager_shuffle_is_a_fresh_permutation_every_epoch(root):
    epochs = epochs_of(pipeline("disk", root))
    assert sorted(epochs) == [0, 1, 2]
    for ids in epochs.values():
        assert sorted(ids) == list(range(N))
    orders = [tuple(ids) for ids in epochs.values()]
    assert len(set(orders)) == EPOCHS and tuple(range(N)) not in orders


@pytest.mark.parametrize("kind", ["parquet-stream", "disk-stream"])
def test_streaming_window_shuffle_differs_every_epoch(root, kind):
    epochs = epochs_of(pipeline(kind, root))
    assert sorted(epochs) == [0, 1, 2]
    for ids in epochs.values():
        assert sorted(ids) == list(range(N))
    orders = [tuple(ids) for ids in epochs.values()]
    assert len(set(orders)) == EPOCHS and tuple(range(N)) not in orders


def test_streaming_source_cannot_be_shuffled_globally(root):
    with raises(PipelineBuildError, "cannot be shuffled globally", "ShuffleNode"):
        from_source(source("parquet-stream", root), 4, shuffle=True)


@pytest.mark.slow
def test_mid_epoch_state_resumes_in_a_new_process(root):
    ks = (2, BATCHES_PER_EPOCH + 1)  # mid-epoch in epochs 0 and 1
    kinds = ("disk", "json", "parquet-stream")
    requests, expected = [], []
    for kind in kinds:
        full = list(pipeline(kind, root))
        assert len(full) == EPOCHS * BATCHES_PER_EPOCH
        states = []
        for k in ks:
            it = iter(pipeline(kind, root))
            for _ in range(k):
                next(it)
            states.append(it.get_state())
        requests.append({"kind": kind, "states": states})
        expected.append([digest(full[k:]) for k in ks])
    request = {"root": str(root), "requests": requests}
    assert run_child(HERE / "hf_child.py", request, timeout=180) == expected


@pytest.mark.parametrize("kind", ["memory", "parquet-stream"])
def test_resumes_at_every_step(root, kind):
    from harness import assert_resumes_at_every_step

    steps = assert_resumes_at_every_step(lambda: pipeline(kind, root, n_epochs=2, batch_size=12))
    assert len(steps) == 2 * 3


# -- bad input -------------------------------------------------------------------------


def test_missing_column_is_named_with_the_available_ones(root):
    available = "one of the dataset's columns ['image', 'label', 'score'], found 'labels'"
    with raises(SourceError, "HFSource: no column 'labels'", available):
        source("disk", root, columns=("label", "labels"))
    with raises(SourceError, "HFStreamingSource: no column 'labels'", available):
        source("parquet-stream", root, columns=("labels",))


def test_missing_column_of_a_stream_without_known_columns_is_named_when_read():
    def rows():
        for i in range(3):
            yield {"x": float(i)}

    stream = datasets.IterableDataset.from_generator(rows)
    assert stream.column_names is None
    src = HFStreamingSource(HFStreamingSourceConfig(columns=("y",)), dataset=stream)
    with raises(SourceError, "HFStreamingSource: no column 'y'", "columns ['x'], found 'y'"):
        src.read(np.array([0]))


def test_empty_dataset_is_an_empty_source(root):
    empty = datasets.Dataset.from_dict({k: [] for k in FEATURES}, features=FEATURES)
    with raises(SourceError, "HFSource: the source is empty; expected at least one record"):
        HFSource(HFSourceConfig(), dataset=empty)
    stream = datasets.IterableDataset.from_generator(lambda: iter(()), features=FEATURES)
    src = HFStreamingSource(HFStreamingSourceConfig(), dataset=stream)
    assert len(src) == 0
    with raises(SourceError, "HFStreamingSource: the source is empty"):
        src.element_spec()


def test_string_and_variable_length_columns_name_the_column():
    dataset = datasets.Dataset.from_dict(
        {"x": [1.0, 2.0], "text": ["a", "b"], "tokens": [[1, 2, 3], [4]]}
    )
    with raises(SchemaError, "HFSource: column 'text' does not hold numbers", "Value('string')"):
        HFSource(HFSourceConfig(), dataset=dataset)
    with raises(SchemaError, "Leave 'text' out with columns=('x', 'tokens')"):
        HFSource(HFSourceConfig(columns=("x", "text", "tokens")), dataset=dataset)
    with raises(SchemaError, "column 'tokens' holds lists of different lengths", "columns=("):
        HFSource(HFSourceConfig(columns=("tokens",)), dataset=dataset)
    with raises(SchemaError, "HFStreamingSource: column 'text' does not hold numbers"):
        HFStreamingSource(HFStreamingSourceConfig(), dataset=dataset.to_iterable_dataset())
    src = HFSource(HFSourceConfig(columns=("x",)), dataset=dataset)
    assert src.read(np.array([1]))["x"].tolist() == [2.0]
    decoded = HFStreamingSource(
        HFStreamingSourceConfig(columns=("text",)),
        dataset=dataset.to_iterable_dataset(),
        decoder=lambda r: {"code": np.uint8(ord(r["text"]))},
    )
    assert decoded.read(np.array([0, 1]))["code"].tolist() == [97, 98]


def test_streamed_record_of_another_shape_names_the_record_and_field():
    values = [[0.0, 1.0]] * 5 + [[0.0, 1.0, 2.0]] + [[0.0, 1.0]] * 2
    stream = datasets.Dataset.from_dict({"v": values}).to_iterable_dataset()
    src = HFStreamingSource(HFStreamingSourceConfig(), dataset=stream)
    assert src.element_spec()["v"].shape == (2,)
    assert src.read(np.arange(5))["v"].shape == (5, 2)
    with raises(
        SchemaError,
        "HFStreamingSource, record 5, field 'v': record field differs from the source's spec",
        "expected float32(2,), found float32(3,)",
    ):
        src.read(np.arange(4, 8))


@needs_x32
def test_64_bit_integers_outside_32_bits_name_the_record():
    dataset = datasets.Dataset.from_dict({"big": [1, 2, 2**40]})
    src = HFSource(HFSourceConfig(), dataset=dataset)
    assert src.read(np.array([1, 0]))["big"].tolist() == [2, 1]
    with raises(
        SourceError, "HFSource, field 'big', record 2: 64-bit integers do not fit in 32 bits"
    ):
        src.read(np.array([0, 2]))


def test_wrong_kinds_of_dataset_are_refused(root):
    splits = datasets.DatasetDict({"train": load("memory", root), "test": load("memory", root)})
    with raises(SourceError, "several splits", "one of ['test', 'train'], found split=None"):
        HFSource(HFSourceConfig(), dataset=splits)
    with raises(SourceError, "no such split", "found 'valid'"):
        HFSource(HFSourceConfig(split="valid"), dataset=splits)
    with raises(SourceError, "the dataset is another split", "expected split 'test'"):
        HFSource(HFSourceConfig(split="test"), dataset=load("parquet", root))
    with raises(SourceError, "expected a datasets.Dataset, found IterableDataset"):
        HFSource(HFSourceConfig(), dataset=load("parquet-stream", root))
    with raises(SourceError, "expected a datasets.IterableDataset, found Dataset"):
        HFStreamingSource(HFStreamingSourceConfig(), dataset=load("memory", root))
    transformed = load("memory", root).with_transform(lambda batch: batch)
    with raises(SourceError, "the dataset has a format transform", "dataset.map"):
        HFSource(HFSourceConfig(), dataset=transformed)
    with raises(SourceError, "record index out of range", "expected indices in [0, 30)"):
        source("memory", root).read(np.array([0, 30]))


def test_stream_shorter_than_num_records_is_named(root):
    src = source("parquet-stream", root, num_records=N + 2)
    with raises(SourceError, f"record {N}: the stream ended early"):
        src.read(np.arange(N + 2))


def test_stream_size_comes_from_the_split_info_unless_given():
    rows = datasets.IterableDataset.from_generator(lambda: ({"x": float(i)} for i in range(3)))
    split = datasets.SplitInfo("train", num_examples=7)  # the info of a larger split
    info = datasets.DatasetInfo(splits=datasets.SplitDict({"train": split}))
    stream = datasets.IterableDataset(rows._ex_iterable, info=info, split=datasets.Split.TRAIN)
    assert len(HFStreamingSource(HFStreamingSourceConfig(), dataset=stream)) == 7
    src = HFStreamingSource(HFStreamingSourceConfig(num_records=3), dataset=stream)
    assert len(src) == 3 and src.read(np.arange(3))["x"].tolist() == [0.0, 1.0, 2.0]
    assert len(HFStreamingSource(HFStreamingSourceConfig(), dataset=rows)) == 3  # counted


def test_bad_configs_are_refused():
    for bad in ("label", (), ("a", "a"), ("a", 1)):
        with raises(ConfigError, "HFSourceConfig.columns: must be distinct names"):
            HFSourceConfig(columns=bad)  # type: ignore[arg-type]
    assert HFSourceConfig(columns=["label"]).columns == ("label",)  # type: ignore[arg-type]
    with raises(ConfigError, "HFSourceConfig.split"):
        HFSourceConfig(split="")
    with raises(ConfigError, "HFStreamingSourceConfig.num_records: must be a positive integer"):
        HFStreamingSourceConfig(num_records=0)
    with raises(ConfigError, "wrong config type"):
        HFSource(HFStreamingSourceConfig(), dataset=None)  # type: ignore[arg-type]


def test_missing_datasets_package_names_the_extra(root, monkeypatch):
    dataset = load("memory", root)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with raises(MissingDependencyError, "HFSource:", "install datarax[hf]"):
        HFSource(HFSourceConfig(), dataset=dataset)
    with raises(MissingDependencyError, "HFStreamingSource:", "install datarax[hf]"):
        HFStreamingSource(HFStreamingSourceConfig(), dataset=dataset)
