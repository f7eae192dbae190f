"""TensorFlow Datasets (TFDS) as sources: random access, or a stream read in order.

:class:`TFDSSource` reads a prepared dataset's split with TFDS's random-access data
source (ArrayRecord or Parquet files), so a pipeline can draw a fresh global
permutation every epoch with ``from_source(..., shuffle=True)``. Reading it needs
``tensorflow_datasets`` and ``array_record``, not TensorFlow.

:class:`TFDSStreamingSource` reads a split in file order through
``builder.as_dataset`` (TFRecord and the other formats ``tf.data`` reads) and needs
TensorFlow; shuffle it within windows with ``from_source(src, bs) >> ShuffleNode(...)``.

Both open the dataset by its registered name and ``data_dir``, or from a builder
instance; both return one record as a dict of NumPy arrays (64-bit values narrowed
as :class:`~datarax.sources.MemorySource` narrows them), optionally only some
``columns``. Neither imports TFDS or TensorFlow before it is built.

Example (needs a prepared dataset, so it is not run as a doctest)::

    from datarax import from_source
    from datarax.dag import ShuffleNode
    from datarax.sources import (TFDSSource, TFDSSourceConfig,
                                 TFDSStreamingSource, TFDSStreamingSourceConfig)

    # ArrayRecord files: a new global permutation every epoch.
    src = TFDSSource(TFDSSourceConfig("mnist", split="train", data_dir="/data/tfds"))
    for batch in from_source(src, 128, shuffle=True, seed=0, num_epochs=3):
        ...

    # TFRecord files: read in order, shuffled within windows of 1024 records.
    stream = TFDSStreamingSource(TFDSStreamingSourceConfig("mnist", data_dir="/data/tfds"))
    for batch in from_source(stream, 128) >> ShuffleNode(1024, seed=0):
        ...
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from datarax.core.config import Config, require_names, require_positive
from datarax.core.errors import ConfigError, SourceError
from datarax.core.optional import require
from datarax.sources.base import select_columns
from datarax.sources.record import Decoder, RecordSource, StreamingSource

if TYPE_CHECKING:
    from tensorflow_datasets.core import DatasetBuilder


@dataclass(frozen=True)
class TFDSSourceConfig(Config):
    """Which TFDS dataset split a :class:`TFDSSource` reads.

    Args:
        name: The dataset's registered name, as ``tfds.builder`` takes it
            (``"mnist"``, ``"mnist:3.0.1"``, ``"name/config"``); with a ``builder``
            given to the source, that builder's name.
        split: A split, or a TFDS split expression (``"train[:10%]"``, ``"train+test"``).
        data_dir: Where the prepared dataset lies (default: TFDS's default data dir).
        columns: The features to read (default: every feature); others are dropped
            before decoding.

    Example:
        >>> TFDSSourceConfig("mnist", split="test", columns=["image"]).columns
        ('image',)
    """

    name: str
    split: str = "train"
    data_dir: str | None = None
    columns: Sequence[str] | None = None

    def validate(self) -> None:
        _validate_common(self)


@dataclass(frozen=True)
class TFDSStreamingSourceConfig(Config):
    """Which TFDS dataset split a :class:`TFDSStreamingSource` streams.

    Args:
        name, split, data_dir, columns: As for :class:`TFDSSourceConfig`.
        num_records: Records in the stream (default: the split's size in the
            dataset's info); a smaller value streams only the split's first records.

    Example:
        >>> TFDSStreamingSourceConfig("mnist", num_records=1000).num_records
        1000
    """

    name: str
    split: str = "train"
    data_dir: str | None = None
    columns: Sequence[str] | None = None
    num_records: int | None = None

    def validate(self) -> None:
        _validate_common(self)
        require_positive(self, "num_records", allow_none=True)


class TFDSSource(RecordSource):
    """Random access to a prepared TFDS split (``builder.as_data_source``).

    The dataset must be prepared in a random-access format
    (``download_and_prepare`` with ``file_format="array_record"``). Records are read
    in batches with the data source's batched read and decoded by TFDS into NumPy
    values. It is checked when built: a dataset that cannot be found, an unknown or
    empty split, and columns the dataset lacks raise :class:`SourceError`.

    Args:
        config: Dataset name, split, data dir and columns.
        builder: A ``tfds.core.DatasetBuilder`` to read instead of looking the name up.
        decoder: Turns one record (a dict of the selected features' NumPy values)
            into a dict of arrays.
        name: Shown in errors (default ``TFDSSource[<name>, <split>]``).

    Example (needs the prepared dataset)::

        src = TFDSSource(TFDSSourceConfig("mnist", data_dir="/data/tfds",
                                          columns=["image", "label"]))
        batch = src.read(np.array([3, 1, 4]))  # {"image": (3, 28, 28, 1) uint8, ...}
    """

    config_type = TFDSSourceConfig
    config: TFDSSourceConfig

    def __init__(
        self,
        config: TFDSSourceConfig,
        *,
        builder: DatasetBuilder | None = None,
        decoder: Decoder | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        where = name or f"TFDSSource[{config.name}, {config.split}]"
        require("array_record.python.array_record_data_source", "tfds", "TFDSSource")
        builder, facts = _open(config, builder, where)
        super().__init__(config, decoder=decoder, name=where)
        self._dataset = facts
        self._builder = builder
        self._data: Any = _random_access(builder, config.split, where)
        self._length = len(self._data)

    def __len__(self) -> int:
        return self._length

    def read_records(self, indices: np.ndarray) -> Sequence[Any]:
        keys = [int(i) for i in indices]
        if self._data is None:  # after unpickling
            self._builder = _from_directory(self._dataset.builder_dir, self.name)
            self._data = _random_access(self._builder, self.config.split, self.name)
        return list(self._data.__getitems__(keys))

    def decode(self, raw: Any, index: int) -> dict[str, np.ndarray]:
        return super().decode(_select(raw, self.config.columns, self.name, index), index)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), **self._dataset.fingerprint(self.config)}

    def __getstate__(self) -> dict[str, Any]:
        # Open files and readers stay behind; the builder is reopened from its directory.
        return {**super().__getstate__(), "_builder": None, "_data": None}


class TFDSStreamingSource(StreamingSource):
    """A prepared TFDS split read in order with ``builder.as_dataset`` and ``tf.data``.

    Files are read one after another (``shuffle_files=False``, one file at a time),
    so position ``i`` of the stream is record ``i`` of the split, the record a
    :class:`TFDSSource` over the same files returns for index ``i``. Reading from a
    position starts the split there (TFDS passes the records before it over without
    decoding them). Needs TensorFlow and files
    in a format ``tf.data`` reads (TFRecord, the default of ``download_and_prepare``).

    Args:
        config: Dataset name, split, data dir, columns and length.
        builder: A ``tfds.core.DatasetBuilder`` to read instead of looking the name up.
        decoder: Turns one record (a dict of the selected features' NumPy values)
            into a dict of arrays.
        name: Shown in errors (default ``TFDSStreamingSource[<name>, <split>]``).

    Example (needs the prepared dataset)::

        src = TFDSStreamingSource(TFDSStreamingSourceConfig("mnist", data_dir="/data/tfds"))
        shuffled = from_source(src, 64, num_epochs=2) >> ShuffleNode(512, seed=1)
    """

    config_type = TFDSStreamingSourceConfig
    config: TFDSStreamingSourceConfig

    def __init__(
        self,
        config: TFDSStreamingSourceConfig,
        *,
        builder: DatasetBuilder | None = None,
        decoder: Decoder | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        where = name or f"TFDSStreamingSource[{config.name}, {config.split}]"
        require("tensorflow", "tensorflow", "TFDSStreamingSource")
        builder, facts = _open(config, builder, where)
        _check_streamable(builder, where)
        num_records = _stream_length(config, facts.num_examples, where)
        super().__init__(config, num_records=num_records, decoder=decoder, name=where)
        self._dataset = facts
        self._builder = builder

    def iterate(self, start: int) -> Iterator[Any]:
        tfds = _import_tfds(self.name)
        if self._builder is None:  # after unpickling
            self._builder = _from_directory(self._dataset.builder_dir, self.name)
        split = _split_after(tfds, self.config.split, start, self._builder.info.splits)
        if split is None:
            return iter(())
        # One file at a time, in order: stream position i is record i of the split. The
        # stream restarts on every resume and epoch, so TFDS's in-memory cache would not help.
        read_config = tfds.ReadConfig(interleave_cycle_length=1, try_autocache=False)
        ds = self._builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
        return iter(tfds.as_numpy(ds.take(len(self) - start)))

    def decode(self, raw: Any, index: int) -> dict[str, np.ndarray]:
        return super().decode(_select(raw, self.config.columns, self.name, index), index)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), **self._dataset.fingerprint(self.config)}

    def __getstate__(self) -> dict[str, Any]:
        # The builder stays behind too; the stream restarts where asked.
        return {**super().__getstate__(), "_builder": None}


# -- opening a dataset ------------------------------------------------------------------


@dataclass(frozen=True)
class _DatasetFacts:
    """What identifies an opened dataset split; plain values that survive pickling."""

    full_name: str
    version: str
    builder_dir: str
    num_examples: int

    def fingerprint(self, config: TFDSSourceConfig | TFDSStreamingSourceConfig) -> dict[str, Any]:
        columns = list(config.columns) if config.columns is not None else None
        return {
            "dataset": self.full_name,
            "version": self.version,
            "split": config.split,
            "columns": columns,
        }


def _open(
    config: TFDSSourceConfig | TFDSStreamingSourceConfig, builder: Any, where: str
) -> tuple[Any, _DatasetFacts]:
    """The prepared dataset's builder, checked against the config's split and columns."""
    tfds = _import_tfds(where)
    if builder is None:
        builder = _builder_by_name(tfds, config, where)
    else:
        _check_builder(builder, config, where)
    if not builder.is_prepared():
        raise SourceError(
            f"dataset '{config.name}' is not prepared",
            where=where,
            expected=f"its prepared files under {builder.data_dir_root}",
            found=f"none in {builder.data_dir}",
            hint="Prepare it first with builder.download_and_prepare()",
        )
    num_examples = _split_size(builder, config.split, where)
    _check_columns(builder, config.columns, where)
    info = builder.info
    facts = _DatasetFacts(
        full_name=str(info.full_name),
        version=str(info.version),
        builder_dir=str(builder.data_dir),
        num_examples=num_examples,
    )
    return builder, facts


def _import_tfds(where: str) -> ModuleType:
    return require("tensorflow_datasets", extra="tfds", feature=where)


def _builder_by_name(
    tfds: ModuleType, config: TFDSSourceConfig | TFDSStreamingSourceConfig, where: str
) -> Any:
    try:
        return tfds.builder(config.name, data_dir=config.data_dir)
    except (ValueError, FileNotFoundError) as exc:  # DatasetNotFoundError is a ValueError
        raise SourceError(
            f"dataset '{config.name}' not found",
            where=where,
            expected=f"a registered dataset or one prepared under {_dir_text(config.data_dir)}",
            found=_first_line(exc),
        ) from exc


def _from_directory(builder_dir: str, where: str) -> Any:
    tfds = _import_tfds(where)
    return tfds.builder_from_directory(builder_dir)


def _check_builder(
    builder: Any, config: TFDSSourceConfig | TFDSStreamingSourceConfig, where: str
) -> None:
    base_name = config.name.split(":")[0].split("/")[0]
    if getattr(builder, "name", None) != base_name:
        raise SourceError(
            "the builder is for another dataset than the config names",
            where=where,
            expected=f"a builder of '{base_name}'",
            found=f"{type(builder).__name__} of '{getattr(builder, 'name', '?')}'",
        )
    if config.data_dir is not None and not _same_dir(config.data_dir, builder.data_dir_root):
        raise SourceError(
            "the config's data_dir is not the builder's",
            where=where,
            expected=str(builder.data_dir_root),
            found=config.data_dir,
            hint="Leave data_dir unset when giving a builder",
        )


def _split_size(builder: Any, split: str, where: str) -> int:
    splits = builder.info.splits
    try:
        num_examples = int(splits[split].num_examples)
    except (KeyError, ValueError) as exc:
        raise SourceError(
            f"unknown split {split!r} ({_first_line(exc)})",
            where=where,
            expected=f"one of {sorted(splits)}, or a slice of one such as 'train[:10%]'",
            found=repr(split),
        ) from exc
    if num_examples == 0:
        raise SourceError(
            f"split {split!r} is empty",
            where=where,
            expected="at least one record",
            found="0 records",
        )
    return num_examples


def _check_columns(builder: Any, columns: Sequence[str] | None, where: str) -> None:
    if columns is None:
        return
    features = builder.info.features
    available = sorted(features.keys()) if hasattr(features, "keys") else []
    select_columns(columns, available, where=where, among="the dataset's features")


def _random_access(builder: Any, split: str, where: str) -> Any:
    try:
        return builder.as_data_source(split=split)
    except NotImplementedError as exc:  # prepared in a format without random access
        raise SourceError(
            "the dataset's files do not allow random access",
            where=where,
            expected="files prepared with file_format='array_record' (or 'parquet')",
            found=f"{builder.info.file_format.value} files in {builder.data_dir}",
            hint="Prepare it with file_format='array_record', or read it with TFDSStreamingSource",
        ) from exc


def _check_streamable(builder: Any, where: str) -> None:
    """Raise unless the dataset's files are in a format ``tf.data`` reads."""
    tfds = _import_tfds(where)
    readable = tfds.core.FileFormat.with_tf_data()
    file_format = builder.info.file_format
    if file_format not in readable:
        # TFDS names the files of a split after the dataset's own format, so an
        # alternative format is not read without changing the builder's info.
        raise SourceError(
            "the dataset's files cannot be streamed with tf.data",
            where=where,
            expected=f"files in one of {sorted(f.value for f in readable)}",
            found=f"{getattr(file_format, 'value', file_format)} files in {builder.data_dir}",
            hint="Read ArrayRecord files with TFDSSource",
        )


def _split_after(tfds: ModuleType, split: str, start: int, splits: Any) -> Any:
    """``split`` less its first ``start`` records, as TFDS read instructions (None if empty).

    TFDS passes the records over by file and by offset in a file, before decoding,
    where ``ds.skip(start)`` would decode each of them.
    """
    if start == 0:
        return split
    parts = []
    for part in tfds.core.ReadInstruction.from_spec(split).to_absolute(splits):
        begin = part.from_ or 0
        end = splits[part.splitname].num_examples if part.to is None else part.to
        passed = min(start, max(end - begin, 0))
        start -= passed
        if begin + passed < end:
            parts.append(
                tfds.core.ReadInstruction(part.splitname, from_=begin + passed, to=end, unit="abs")
            )
    return functools.reduce(operator.add, parts) if parts else None


def _stream_length(config: TFDSStreamingSourceConfig, num_examples: int, where: str) -> int:
    if config.num_records is None:
        return num_examples
    if config.num_records > num_examples:
        raise SourceError(
            "num_records exceeds the split's size",
            where=where,
            expected=f"at most {num_examples} records",
            found=config.num_records,
        )
    return config.num_records


# -- records and configs --------------------------------------------------------------------


def _select(raw: Any, columns: Sequence[str] | None, where: str, index: int) -> Any:
    """The record restricted to ``columns`` (all of it when ``columns`` is None)."""
    if columns is None or not isinstance(raw, Mapping):
        return raw
    names = select_columns(
        columns, sorted(raw), where=f"{where}, record {index}", among="the record's fields"
    )
    return {c: raw[c] for c in names}


def _validate_common(config: TFDSSourceConfig | TFDSStreamingSourceConfig) -> None:
    kind = type(config).__name__
    for field in ("name", "split"):
        value = getattr(config, field)
        if not isinstance(value, str) or not value:
            raise ConfigError(
                "must be a non-empty string",
                where=f"{kind}.{field}",
                expected="e.g. 'mnist'" if field == "name" else "e.g. 'train'",
                found=repr(value),
            )
    if config.data_dir is not None and not isinstance(config.data_dir, str):
        raise ConfigError(
            "must be a path string or None",
            where=f"{kind}.data_dir",
            expected="a str",
            found=repr(config.data_dir),
        )
    require_names(config, "columns")


def _dir_text(data_dir: str | None) -> str:
    if data_dir is not None:
        return data_dir
    return "TFDS's default data dir (TFDS_DATA_DIR or ~/tensorflow_datasets)"


def _same_dir(a: Any, b: Any) -> bool:
    return os.path.realpath(str(a)) == os.path.realpath(str(b))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
