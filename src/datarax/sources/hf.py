"""HuggingFace ``datasets`` as sources: random access or streaming.

:class:`HFSource` reads a ``datasets.Dataset`` (Arrow tables in memory or memory
mapped from disk) a whole batch at a time: each field is gathered with NumPy from
zero-copy views of the Arrow buffers, so no Python runs per record.
:class:`HFStreamingSource` reads a ``datasets.IterableDataset`` in order; it is
shuffled within windows by a ``ShuffleNode``, not globally.

``datasets`` is imported only when a source is built; without it, the error names
the extra to install (``pip install "datarax[hf]"``).

Example:
    >>> import datasets, numpy as np
    >>> ds = datasets.Dataset.from_dict({"x": np.arange(6.0), "y": np.arange(6) % 2})
    >>> src = HFSource(HFSourceConfig(), dataset=ds)
    >>> {k: v.tolist() for k, v in src.read(np.array([4, 1])).items()}
    {'x': [4.0, 1.0], 'y': [0, 1]}
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from datarax.core.config import Config, require_names, require_positive
from datarax.core.dtypes import narrow_dtype, narrowed
from datarax.core.errors import ConfigError, SchemaError, SourceError
from datarax.core.optional import require
from datarax.sources.base import DataSource, check_indices, empty_source_error, select_columns
from datarax.sources.record import Decoder, StreamingSource

# Rows converted from Arrow at a time while streaming: large enough that conversion
# is vectorised, small enough that restarting a stream reads little ahead.
_STREAM_BATCH = 256

_NUMERIC_HELP = (
    "numbers or fixed-shape arrays of numbers (Value, ClassLabel, List/Sequence of a "
    "fixed length, Array2D to Array5D)"
)


@dataclass(frozen=True)
class HFSourceConfig(Config):
    """What an :class:`HFSource` reads.

    Args:
        columns: The columns to read, in this order (default: every column).
        split: The split to read when the dataset is a ``DatasetDict``.

    Example:
        >>> HFSourceConfig(columns=("image", "label"), split="train").columns
        ('image', 'label')
    """

    columns: tuple[str, ...] | None = None
    split: str | None = None

    def validate(self) -> None:
        require_names(self, "columns")
        if self.split is not None and (not isinstance(self.split, str) or not self.split):
            raise ConfigError(
                "split must be a split name",
                where="HFSourceConfig.split",
                expected="a non-empty str or None",
                found=repr(self.split),
            )


class HFSource(DataSource, pytree=False):
    """A ``datasets.Dataset`` as a random-access source, read a batch at a time.

    Columns of numbers (``Value``, ``ClassLabel``), lists of a fixed length and
    ``Array2D``..``Array5D`` features become fields. float64 becomes float32 and
    64-bit integers 32 bits (checked for range) unless ``jax_enable_x64``, as in
    :class:`~datarax.sources.MemorySource`. The dataset's ``select``, ``shuffle`` and
    ``train_test_split`` index mappings are followed; format transforms are not run.

    Args:
        config: The columns (and split) to read.
        dataset: A ``datasets.Dataset``, or a ``DatasetDict`` with ``config.split``.
        name: Shown in errors.

    Raises:
        SourceError: when a column is missing, the dataset is empty, or it is not a
            ``Dataset``.
        SchemaError: when a column holds strings, variable-length lists, images or
            other values that are not fixed-shape numbers.

    Example:
        >>> import datasets, numpy as np
        >>> from datarax import from_source
        >>> ds = datasets.Dataset.from_dict({"x": np.arange(10.0), "s": list("abcdefghij")})
        >>> src = HFSource(HFSourceConfig(columns=("x",)), dataset=ds)
        >>> [b["x"].tolist() for b in from_source(src, batch_size=4)]
        [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0]]
    """

    config_type = HFSourceConfig
    config: HFSourceConfig

    def __init__(self, config: HFSourceConfig, *, dataset: Any, name: str | None = None) -> None:
        super().__init__(config, name=name)
        dataset = _random_access(dataset, config.split, self.name)
        self._columns = select_columns(config.columns, dataset.column_names, where=self.name)
        if len(dataset) == 0:
            raise empty_source_error(self.name)
        self._dataset = dataset
        self._length = len(dataset)
        self._arrays: _ArrowColumns | None = _ArrowColumns(dataset, self._columns, self.name)
        self._spec = self._arrays.spec

    def __len__(self) -> int:
        return self._length

    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        return dict(self._spec)

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The fields of the records at ``indices``: one NumPy gather per field.

        Raises:
            SourceError: when an index is out of range, or a 64-bit integer does not
                fit in 32 bits (the error names the record and the field).
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        check_indices(indices, self._length, where=self.name)
        if self._arrays is None:  # unpickled: views of the Arrow buffers are rebuilt here
            self._arrays = _ArrowColumns(self._dataset, self._columns, self.name)
        raw = self._arrays.gather(indices)
        return {
            field: narrowed(raw[field], where=f"{self.name}, field '{field}'", records=indices)
            for field in self._spec
        }

    def fingerprint(self) -> dict[str, Any]:
        return {
            **super().fingerprint(),
            "dataset": getattr(self._dataset, "_fingerprint", None),
            "columns": list(self._columns),
        }

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_arrays"] = None  # NumPy views of Arrow buffers do not travel
        return state


@dataclass(frozen=True)
class HFStreamingSourceConfig(Config):
    """What an :class:`HFStreamingSource` reads.

    Args:
        columns: The columns to read (default: every column).
        num_records: Records in the stream. Default: the split's size when the
            dataset's info knows it, else counted with one pass. Give it when the
            dataset was filtered, taken, sharded or mapped after loading.

    Example:
        >>> HFStreamingSourceConfig(columns=("label",), num_records=1000).num_records
        1000
    """

    columns: tuple[str, ...] | None = None
    num_records: int | None = None

    def validate(self) -> None:
        require_names(self, "columns")
        require_positive(self, "num_records", allow_none=True)


class HFStreamingSource(StreamingSource):
    """A ``datasets.IterableDataset`` as a source read in stream order.

    Each record is handed to ``decoder`` (if given) as a dict of the selected
    columns: fixed-shape numeric values as NumPy arrays of the stored dtype, others
    as Arrow stores them (an ``Image`` column is ``{"bytes": ..., "path": ...}``).
    Every record must then match record 0's fields, shapes and dtypes. Reading a
    record behind the stream (a new epoch, a restored state) restarts the stream
    there with ``dataset.skip(position)``. Shuffle with
    ``from_source(src, batch_size) >> ShuffleNode(buffer_size, seed)``.

    Args:
        config: The columns and, optionally, the number of records.
        dataset: A ``datasets.IterableDataset`` (e.g. ``load_dataset(..., streaming=True)``
            or ``Dataset.to_iterable_dataset()``).
        decoder: Turns one record dict into a dict of arrays (e.g. decodes image bytes).
        name: Shown in errors.

    Example:
        >>> import datasets, numpy as np
        >>> from datarax import from_source
        >>> ds = datasets.Dataset.from_dict({"x": np.arange(6.0)}).to_iterable_dataset()
        >>> src = HFStreamingSource(HFStreamingSourceConfig(), dataset=ds)
        >>> [b["x"].tolist() for b in from_source(src, batch_size=4)]
        [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0]]
    """

    config_type = HFStreamingSourceConfig
    config: HFStreamingSourceConfig

    def __init__(
        self,
        config: HFStreamingSourceConfig,
        *,
        dataset: Any,
        decoder: Decoder | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        where = name or type(self).__name__
        datasets = require("datasets", "hf", "HFStreamingSource")
        if not isinstance(dataset, datasets.IterableDataset):
            raise SourceError(
                "not a streaming dataset",
                where=where,
                expected="a datasets.IterableDataset",
                found=type(dataset).__name__,
                hint="Read a datasets.Dataset with HFSource, or stream it with "
                "dataset.to_iterable_dataset()",
            )
        available = dataset.column_names
        columns = config.columns
        if available is not None:
            columns = select_columns(columns, available, where=where)
            if decoder is None and dataset.features is not None:
                schema = dataset.features.arrow_schema
                for column in columns:
                    feature = dataset.features[column]
                    _check_numeric(column, schema.field(column).type, feature, columns, where)
        num_records = config.num_records or _known_size(dataset)
        super().__init__(config, num_records=num_records, decoder=decoder, name=name)
        self._dataset = dataset
        self._columns = columns

    def iterate(self, start: int) -> Iterator[dict[str, Any]]:
        """Records from position ``start`` on, as dicts of the selected columns."""
        dataset = self._dataset.skip(start) if start else self._dataset
        for table in dataset.with_format("arrow").iter(batch_size=_STREAM_BATCH):
            yield from _records(table, self._columns, self.name)

    def fingerprint(self) -> dict[str, Any]:
        dataset = self._dataset
        info = dataset.info
        return {
            **super().fingerprint(),
            "dataset": {
                "builder": info.builder_name,
                "config": info.config_name,
                "split": None if dataset.split is None else str(dataset.split),
                "shards": dataset.num_shards,
                "features": None if dataset.features is None else repr(dataset.features),
            },
            "columns": None if self._columns is None else list(self._columns),
        }


# -- configs and datasets ------------------------------------------------------------


def _random_access(dataset: Any, split: str | None, where: str) -> Any:
    """The ``datasets.Dataset`` to read, after checking that a batched read can serve it."""
    datasets = require("datasets", "hf", "HFSource")
    dataset = _one_split(dataset, split, datasets, where)
    if not isinstance(dataset, datasets.Dataset):
        raise SourceError(
            "not a random-access dataset",
            where=where,
            expected="a datasets.Dataset",
            found=type(dataset).__name__,
            hint="Read a datasets.IterableDataset with HFStreamingSource",
        )
    if dataset.format["type"] == "custom":
        raise SourceError(
            "the dataset has a format transform, which a batched read does not run",
            where=where,
            expected="a dataset without with_transform / set_transform",
            found=repr(dataset.format["format_kwargs"].get("transform")),
            hint="Apply it with dataset.map(...) first, or read records one by one "
            "with SequenceSource(dataset, decoder=...)",
        )
    return dataset


def _one_split(dataset: Any, split: str | None, datasets: Any, where: str) -> Any:
    """The dataset of ``split`` from a ``DatasetDict``; a ``Dataset`` as it is."""
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = sorted(dataset)
        if split is None or split not in dataset:
            raise SourceError(
                "a dataset dict holds several splits" if split is None else "no such split",
                where=where,
                expected=f"HFSourceConfig(split=...) with one of {splits}",
                found="split=None" if split is None else repr(split),
            )
        return dataset[split]
    actual = getattr(dataset, "split", None)
    if split is not None and actual is not None and str(actual) != split:
        raise SourceError(
            "the dataset is another split",
            where=where,
            expected=f"split {split!r}",
            found=repr(str(actual)),
        )
    return dataset


def _known_size(dataset: Any) -> int | None:
    """The split's number of records from the dataset's info, when recorded."""
    splits = dataset.info.splits
    split = None if dataset.split is None else str(dataset.split)
    if not splits or split not in splits:
        return None
    return splits[split].num_examples or None


# -- Arrow to NumPy ------------------------------------------------------------------


class _ArrowColumns:
    """The selected columns as NumPy views of each Arrow chunk, gathered by row.

    Building the views copies nothing but boolean columns (Arrow packs them in bits)
    and reads only the lengths of variable-length lists; a gather copies just the
    rows asked for, one NumPy call per field and chunk touched.
    """

    def __init__(self, dataset: Any, columns: tuple[str, ...], where: str) -> None:
        table = dataset.data.table
        mapping = getattr(dataset, "_indices", None)  # set by select / shuffle / splits
        self.rows = None if mapping is None else mapping.column(0).to_numpy().astype(np.int64)
        self.chunks: dict[str, list[np.ndarray]] = {}
        self.starts: dict[str, np.ndarray] = {}
        self.spec: dict[str, jax.ShapeDtypeStruct] = {}
        starts_seen: dict[bytes, np.ndarray] = {}
        for column in columns:
            feature = dataset.features[column]
            _check_numeric(column, table.schema.field(column).type, feature, columns, where)
            arrays = _column_arrays(table.column(column), column, where)
            starts = np.cumsum([0] + [len(a) for a in arrays[:-1]], dtype=np.int64)
            self.chunks[column] = arrays
            # Columns cut into the same chunks share one array, so rows are grouped once.
            self.starts[column] = starts_seen.setdefault(starts.tobytes(), starts)
            self.spec[column] = jax.ShapeDtypeStruct(
                arrays[0].shape[1:], narrow_dtype(arrays[0].dtype)
            )

    def gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Each column's rows at ``indices`` (positions in the dataset), in its stored dtype."""
        rows = indices if self.rows is None else self.rows[indices]
        groups: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        out = {}
        for column, chunks in self.chunks.items():
            starts = self.starts[column]
            if len(chunks) == 1:
                out[column] = np.take(chunks[0], rows, axis=0)
                continue
            if id(starts) not in groups:
                groups[id(starts)] = _chunk_groups(starts, rows)
            first = chunks[0]
            values = np.empty((rows.size, *first.shape[1:]), first.dtype)
            for chunk, where, local in groups[id(starts)]:
                values[where] = chunks[chunk][local]
            out[column] = values
        return out


def _chunk_groups(starts: np.ndarray, rows: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(chunk, positions in the batch, rows in the chunk) for each chunk the rows touch."""
    chunk_of = np.searchsorted(starts, rows, side="right") - 1
    order = np.argsort(chunk_of, kind="stable")
    cuts = np.flatnonzero(np.diff(chunk_of[order])) + 1
    groups = []
    for where in np.split(order, cuts):
        if where.size:
            chunk = int(chunk_of[where[0]])
            groups.append((chunk, where, rows[where] - starts[chunk]))
    return groups


def _column_arrays(column: Any, field: str, where: str) -> list[np.ndarray]:
    """Each non-empty chunk of an Arrow column as a NumPy array of shape (rows, *shape)."""
    arrays: list[np.ndarray] = []
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        array = _rectangular(chunk)
        if array is None:
            raise SchemaError(
                f"column '{field}' holds lists of different lengths or missing values",
                where=where,
                expected="every row of one shape, with no missing values",
                found=f"Arrow type {chunk.type}",
                hint=_drop_hint(field),
            )
        if arrays and array.shape[1:] != arrays[0].shape[1:]:
            raise SchemaError(
                f"column '{field}' holds rows of different shapes",
                where=where,
                expected=f"every row of shape {arrays[0].shape[1:]}",
                found=f"rows of shape {array.shape[1:]}",
                hint=_drop_hint(field),
            )
        arrays.append(array)
    return arrays


def _rectangular(array: Any) -> np.ndarray | None:
    """A numeric Arrow array as (rows, *shape), or ``None`` when rows differ or hold nulls.

    A fixed shape declared by the type (``Array2D``..``Array5D``, fixed-size lists)
    is used as is; variable-length lists are measured level by level.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    declared = getattr(array.type, "shape", None)
    values = array.storage if isinstance(array, pa.ExtensionArray) else array
    if values.null_count:
        return None
    shape: list[int] = []
    while _is_list(values.type):
        if pa.types.is_fixed_size_list(values.type):
            size = values.type.list_size
        elif declared is not None and None not in declared:
            size = declared[len(shape)]
        else:
            lengths = pc.min_max(pc.list_value_length(values))
            if lengths["min"].as_py() != lengths["max"].as_py():
                return None
            size = lengths["max"].as_py() or 0
        shape.append(size)
        values = values.flatten()
        if values.null_count:
            return None
    if len(values) != len(array) * math.prod(shape):
        return None
    return values.to_numpy(zero_copy_only=False).reshape(len(array), *shape)


def _is_list(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_fixed_size_list(arrow_type)
    )


def _leaf_type(arrow_type: Any) -> Any:
    """The type of the numbers inside (nested) lists and extension types."""
    import pyarrow as pa

    while True:
        if isinstance(arrow_type, pa.ExtensionType):
            arrow_type = arrow_type.storage_type
        elif _is_list(arrow_type):
            arrow_type = arrow_type.value_type
        else:
            return arrow_type


def _is_numeric(arrow_type: Any) -> bool:
    import pyarrow as pa

    leaf = _leaf_type(arrow_type)
    return bool(
        pa.types.is_integer(leaf) or pa.types.is_floating(leaf) or pa.types.is_boolean(leaf)
    )


def _check_numeric(
    column: str, arrow_type: Any, feature: Any, columns: Sequence[str], where: str
) -> None:
    """Raise a :class:`SchemaError` naming ``column`` unless it holds numbers."""
    if _is_numeric(arrow_type):
        return
    others = tuple(c for c in columns if c != column)
    raise SchemaError(
        f"column '{column}' does not hold numbers",
        where=where,
        expected=_NUMERIC_HELP,
        found=repr(feature),
        hint=_drop_hint(column, others),
    )


def _drop_hint(column: str, others: tuple[str, ...] | None = None) -> str:
    keep = f"columns={others!r}" if others else "columns=(...)"
    return (
        f"Leave '{column}' out with {keep}, turn it into arrays with dataset.map(...), "
        "or decode it on the host: SequenceSource(dataset, decoder=...) or "
        "HFStreamingSource(..., decoder=...)"
    )


def _records(table: Any, columns: tuple[str, ...] | None, where: str) -> Iterator[dict[str, Any]]:
    """The rows of an Arrow table as dicts (NumPy arrays where a column is rectangular)."""
    names = select_columns(columns, table.column_names, where=where)
    fields = {name: _stream_values(table.column(name).combine_chunks()) for name in names}
    for row in range(table.num_rows):
        yield {name: values[row] for name, values in fields.items()}


def _stream_values(array: Any) -> np.ndarray | list[Any]:
    """A streamed column: one array when numeric and rectangular, else a value per row."""
    if _is_numeric(array.type):
        values = _rectangular(array)
        if values is not None:
            return values
        dtype = _leaf_type(array.type).to_pandas_dtype()
        return [_row_array(row, dtype) for row in array.to_pylist()]
    return array.to_pylist()


def _row_array(row: Any, dtype: Any) -> Any:
    """One row's nested lists as an array of ``dtype`` (as is when ragged or missing)."""
    if row is None:
        return None
    try:
        return np.asarray(row, dtype=dtype)
    except (ValueError, TypeError):  # ragged lists: the spec check reports the record
        return row
