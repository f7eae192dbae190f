"""`Batch`: what a pipeline yields, read like a mapping of field name to array.

Example:
    >>> import numpy as np, jax.numpy as jnp
    >>> b = Batch({"image": jnp.zeros((4, 2)), "label": jnp.arange(4)},
    ...           record_ids=np.arange(4), epoch=0)
    >>> b["image"].shape, "label" in b, sorted(b.keys()), b.batch_size
    ((4, 2), True, ['image', 'label'], 4)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np


@jax.tree_util.register_pytree_node_class
class Batch(Mapping):
    """A batch of records: ``batch["image"]``, ``batch.keys()``, ``"label" in batch``.

    Attributes:
        data: Field name to array, each with the batch on axis 0.
        states: Per-record state fields left by operators (same layout as ``data``).
        record_ids: The source index of each record, in batch order (host NumPy;
            a traced ``int32`` array inside a fused training step).
        epoch: The epoch the batch belongs to (inside a fused training step, a
            traced ``uint32`` scalar: see :mod:`datarax.training`).
        valid: ``None`` when every record is real, else a host boolean mask that is
            ``False`` for records skipped as bad (their rows repeat another record
            of the batch; see :class:`~datarax.control.BadRecordPolicy`).
    """

    __slots__ = ("data", "states", "record_ids", "epoch", "valid")

    def __init__(
        self,
        data: dict[str, Any],
        *,
        states: dict[str, Any] | None = None,
        record_ids: np.ndarray | None = None,
        epoch: int | Any = 0,
        valid: np.ndarray | None = None,
    ) -> None:
        self.data = data
        self.states = states if states is not None else {}
        self.record_ids = record_ids
        self.epoch = epoch
        self.valid = valid

    @property
    def mask(self) -> np.ndarray:
        """``True`` for every real record: all ``True`` unless bad records were skipped."""
        if self.valid is not None:
            return self.valid
        return np.ones(self.batch_size, bool)

    @property
    def skipped(self) -> np.ndarray | None:
        """Ids of the records skipped as bad in this batch (``None`` when there are none)."""
        if self.valid is None or self.record_ids is None:
            return None
        return np.asarray(self.record_ids)[~self.valid]

    @property
    def batch_size(self) -> int:
        """Number of records in this batch (a short last batch reports its true size)."""
        if self.record_ids is not None:
            return len(self.record_ids)
        first = next(iter(jax.tree_util.tree_leaves(self.data)), None)
        return 0 if first is None else int(first.shape[0])

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}: {getattr(v, 'dtype', type(v).__name__)}{tuple(getattr(v, 'shape', ()))}"
            for k, v in self.data.items()
        )
        return f"Batch(size={self.batch_size}, epoch={self.epoch}, {{{fields}}})"

    def tree_flatten(self) -> tuple[tuple[Any, ...], Any]:
        # A Python epoch is static (part of the tree's structure); an array epoch (a
        # traced one inside a fused training scan) is a leaf like the data.
        if isinstance(self.epoch, (int, np.integer)):
            return (self.data, self.states, self.record_ids, self.valid), self.epoch
        return (self.data, self.states, self.record_ids, self.valid, self.epoch), _ARRAY_EPOCH

    @classmethod
    def tree_unflatten(cls, epoch: Any, children: tuple[Any, ...]) -> Batch:
        data, states, record_ids, valid = children[:4]
        if epoch is _ARRAY_EPOCH:
            epoch = children[4]
        return cls(data, states=states, record_ids=record_ids, epoch=epoch, valid=valid)


class _ArrayEpoch:
    """Marks, in a batch's tree structure, an epoch that is a leaf (an array)."""

    def __repr__(self) -> str:
        return "<array epoch>"


_ARRAY_EPOCH = _ArrayEpoch()
