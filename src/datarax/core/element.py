"""`Element`: one record as it flows through operators.

An element is a pytree with three dicts: ``data`` (the arrays a model consumes),
``state`` (per-record values an operator wants to pass to a later one) and
``metadata`` (``record_id`` and other facts about the record). Inside a pipeline,
element operators are ``vmap``-ped, so each leaf is one record's array.

Example:
    >>> import jax.numpy as jnp
    >>> e = Element(data={"image": jnp.ones((2, 2))})
    >>> e2 = e.update_data({"image": e.data["image"] * 2})
    >>> float(e2.data["image"][0, 0]), float(e.data["image"][0, 0])
    (2.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jax


@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True)
class Element:
    """One record: ``data``, ``state`` and ``metadata`` dicts. Immutable."""

    data: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def update_data(self, updates: Mapping[str, Any]) -> Element:
        """A new element whose ``data`` has ``updates`` merged in (fields added or replaced)."""
        return Element({**self.data, **updates}, self.state, self.metadata)

    def update_state(self, updates: Mapping[str, Any]) -> Element:
        """A new element whose ``state`` has ``updates`` merged in."""
        return Element(self.data, {**self.state, **updates}, self.metadata)

    def replace(self, **changes: Any) -> Element:
        """A new element with whole attributes replaced: ``e.replace(data={...})``."""
        unknown = set(changes) - {"data", "state", "metadata"}
        if unknown:
            raise TypeError(f"Element.replace: unknown attributes {sorted(unknown)}")
        return Element(
            dict(changes.get("data", self.data)),
            dict(changes.get("state", self.state)),
            dict(changes.get("metadata", self.metadata)),
        )

    def tree_flatten(self) -> tuple[tuple[Any, Any, Any], None]:
        return (self.data, self.state, self.metadata), None

    @classmethod
    def tree_unflatten(cls, _aux: None, children: tuple[Any, Any, Any]) -> Element:
        return cls(*children)
