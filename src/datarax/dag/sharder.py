"""`SharderNode`: the devices the pipeline's batches are placed on."""

from __future__ import annotations

from typing import Any

from jax.sharding import NamedSharding

from datarax.core.errors import PipelineBuildError
from datarax.dag.base import Node


class SharderNode(Node):
    """Places every output batch with a sharder (batch axis split over a mesh axis).

    ``pipeline >> SharderNode(ArraySharder(mesh))`` equals
    ``from_source(..., sharding=NamedSharding(mesh, PartitionSpec("data")))``. The
    placement never changes the values, so it is not part of the pipeline's
    fingerprint. It may sit anywhere at the top level of a pipeline.

    Args:
        sharder: An :class:`~datarax.sharding.ArraySharder` (or
            :class:`~datarax.sharding.JaxProcessSharder`), or a ``NamedSharding``.
    """

    __slots__ = ("sharder",)
    device = False
    sharder: Any

    def __init__(self, sharder: Any) -> None:
        self._init(sharder=as_sharder(sharder, "SharderNode"))

    def __repr__(self) -> str:
        return f"Sharder({self.sharder!r})"

    def fingerprint(self) -> dict[str, Any]:
        return {"type": self.name}


def as_sharder(value: Any, where: str) -> Any:
    """An :class:`~datarax.sharding.ArraySharder` from a sharder or a ``NamedSharding``."""
    from datarax.sharding.array import ArraySharder

    if isinstance(value, ArraySharder):
        return value
    if isinstance(value, NamedSharding):
        return ArraySharder.from_sharding(value)
    raise PipelineBuildError(
        "not a sharding",
        where=where,
        expected="an ArraySharder, a JaxProcessSharder or a NamedSharding",
        found=type(value).__name__,
    )
