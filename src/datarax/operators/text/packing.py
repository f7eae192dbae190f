"""Sequence packing: variable-length token sequences into rows of ``seq_len`` with segments.

Language-model pre-training wastes little compute on padding when several short
sequences share one row. Each row holds whole segments (a sequence, or a piece of a
long one): ``segment_ids`` numbers them ``1, 2, ...`` in the row (``0`` is padding)
and ``positions`` counts from 0 in every segment, so attention masks and position
embeddings never mix two sequences.

Sequences are placed in the order they come, each into an open row:

- ``first_fit``: the first row (oldest) with room for it;
- ``best_fit``: the row with the least room left that still fits it (the oldest of
  equal ones);

and a new row is opened when none fits. Rows come out in the order they were
opened. The packing is a pure function of the sequences and their order.

Example:
    >>> tokens = np.array([[1, 2, 3], [4, 0, 0], [5, 6, 0]], np.int32)
    >>> rows = pack_sequences(tokens, np.array([3, 1, 2]), np.arange(3), PackConfig(seq_len=4))
    >>> rows.tokens.tolist()
    [[1, 2, 3, 4], [5, 6, 0, 0]]
    >>> rows.segment_ids.tolist(), rows.positions.tolist()
    ([[1, 1, 1, 2], [1, 1, 0, 0]], [[0, 1, 2, 0], [0, 1, 0, 0]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from datarax.core.config import Config, require_choice, require_positive
from datarax.core.errors import ConfigError, RecordError
from datarax.operators.text.fields import require_field_name, require_token_id

Algorithm = Literal["first_fit", "best_fit"]


@dataclass(frozen=True)
class PackConfig(Config):
    """Args:
    seq_len: Tokens per packed row.
    batch_size: Packed rows per output batch.
    field: The token field (``(length,)`` integers per record); packed tokens keep
        its name.
    length_field: The number of real tokens of each record (default
        ``<field>_length``, as ``MemorySourceConfig(pad_to=)`` and ``Tokenize`` write it).
    algorithm: ``"first_fit"`` or ``"best_fit"`` (see the module).
    long_sequences: ``"split"`` a sequence longer than ``seq_len`` into pieces of
        ``seq_len`` (the last one shorter), each its own segment, or ``"truncate"``
        it to its first ``seq_len`` tokens.
    window_batches: Upstream batches packed together (rows are closed at the end of
        a window and of an epoch): larger windows fill rows better.
    pad_id: Token of the padding.
    segment_field, position_field: Names of the segment-id and position fields.
    """

    seq_len: int = 128
    batch_size: int = 8
    field: str = "tokens"
    length_field: str | None = None
    algorithm: Algorithm = "first_fit"
    long_sequences: Literal["split", "truncate"] = "split"
    window_batches: int = 4
    pad_id: int = 0
    segment_field: str = "segment_ids"
    position_field: str = "positions"

    def validate(self) -> None:
        require_positive(self, "seq_len")
        require_positive(self, "batch_size")
        require_positive(self, "window_batches")
        require_field_name(self, "field")
        require_field_name(self, "length_field", allow_none=True)
        require_field_name(self, "segment_field")
        require_field_name(self, "position_field")
        require_token_id(self, "pad_id")
        require_choice(self, "algorithm", ("first_fit", "best_fit"))
        require_choice(self, "long_sequences", ("split", "truncate"))
        outputs = [self.field, self.segment_field, self.position_field]
        if len(set(outputs)) != 3:
            raise ConfigError(
                "output fields must have distinct names",
                where="PackConfig",
                expected="distinct field, segment_field and position_field",
                found=repr(outputs),
            )

    @property
    def lengths(self) -> str:
        """The length field's name."""
        return self.length_field or f"{self.field}_length"


@dataclass(frozen=True)
class PackedRows:
    """Packed rows, all ``int32``.

    Attributes:
        tokens: ``(rows, seq_len)`` token ids, ``pad_id`` after the last segment.
        segment_ids: ``(rows, seq_len)``: 1 for the first segment of a row, 2 for the
            next, ..., 0 for padding.
        positions: ``(rows, seq_len)``: the index of each token in its segment (0 in
            padding).
        record_ids: ``(rows,)``: the record of each row's first segment.
    """

    tokens: np.ndarray
    segment_ids: np.ndarray
    positions: np.ndarray
    record_ids: np.ndarray

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        return int(self.tokens.shape[0])


def pack_sequences(
    tokens: np.ndarray, lengths: np.ndarray, record_ids: np.ndarray, config: PackConfig
) -> PackedRows:
    """Pack the first ``lengths[i]`` tokens of each row of ``tokens``, in order.

    Args:
        tokens: ``(n, width)`` integer ids.
        lengths: ``(n,)`` real tokens per row, in ``[0, width]`` (empty rows add nothing).
        record_ids: ``(n,)`` the record of each row.
        config: Row length, algorithm and what to do with long sequences.

    Raises:
        RecordError: naming the record when a length is outside ``[0, width]``.
    """
    tokens = np.asarray(tokens)
    lengths = np.asarray(lengths, np.int64)
    record_ids = np.asarray(record_ids, np.int64)
    width, seq_len = tokens.shape[1], config.seq_len
    bad = np.flatnonzero((lengths < 0) | (lengths > width))
    if bad.size:
        raise RecordError(
            "sequence length out of range",
            where=f"packing, record {int(record_ids[bad[0]])}, field '{config.lengths}'",
            expected=f"a length in [0, {width}]",
            found=int(lengths[bad[0]]),
        )
    rows, starts, sizes = _pieces(lengths, seq_len, config.long_sequences)
    bins, offsets, segments = assign_rows(sizes, seq_len, config.algorithm)
    num_rows = int(bins.max()) + 1 if bins.size else 0
    packed = PackedRows(
        np.full((num_rows, seq_len), config.pad_id, np.int32),
        np.zeros((num_rows, seq_len), np.int32),
        np.zeros((num_rows, seq_len), np.int32),
        np.zeros(num_rows, np.int32),
    )
    pieces = _Pieces(rows, starts, sizes, bins, offsets, segments)
    if sizes.size and sizes.sum() >= _SLICED_PIECE_TOKENS * sizes.size:
        _place_sliced(packed, tokens, pieces)
    else:
        _place_gathered(packed, tokens, pieces)
    first_pieces = np.flatnonzero(segments == 0)
    packed.record_ids[bins[first_pieces]] = record_ids[rows[first_pieces]]
    return packed


#: Mean piece length from which pieces are copied one slice at a time: a slice costs
#: about as much as gathering 64 tokens one by one (measured on CPU).
_SLICED_PIECE_TOKENS = 64


class _Pieces(NamedTuple):
    """Where each piece comes from (source row, start, size) and goes (row, offset, segment)."""

    rows: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    bins: np.ndarray
    offsets: np.ndarray
    segments: np.ndarray


def _place_sliced(packed: PackedRows, tokens: np.ndarray, p: _Pieces) -> None:
    """Copy each piece as one slice (long pieces: a few Python steps per piece)."""
    ramp = np.arange(packed.tokens.shape[1], dtype=np.int32)
    columns = zip(
        p.rows.tolist(),
        p.starts.tolist(),
        p.sizes.tolist(),
        p.bins.tolist(),
        p.offsets.tolist(),
        p.segments.tolist(),
        strict=True,
    )
    for row, start, size, out, offset, segment in columns:
        packed.tokens[out, offset : offset + size] = tokens[row, start : start + size]
        packed.segment_ids[out, offset : offset + size] = segment + 1
        packed.positions[out, offset : offset + size] = ramp[:size]


def _place_gathered(packed: PackedRows, tokens: np.ndarray, p: _Pieces) -> None:
    """Gather every token at once (short pieces: a few NumPy passes over all tokens)."""
    seq_len, width = packed.tokens.shape[1], tokens.shape[1]
    begin = np.cumsum(p.sizes) - p.sizes  # each piece's first token among all tokens
    step = np.arange(int(p.sizes.sum()), dtype=np.int64)
    target = np.repeat(p.bins * seq_len + p.offsets - begin, p.sizes) + step
    source = np.repeat(p.rows * width + p.starts - begin, p.sizes) + step
    packed.tokens.ravel()[target] = tokens.ravel()[source]
    packed.segment_ids.ravel()[target] = np.repeat(p.segments + 1, p.sizes)
    packed.positions.ravel()[target] = step - np.repeat(begin, p.sizes)


def assign_rows(
    sizes: np.ndarray, capacity: int, algorithm: Algorithm
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, offset in the row and segment index in the row of each item, placed in order.

    Every size must be in ``[1, capacity]``. Rows are numbered in the order they open.
    """
    # Plain Python lists: a window holds a few hundred items and a few dozen rows,
    # where one NumPy call per item costs more than the scan it replaces.
    free: list[int] = []  # room left in each row
    count: list[int] = []  # segments in each row
    open_rows: list[int] = []  # rows with room left, in the order they opened
    bins, offsets, segments = [], [], []
    first_fit = algorithm == "first_fit"
    for size in sizes.tolist():
        row = -1
        if first_fit:
            for r in open_rows:
                if free[r] >= size:
                    row = r
                    break
        else:  # the fullest row it fits in; the oldest of equally full ones
            best = capacity + 1
            for r in open_rows:
                if size <= free[r] < best:
                    row, best = r, free[r]
        if row < 0:
            row = len(free)
            free.append(capacity)
            count.append(0)
            open_rows.append(row)
        bins.append(row)
        offsets.append(capacity - free[row])
        segments.append(count[row])
        free[row] -= size
        count[row] += 1
        if free[row] == 0:
            open_rows.remove(row)
    as_array = lambda values: np.asarray(values, np.int64)  # noqa: E731
    return as_array(bins), as_array(offsets), as_array(segments)


def _pieces(
    lengths: np.ndarray, seq_len: int, long_sequences: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source row, start and size of every piece to pack, in order (no empty pieces)."""
    if long_sequences == "truncate":
        rows = np.flatnonzero(lengths > 0)
        return rows, np.zeros(rows.size, np.int64), np.minimum(lengths[rows], seq_len)
    counts = -(-lengths // seq_len)  # pieces per sequence (0 for an empty one)
    rows = np.repeat(np.arange(lengths.size), counts)
    index = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = index * seq_len
    return rows, starts, np.minimum(lengths[rows] - starts, seq_len)
