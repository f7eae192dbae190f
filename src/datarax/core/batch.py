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
        record_ids: The source index of each record, in batch order (host NumPy).
        epoch: The epoch the batch belongs to.
    """

    __slots__ = ("data", "states", "record_ids", "epoch")

    def __init__(
        self,
        data: dict[str, Any],
        *,
        states: dict[str, Any] | None = None,
        record_ids: np.ndarray | None = None,
        epoch: int = 0,
    ) -> None:
        self.data = data
        self.states = states if states is not None else {}
        self.record_ids = record_ids
        self.epoch = epoch

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

    def tree_flatten(self):
        return (self.data, self.states, self.record_ids), self.epoch

    @classmethod
    def tree_unflatten(cls, epoch, children):
        data, states, record_ids = children
        return cls(data, states=states, record_ids=record_ids, epoch=epoch)
