"""`MemorySource`: records held in memory, on the host or on a device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jax
import numpy as np
from flax import nnx

from datarax.core.config import Config
from datarax.core.errors import ConfigError, SourceError
from datarax.sources.base import DataSource

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
    """

    placement: Placement = "auto"
    device_max_bytes: int = 2 * 1024**3

    def validate(self) -> None:
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
        self._host = nnx.data(_as_columns(data, self.name))
        self._length = len(next(iter(self._host.values())))
        nbytes = sum(a.nbytes for a in self._host.values())
        on_device = config.placement == "device" or (
            config.placement == "auto" and nbytes <= config.device_max_bytes
        )
        self._device = nnx.data(jax.device_put(self._host) if on_device else None)

    def __len__(self) -> int:
        return self._length

    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        return {k: jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for k, v in self._host.items()}

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {k: np.take(v, indices, axis=0) for k, v in self._host.items()}

    @property
    def device_arrays(self) -> dict[str, jax.Array] | None:
        return self._device


def _as_columns(data: Any, where: str) -> dict[str, np.ndarray]:
    if isinstance(data, Mapping):
        columns = {str(k): _as_array(v, where, str(k)) for k, v in data.items()}
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
        raise SourceError(
            "the source is empty", where=where, expected="at least one record", found="0 records"
        )
    return columns


def _as_array(value: Any, where: str, field: str, record: int | None = None) -> np.ndarray:
    place = f"{where}, field '{field}'" + (f", record {record}" if record is not None else "")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise SourceError(
            "value is not a rectangular array",
            where=place,
            expected="an array or nested lists of equal lengths",
            found=type(value).__name__,
        ) from exc
    if array.dtype.kind not in "biuf" or (record is None and array.ndim == 0):
        raise SourceError(
            "field is not a numeric array",
            where=place,
            expected="a bool, integer or floating array"
            + (" with a record axis" if record is None else ""),
            found=f"{type(value).__name__} of dtype {array.dtype} and shape {array.shape}",
        )
    if jax.config.read("jax_enable_x64"):
        return array
    if array.dtype == np.float64:
        return array.astype(np.float32)  # JAX computes in 32 bits unless x64 is enabled
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        narrow = np.int32 if array.dtype.kind == "i" else np.uint32
        info = np.iinfo(narrow)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise SourceError(
                "64-bit integers do not fit in 32 bits",
                where=place,
                expected=f"values in [{info.min}, {info.max}] (or jax_enable_x64)",
                found=f"values in [{array.min()}, {array.max()}]",
            )
        return array.astype(narrow)
    return array


def _stack_records(records: Sequence[Mapping[str, Any]], where: str) -> dict[str, np.ndarray]:
    if not records:
        raise SourceError(
            "the source is empty",
            where=where,
            expected="at least one record",
            found="an empty list",
        )
    first = records[0]
    if not isinstance(first, Mapping):
        raise SourceError(
            "record is not a dict",
            where=f"{where}, record 0",
            expected="a dict of field arrays",
            found=type(first).__name__,
        )
    keys = list(first)
    fields: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i, record in enumerate(records):
        if not isinstance(record, Mapping) or set(record) != set(keys):
            found = sorted(record) if isinstance(record, Mapping) else type(record).__name__
            raise SourceError(
                "record has different fields",
                where=f"{where}, record {i}",
                expected=sorted(keys),
                found=found,
            )
        for k in keys:
            value = _as_array(record[k], where, k, record=i)
            ref = fields[k][0] if fields[k] else value
            if value.shape != ref.shape or value.dtype != ref.dtype:
                raise SourceError(
                    "record field differs from record 0",
                    where=f"{where}, record {i}, field '{k}'",
                    expected=f"{ref.dtype}{ref.shape}",
                    found=f"{value.dtype}{value.shape}",
                )
            fields[k].append(value)
    return {k: np.stack(v) for k, v in fields.items()}
