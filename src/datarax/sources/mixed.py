"""`MixedSource`: several sources mixed by weight, deterministically and resumably.

The mix is a pure function of the position in the mixed stream. Positions are cut
into windows of ``window`` records; in every window component ``i`` gets exactly
``n_i`` records, the largest-remainder rounding of ``window * weight_i``, spread
evenly over the window (its ``j``-th record sits near ``(j + 1/2) * window / n_i``).
Component ``i`` reads its records in its own epochs: its ``k``-th record overall is
position ``k mod len_i`` of its epoch ``k // len_i``, shuffled per component epoch
when ``shuffle=True``. So a small component cycles through many epochs while a large
one is still in its first, and nothing but integers is needed to resume: the
pipeline's ``(epoch, position)`` fixes every component's place.

Epoch ``e`` of a pipeline over a mixed source of length ``L`` covers mixed positions
``e * L .. (e + 1) * L - 1``. With ``shuffle=False`` in ``from_source`` every run of
``window`` consecutive records has the exact proportions; with ``shuffle=True`` the
records of each epoch are permuted, and the proportions are exact over each epoch
when ``L`` is a multiple of ``window``.

A mix of array-backed components is read with one vectorised ``read`` per component
and chunk. A mix with a :class:`~datarax.sources.RecordSource` among its components
is a :class:`MixedRecordSource`, itself a record source: the pipeline's host plane
reads and decodes its records on its workers, under its bad-record policy, and a
bad record is named by its mixed record id and by its component's record.

Example:
    >>> import numpy as np
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> a = MemorySource(MemorySourceConfig(), data={"x": np.zeros(10, np.int32)})
    >>> b = MemorySource(MemorySourceConfig(), data={"x": np.ones(4, np.int32)})
    >>> mix = MixedSource(MixedSourceConfig(weights=(3, 1), window=4), sources=[a, b])
    >>> mix.read(np.arange(8))["x"].tolist()
    [0, 0, 1, 0, 0, 0, 1, 0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from datarax.core.config import Config, require_bool, require_positive, require_seed
from datarax.core.errors import ConfigError, DataraxError, SourceError, relocated
from datarax.core.fields import check_fields, fields_match, record_rows
from datarax.core.rng import mix64
from datarax.samplers.feistel import FeistelPermutation
from datarax.sources.base import DataSource
from datarax.sources.record import RecordSource, record_error

#: A raw record of a :class:`MixedRecordSource`: (component, component record id, raw).
MixedRecord = tuple[int, int, Any]

_MIX_STREAM = 0x4D4958  # "MIX": keeps component shuffles apart from other seed uses


@dataclass(frozen=True)
class MixedSourceConfig(Config):
    """How to mix the components.

    Args:
        weights: One positive weight per component (normalised to sum to 1).
        window: Records per window; proportions are exact over each window.
        num_records: Length of one epoch of the mix (default: the components' total).
        shuffle: Shuffle each component within each of its own epochs.
        seed: Seeds the component shuffles.
        source_field: If set, adds an int32 field of that name holding the index of
            the component each record came from.
    """

    weights: tuple[float, ...] = ()
    window: int = 1000
    num_records: int | None = None
    shuffle: bool = True
    seed: int = 0
    source_field: str | None = None

    def validate(self) -> None:
        weights = self.weights
        if isinstance(weights, np.ndarray) and weights.ndim == 1:
            weights = tuple(w.item() for w in weights)  # NumPy numbers as Python ones
        elif isinstance(weights, (list, tuple)):
            weights = tuple(w.item() if isinstance(w, np.generic) else w for w in weights)
        object.__setattr__(self, "weights", weights)
        if (
            not isinstance(weights, tuple)
            or not weights
            or not all(
                isinstance(w, (int, float))
                and not isinstance(w, bool)
                and w >= 0
                and math.isfinite(w)
                for w in weights
            )
        ):
            raise ConfigError(
                "invalid weights",
                where="MixedSourceConfig.weights",
                expected="one finite weight >= 0 per source",
                found=repr(weights),
            )
        if sum(weights) <= 0:
            raise ConfigError(
                "weights sum to zero",
                where="MixedSourceConfig.weights",
                expected="at least one positive weight",
                found=repr(weights),
            )
        require_positive(self, "window")
        require_positive(self, "num_records", allow_none=True)
        require_seed(self)
        require_bool(self, "shuffle")


class MixedSource(DataSource, pytree=False):
    """Reads several sources with the same fields, mixed by weight.

    When a component is a :class:`~datarax.sources.RecordSource`, the mix built is a
    :class:`MixedRecordSource` (a ``MixedSource`` and a ``RecordSource``), read
    record by record on the pipeline's workers; the records are the same.

    Args:
        config: Weights, window, length and shuffling.
        sources: The components (a list or tuple), each a :class:`DataSource` with the
            same fields, shapes and dtypes.
        name: Shown in errors.
    """

    config_type = MixedSourceConfig
    config: MixedSourceConfig

    def __new__(cls, *args: Any, **kwargs: Any) -> MixedSource:
        # A mix with record sources among its components is itself a record source.
        sources = kwargs.get("sources")
        records = isinstance(sources, Sequence) and any(
            isinstance(s, RecordSource) for s in sources
        )
        return super().__new__(MixedRecordSource if cls is MixedSource and records else cls)

    def __init__(
        self, config: MixedSourceConfig, *, sources: Sequence[DataSource], name: str | None = None
    ) -> None:
        super().__init__(config, name=name)
        if not isinstance(sources, Sequence) or isinstance(sources, (str, bytes)):
            raise SourceError(
                "the components are not a sequence",
                where=self.name,
                expected="a list or tuple of data sources",
                found=type(sources).__name__,
            )
        sources = list(sources)
        if len(sources) != len(config.weights):
            raise ConfigError(
                "one weight per source",
                where=self.name,
                expected=f"{len(sources)} weights",
                found=f"{len(config.weights)} weights",
            )
        for i, source in enumerate(sources):
            if not isinstance(source, DataSource):
                raise SourceError(
                    "component is not a data source",
                    where=f"{self.name}, component {i}",
                    expected="a datarax DataSource",
                    found=type(source).__name__,
                )
        self._component_spec = _same_fields(sources, self.name)
        field = config.source_field
        if field is not None and field in self._component_spec:
            raise ConfigError(
                "source_field would overwrite a field of the records",
                where="MixedSourceConfig.source_field",
                expected=f"a name other than the components' fields {sorted(self._component_spec)}",
                found=repr(field),
            )
        counts = window_counts(config.weights, config.window)
        self._sources = tuple(sources)
        self._lengths = np.array([len(s) for s in sources], np.int64)
        empty = [i for i, c in enumerate(counts) if c > 0 and self._lengths[i] == 0]
        if empty:
            raise SourceError(
                "a weighted component is empty",
                where=f"{self.name}, component {empty[0]}",
                expected="at least one record",
                found="0 records",
            )
        self._counts = counts
        self._slot_component, self._slot_rank = _interleave(counts)
        self._length = config.num_records or int(self._lengths.sum())

    @property
    def sources(self) -> tuple[DataSource, ...]:
        """The components, in order."""
        return self._sources

    @property
    def window_counts(self) -> tuple[int, ...]:
        """Records each component gets in every window."""
        return tuple(int(c) for c in self._counts)

    def __len__(self) -> int:
        return self._length

    def element_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
        spec = dict(self._component_spec)
        if self.config.source_field is not None:
            spec[self.config.source_field] = jax.ShapeDtypeStruct((), np.dtype(np.int32))
        return spec

    def locate(self, positions: np.ndarray, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Component and component record id of each mixed position of ``epoch``."""
        q = np.asarray(positions, np.int64) + np.int64(epoch) * self._length
        window, slot = np.divmod(q, self.config.window)
        component = self._slot_component[slot]
        k = window * self._counts[component] + self._slot_rank[slot]
        lengths = self._lengths[component]
        comp_epoch, offset = np.divmod(k, np.maximum(lengths, 1))
        ids = offset.copy()
        if self.config.shuffle:
            for c in np.unique(component):
                for e in np.unique(comp_epoch[component == c]):
                    sel = (component == c) & (comp_epoch == e)
                    ids[sel] = self._permutation(int(c), int(e))(offset[sel])
        return component.astype(np.int32), ids

    def _permutation(self, component: int, epoch: int) -> FeistelPermutation:
        key = mix64(_MIX_STREAM, self.config.seed, component, epoch)
        return FeistelPermutation(int(self._lengths[component]), key)

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Records at mixed positions ``indices`` of epoch 0 (see :meth:`read_epoch`)."""
        return self.read_epoch(indices, 0)

    def read_epoch(self, indices: np.ndarray, epoch: int) -> dict[str, np.ndarray]:
        """Records at mixed positions ``indices`` of the pipeline's epoch ``epoch``."""
        component, ids = self.locate(indices, epoch)
        spec = self.element_spec()
        out = {k: np.empty((len(ids), *s.shape), s.dtype) for k, s in spec.items()}
        for c, sel in _by_component(component):
            part = self._sources[c].read(ids[sel])
            for field, values in part.items():
                out[field][sel] = values
        if self.config.source_field is not None:
            out[self.config.source_field] = component
        return out

    def fingerprint(self) -> dict[str, Any]:
        return {
            **super().fingerprint(),
            "config": {**self.config.to_dict(), "weights": list(self.config.weights)},
            "sources": [s.fingerprint() for s in self._sources],
        }


def window_counts(weights: Sequence[float], window: int) -> np.ndarray:
    """Records per component in a window: largest-remainder rounding of ``window * w``.

    Example:
        >>> window_counts([1, 1, 1], 10).tolist()
        [4, 3, 3]
    """
    w = np.asarray(weights, np.float64)
    exact = w / w.sum() * window
    counts = np.floor(exact).astype(np.int64)
    remainder = exact - counts
    order = np.lexsort((np.arange(len(w)), -remainder))  # largest remainder, then index
    counts[order[: window - int(counts.sum())]] += 1
    return counts


def _interleave(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Component and rank of every slot of a window, each component spread evenly."""
    component = np.repeat(np.arange(len(counts)), counts)
    rank = np.concatenate([np.arange(c) for c in counts]).astype(np.int64)
    place = (rank + 0.5) / np.maximum(counts[component], 1)
    order = np.lexsort((component, place))
    return component[order], rank[order]


def _by_component(component: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Each component present in ``component`` and the rows that hold its records."""
    return [(c, np.flatnonzero(component == c)) for c in np.unique(component).tolist()]


def _same_fields(sources: list[DataSource], where: str) -> dict[str, jax.ShapeDtypeStruct]:
    """The fields every component has (component 0's), after checking that they all do."""
    if not sources:
        raise SourceError("no sources", where=where, expected="at least one source", found="[]")
    first = sources[0].element_spec()
    for i, source in enumerate(sources[1:], start=1):
        check_fields(
            source.element_spec(),
            first,
            where=f"{where}, component {i} ({source.name})",
            subject="component",
            reference="component 0",
            error=SourceError,
        )
    return dict(first)


class MixedRecordSource(MixedSource, RecordSource):
    """A :class:`MixedSource` with record sources among its components, read record by record.

    ``MixedSource(...)`` builds one when a component is a
    :class:`~datarax.sources.RecordSource`. Its raw records are
    ``(component, component record id, raw record)`` (:data:`MixedRecord`); each is
    decoded by its component's :meth:`~datarax.sources.RecordSource.decode` (rows of
    array-backed components are taken as they are) and gets the ``source_field``. So
    the pipeline's host plane reads and decodes them on its workers and applies its
    bad-record policy; a bad record's error names the mixed record id, the component
    and the component's record, and a skipped record is counted by its mixed id.
    The records equal those :meth:`read_epoch` reads.

    Example:
        >>> import numpy as np
        >>> from datarax.sources import MemorySource, MemorySourceConfig, SequenceSource
        >>> a = MemorySource(MemorySourceConfig(), data={"x": np.zeros(4, np.int32)})
        >>> b = SequenceSource([{"x": np.int32(7)}, {"x": np.int32(8)}])
        >>> mix = MixedSource(MixedSourceConfig(weights=(1, 1), window=2, shuffle=False),
        ...                   sources=[a, b])
        >>> type(mix).__name__, mix.read_records(np.array([1]))
        ('MixedRecordSource', [(1, 0, {'x': np.int32(7)})])
        >>> mix.decode(mix.read_records(np.array([3]))[0], 3)
        {'x': array(8, dtype=int32)}
    """

    def read_records(self, indices: np.ndarray) -> list[MixedRecord]:
        """The raw records at mixed positions ``indices`` of epoch 0."""
        return self.read_records_epoch(indices, 0)

    def read_records_epoch(self, indices: np.ndarray, epoch: int) -> list[MixedRecord]:
        """The raw records at mixed positions ``indices`` of the pipeline's epoch ``epoch``.

        Each component reads its records in one call (one gather for array-backed
        components, whose rows become dicts of the row's values).
        """
        positions = np.asarray(indices, np.int64).reshape(-1)
        component, ids = self.locate(positions, epoch)
        out: list[Any] = [None] * positions.size
        for c, rows in _by_component(component):
            source = self._sources[c]
            try:
                if isinstance(source, RecordSource):
                    raws = list(source.read_records(ids[rows]))
                else:
                    raws = record_rows(source.read(ids[rows]))
            except Exception as exc:
                if rows.size != 1:  # the host plane reads records one by one to name the bad ones
                    raise
                raise self._located(exc, int(positions[rows[0]]), c, int(ids[rows[0]])) from exc
            for row, record_id, raw in zip(rows.tolist(), ids[rows].tolist(), raws, strict=True):
                out[row] = (c, record_id, raw)
        return out

    def decode(self, raw: Any, index: int) -> dict[str, np.ndarray]:
        """The record of mixed position ``index``: its component's decoding, and ``source_field``.

        Raises:
            DataraxError: naming this source and record ``index``, then the component
                and its record, when the component cannot decode it or it does not
                match the component's fields.
        """
        c, record_id, value = raw
        source = self._sources[c]
        try:
            if isinstance(source, RecordSource):
                record = source.decode(value, record_id)
            else:
                record = {k: np.asarray(v) for k, v in value.items()}
            check_fields(record, self._component_spec, where=f"{source.name}, record {record_id}")
        except Exception as exc:
            raise self._located(exc, index, c, record_id) from exc
        if self.config.source_field is not None:
            record[self.config.source_field] = np.asarray(c, np.int32)
        return record

    def decode_batch(self, raws: Sequence[Any], indices: np.ndarray) -> dict[str, Any] | None:
        """The records decoded together when every component's part can be (else ``None``).

        Rows of array-backed components are stacked; record components decode their
        part with their own :meth:`~datarax.sources.RecordSource.decode_batch`.
        """
        spec = self._component_spec
        component = np.fromiter((r[0] for r in raws), np.int32, len(raws))
        out = {k: np.empty((len(raws), *s.shape), s.dtype) for k, s in spec.items()}
        for c, rows in _by_component(component):
            source = self._sources[c]
            values = [raws[i][2] for i in rows.tolist()]
            if isinstance(source, RecordSource):
                ids = np.fromiter((raws[i][1] for i in rows.tolist()), np.int64, rows.size)
                part = source.decode_batch(values, ids)
            else:
                part = {k: np.stack([v[k] for v in values]) for k in spec}
            if part is None or not fields_match(part, spec, leading=(rows.size,)):
                return None
            for field, array in part.items():
                out[field][rows] = array
        if self.config.source_field is not None:
            out[self.config.source_field] = component
        return out

    def _located(self, exc: BaseException, index: int, c: int, record_id: int) -> DataraxError:
        """``exc`` as an error naming this source's record ``index``, then its component's."""
        inner = record_error(exc, self._sources[c].name, record_id)
        return relocated(inner, f"{self.name}, record {index} (component {c}: {inner.where})")
