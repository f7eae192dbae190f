"""The iterator state: a few integers, JSON-able, checked when restored.

A state is the position of the next batch an iterator hands out::

    {"format": "datarax.pipeline_iterator", "version": 2,
     "pipeline": <records digest>, "first_epoch": 0, "epoch": 3,
     "position": 1024, "origin": 0, "batching": [[32, false]],
     "skipped": [...]}        # only with bad_records="skip"

``position`` counts records from the start of ``epoch`` in the global stream;
``origin`` is where that epoch's batches start (0 unless it was restored with
other batch sizes); ``batching`` is ``[batch size, drop_remainder]`` of every
stage, so a state saved with other batch sizes is recognised and the rest of its
epoch is batched from its position.

Example:
    >>> from datarax.batching import Geometry
    >>> grid = Geometry(10, ((4, False),))
    >>> state = {"format": STATE_FORMAT, "version": STATE_VERSION, "pipeline": "d",
    ...          "first_epoch": 0, "epoch": 0, "position": 4, "origin": 0,
    ...          "batching": batching_of(grid)}
    >>> validate_state(state, "d", grid)
    Cursor(first_epoch=0, epoch=0, position=4, origin=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datarax.batching.geometry import Geometry
from datarax.core.config import check_bool, check_int
from datarax.core.errors import StateError

STATE_FORMAT = "datarax.pipeline_iterator"
STATE_VERSION = 2
#: The entries a state may hold (``skipped`` only with ``bad_records="skip"``).
STATE_KEYS = frozenset(
    ("format", "version", "pipeline", "first_epoch", "epoch", "position", "origin")
    + ("batching", "skipped")
)


@dataclass(frozen=True)
class Cursor:
    """Where an iterator stands: its first epoch, and the next batch's epoch and position.

    Attributes:
        first_epoch: The epoch the iterator started at (``reset`` goes back to it).
        epoch: The epoch of the next batch.
        position: The position of the next batch in its epoch (records).
        origin: Where this epoch's batches start (0 unless resumed elastically).
    """

    first_epoch: int
    epoch: int
    position: int
    origin: int


def batching_of(geometry: Geometry) -> list[list[int | bool]]:
    """The batch size and ``drop_remainder`` of every stage, as saved in states."""
    return [[size, drop] for size, drop in geometry.stages]


def validate_skipped(state: dict[str, Any], num_records: int) -> list[int]:
    """The record ids a state says were skipped in its epoch (checked)."""
    skipped = state.get("skipped", [])
    n = num_records
    if not isinstance(skipped, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in skipped
    ):
        raise StateError(
            "malformed list of skipped records",
            where="PipelineIterator.set_state",
            expected=f"'skipped': a list of record ids in [0, {n})",
            found=repr(skipped)[:200],
        )
    return list(skipped)


def validate_state(state: Any, records_digest: str, geometry: Geometry) -> Cursor:
    """The cursor a state points at, checked against the pipeline that restores it.

    Args:
        state: What :meth:`PipelineIterator.get_state` returned.
        records_digest: The restoring pipeline's ``records_digest()``.
        geometry: The restoring pipeline's global batch grid.

    Raises:
        StateError: The state is not one, is malformed, out of range, between two
            batches, or was saved by a pipeline producing other records.
    """
    where = "PipelineIterator.set_state"
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise StateError(
            "not a datarax pipeline iterator state",
            where=where,
            expected=f"a dict with format '{STATE_FORMAT}'",
            found=repr(state)[:200],
        )
    if state.get("version") != STATE_VERSION:
        raise StateError(
            "unsupported state version",
            where=where,
            expected=STATE_VERSION,
            found=_entry(state, "version"),
        )
    digest = records_digest
    if state.get("pipeline") != digest:
        raise StateError(
            "the state was saved by a pipeline that produces other records",
            where=where,
            expected=f"records fingerprint {digest}",
            found=_entry(state, "pipeline"),
            hint="Build the pipeline with the same source, order, seed, operators and "
            "nodes (batch sizes, prefetch and the number of epochs may differ)",
        )
    unknown = sorted(set(state) - STATE_KEYS)
    if unknown:
        raise StateError(
            "unknown entries in the state",
            where=where,
            expected=f"entries among {sorted(STATE_KEYS)}",
            found=unknown,
        )
    try:
        first, epoch, position, origin = (
            check_int(state[k], where=f"{where}['{k}']", error=StateError)
            for k in ("first_epoch", "epoch", "position", "origin")
        )
        batching = [
            [
                check_int(size, where=f"{where}['batching']", minimum=1, error=StateError),
                check_bool(drop, where=f"{where}['batching']", error=StateError),
            ]
            for size, drop in state["batching"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(
            "malformed state",
            where=where,
            expected="integer 'first_epoch', 'epoch', 'position', 'origin' and a non-empty "
            "'batching' list of [batch size > 0, drop_remainder as a bool]",
            found=repr(state)[:300],
        ) from exc
    if not batching:
        raise StateError(
            "no batch stage",
            where=f"{where}['batching']",
            expected="one [batch size, drop_remainder] per batch stage",
            found="[]",
        )
    num_records = geometry.num_records
    if not (0 <= first <= epoch and 0 <= origin <= position <= num_records):
        raise StateError(
            "state out of range",
            where=where,
            expected=f"0 <= first_epoch <= epoch and 0 <= origin <= position <= {num_records}",
            found=f"first_epoch={first}, epoch={epoch}, position={position}, origin={origin}",
        )
    if batching != batching_of(geometry):
        origin = position  # elastic: the rest of this epoch is batched from here
    grid = geometry.remaining(origin)
    local = position - origin
    if local % grid.batch_size != 0:
        raise StateError(
            "position between two batches",
            where=where,
            expected=f"a position on the batch grid (origin {origin} + a multiple of "
            f"{grid.batch_size})",
            found=f"position={position}",
        )
    if local >= grid.epoch_end:  # nothing left in this epoch with these batches
        return Cursor(first, epoch + 1, 0, 0)
    return Cursor(first, epoch, position, origin)


def _entry(state: dict[str, Any], key: str) -> str:
    """What a state holds under ``key``, for an error message."""
    return repr(state[key]) if key in state else f"no '{key}' entry"
