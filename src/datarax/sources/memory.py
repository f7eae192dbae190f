"""`MemorySource`: records held in memory, on the host or on a device."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jax
import numpy as np
from flax import nnx

from datarax.core.config import Config, check_int, require_int
from datarax.core.errors import ConfigError, SourceError
from datarax.core.fields import check_fields, field_array, record_fields
from datarax.sources.base import DataSource, empty_source_error

Placement = Literal["auto", "host", "device"]


@dataclass(frozen=True)
class MemorySourceConfig(Config):
    """Where a :class:`MemorySource` keeps its arrays.

    Args:
        placement: ``"device"`` puts the arrays on the default device once, so the
            compiled pipeline gathers batches there and only indices cross;
            ``"host"`` keeps NumPy arrays and sends each batch; ``"auto"`` chooses
            ``"device"`` when the data is at most ``device_max_bytes``.
        device_max_bytes: Size limit for ``"auto"`` placement.
        pad_to: Variable-length fields: ``{"tokens": 128}`` reads field ``tokens``
            (a list of 1-D arrays of any lengths) truncated or padded to 128 values,
            and adds ``tokens_length`` (int32), the number of values kept. Padding
            and truncation are one vectorised gather per batch; such sources stay
            on the host.
        pad_value: The value padding is filled with.
    """

    placement: Placement = "auto"
    device_max_bytes: int = 2 * 1024**3
    pad_to: Mapping[str, int] | tuple[tuple[str, int], ...] = ()
    pad_value: int | float = 0

    def __post_init__(self) -> None:
        pad_to = self.pad_to.items() if isinstance(self.pad_to, Mapping) else self.pad_to
        pairs = isinstance(pad_to, Sequence | type({}.items())) and not isinstance(pad_to, str)
        if not pairs or not all(isinstance(p, tuple | list) and len(p) == 2 for p in pad_to):
            raise ConfigError(
                "must map field names to lengths",
                where="MemorySourceConfig.pad_to",
                expected="e.g. {'tokens': 128}",
                found=repr(self.pad_to),
            )
        object.__setattr__(self, "pad_to", tuple((str(k), v) for k, v in pad_to))
        super().__post_init__()

    def pad_items(self) -> tuple[tuple[str, int], ...]:
        """``pad_to`` as (field, length) pairs."""
        pad_to = self.pad_to
        return tuple(pad_to.items()) if isinstance(pad_to, Mapping) else tuple(pad_to)

    def validate(self) -> None:
        pad_to = tuple(
            (
                field,
                check_int(
                    length,
                    where="MemorySourceConfig.pad_to",
                    minimum=1,
                    message=f"invalid padded length of field '{field}'",
                ),
            )
            for field, length in self.pad_items()
        )
        object.__setattr__(self, "pad_to", pad_to)
        require_int(self, "device_max_bytes", minimum=0)
        if not isinstance(self.pad_value, numbers.Real) or isinstance(self.pad_value, bool):
            raise ConfigError(
                "pad value must be a number",
                where="MemorySourceConfig.pad_value",
                expected="an int or float",
                found=repr(self.pad_value),
            )
        if self.placement not in ("auto", "host", "device"):
            raise ConfigError(
                "unknown placement",
                where="MemorySourceConfig.placement",
                expected="'auto', 'host' or 'device'",
                found=repr(self.placement),
            )


class MemorySource(DataSource):
    """A source over a dict of arrays (one entry per field) or a list of record dicts.

    Args:
        config: Placement options.
        data: ``{"image": array (N, ...), "label": array (N,)}`` or
            ``[{"image": ..., "label": ...}, ...]``. Every field needs the same N.
        rngs: Accepted for a uniform constructor; a memory source draws no randomness.
        name: Shown in errors.

    Example:
        >>> import numpy as np
        >>> src = MemorySource(MemorySourceConfig(), data={"x": np.arange(6).reshape(3, 2)})
        >>> len(src), src.read(np.array([2, 0]))["x"].tolist()
        (3, [[4, 5], [0, 1]])
    """

    config_type = MemorySourceConfig
    config: MemorySourceConfig

    def __init__(
        self,
        config: MemorySourceConfig,
        *,
        data: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(config, name=name)
        pad_to = dict(config.pad_items())
        data, ragged = _take_ragged(data, pad_to, self.name, self.config.pad_value)
        self._ragged = nnx.data(ragged)
        fixed = _as_columns(data, self.name) if not ragged or data else {}
        self._host = nnx.data(fixed)
        lengths = {len(v) for v in self._host.values()} | {r.count for r in ragged.values()}
        if len(lengths) > 1:
            raise SourceError(
                "fields have different lengths",
                where=self.name,
                expected="the same number of records in every field",
                found=sorted(lengths),
            )
        self._length = lengths.pop()
        nbytes = sum(a.nbytes for a in self._host.values())
        on_device = not ragged and (
            config.placement == "device"
            or (config.placement == "auto" and nbytes <= config.device_max_bytes)
        )
        if ragged and config.placement == "device":
            raise ConfigError(
                "variable-length fields are read on the host",
                where=self.name,
                expected="placement 'auto' or 'host' with pad_to",
                found="placement 'device'",
            )
        self._device = nnx.data(jax.device_put(self._host) if on_device else None)

    def __len__(self) -> int:
        return self._length

    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        spec = {k: jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for k, v in self._host.items()}
        for field, column in self._ragged.items():
            spec[field] = jax.ShapeDtypeStruct((column.width,), column.values.dtype)
            spec[f"{field}_length"] = jax.ShapeDtypeStruct((), np.dtype(np.int32))
        return spec

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        out = {k: np.take(v, indices, axis=0) for k, v in self._host.items()}
        for field, column in self._ragged.items():
            out[field], out[f"{field}_length"] = column.read(indices, self.config.pad_value)
        return out

    @property
    def device_arrays(self) -> dict[str, jax.Array] | None:
        return self._device


class _RaggedColumn:
    """A variable-length field: all values end to end, with each record's start and length."""

    def __init__(self, rows: Sequence[Any], width: int, where: str, pad_value: float) -> None:
        arrays = [np.asarray(r) for r in rows]
        bad = next((i for i, a in enumerate(arrays) if a.ndim != 1), None)
        if bad is not None:
            raise SourceError(
                "a variable-length record is not one-dimensional",
                where=f"{where}, record {bad}",
                expected="a 1-D array or list",
                found=f"shape {arrays[bad].shape}",
            )
        values = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
        values = field_array(values, source=where, field="values") if values.size else values
        try:
            with np.errstate(all="ignore"):
                representable = bool(np.asarray(pad_value).astype(values.dtype) == pad_value)
        except OverflowError:
            representable = False
        if not representable:
            raise SourceError(
                "pad value not representable in the field's dtype",
                where=where,
                expected=f"a {values.dtype} value",
                found=repr(pad_value),
            )
        # ``width`` spare values at the end: every row's gather stays in bounds.
        self.values = np.concatenate([values, np.zeros(width, values.dtype)])
        self.lengths = np.array([a.size for a in arrays], np.int64)
        starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        index = np.int32 if self.values.size < 2**31 else np.int64
        self.starts = starts.astype(index)
        self.offsets = np.arange(width, dtype=index)
        self.width, self.count = width, len(arrays)
        # Row i of this read-only view is values[i : i + width]: a batch is one
        # row gather (a contiguous copy per record) instead of width element gathers.
        self.windows = np.lib.stride_tricks.as_strided(
            self.values,
            shape=(self.values.size - width + 1, width),
            strides=(self.values.itemsize, self.values.itemsize),
            writeable=False,
        )

    def read(self, indices: np.ndarray, pad_value: Any) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``indices`` truncated or padded to ``width``, and the lengths kept."""
        indices = np.asarray(indices)
        kept = np.minimum(self.lengths[indices], self.width).astype(np.int32)
        rows = self.windows[self.starts[indices]]
        if pad_value == 0:  # a multiply by the mask is the cheapest way to zero the tail
            np.multiply(rows, self.offsets < kept[:, None], out=rows)
        else:
            rows[self.offsets >= kept[:, None]] = pad_value
        return rows, kept


def _take_ragged(
    data: Any, pad_to: dict[str, int], where: str, pad_value: float
) -> tuple[Any, dict[str, _RaggedColumn]]:
    """The fixed-size part of ``data`` and the variable-length columns named in ``pad_to``."""
    if not pad_to:
        return data, {}
    if not isinstance(data, Mapping):
        raise SourceError(
            "variable-length fields need a dict of columns",
            where=where,
            expected="data={'field': [array, ...], ...} with pad_to",
            found=type(data).__name__,
        )
    missing = sorted(set(pad_to) - set(data))
    if missing:
        raise SourceError(
            "pad_to names fields that are not in the data",
            where=where,
            expected=f"fields among {sorted(data)}",
            found=missing,
        )
    ragged = {
        f: _RaggedColumn(data[f], pad_to[f], f"{where}, field '{f}'", pad_value) for f in pad_to
    }
    return {k: v for k, v in data.items() if k not in pad_to}, ragged


def _as_columns(data: Any, where: str) -> dict[str, np.ndarray]:
    if isinstance(data, Mapping):
        columns = record_fields(data, source=where)
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        columns = _stack_records(data, where)
    else:
        raise SourceError(
            "unsupported data container",
            where=where,
            expected="a dict of arrays or a list of record dicts",
            found=type(data).__name__,
        )
    if not columns:
        raise SourceError("no fields", where=where, expected="at least one field", found="{}")
    lengths = {k: len(v) for k, v in columns.items()}
    first_field, n = next(iter(lengths.items()))
    for field, length in lengths.items():
        if length != n:
            raise SourceError(
                f"fields have different lengths (field '{field}')",
                where=where,
                expected=f"{n} records, the length of field '{first_field}'",
                found=length,
            )
    if n == 0:
        raise empty_source_error(where)
    return columns


def _stack_records(records: Sequence[Mapping[str, Any]], where: str) -> dict[str, np.ndarray]:
    if not records:
        raise empty_source_error(where, found="an empty list")
    rows: list[dict[str, np.ndarray]] = []
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise SourceError(
                "record is not a dict",
                where=f"{where}, record {i}",
                expected="a dict of field arrays",
                found=type(record).__name__,
            )
        row = record_fields(record, source=where, record=i)
        if rows:
            check_fields(
                row, rows[0], where=f"{where}, record {i}", reference="record 0", error=SourceError
            )
        rows.append(row)
    return {k: np.stack([row[k] for row in rows]) for k in rows[0]}
