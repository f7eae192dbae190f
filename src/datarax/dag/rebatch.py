"""`RebatchNode`: changes the batch size in the middle of the device plane.

Nodes after it see batches of ``target_batch_size`` records. Batches never span two
epochs: an epoch's records are regrouped, and its short last batch is kept (or
dropped with ``drop_remainder``). Inside the compiled function a chunk holds a whole
number of batches of every size in the pipeline (a multiple of their least common
multiple), so regrouping is a free reshape and the stream stays one computation.
The iterator's state is the position of the next output batch; the upstream
batches a restored iterator needs are recomputed, never stored.
"""

from __future__ import annotations

from typing import Any

from datarax.core.config import check_int
from datarax.core.errors import PipelineBuildError
from datarax.dag.base import Node, TraceContext


class RebatchNode(Node):
    """Regroups records into batches of ``target_batch_size``.

    Args:
        target_batch_size: Records per batch from here on.
        drop_remainder: Drop each epoch's short last batch of the new size.

    Example:
        >>> RebatchNode(64)
        Rebatch(64)
    """

    __slots__ = ("target_batch_size", "drop_remainder")
    target_batch_size: int
    drop_remainder: bool

    def __init__(self, target_batch_size: int, *, drop_remainder: bool = False) -> None:
        size = check_int(
            target_batch_size,
            where="RebatchNode",
            minimum=1,
            error=PipelineBuildError,
            message="invalid batch size",
        )
        self._init(target_batch_size=size, drop_remainder=bool(drop_remainder))

    def lower(self, flow: Any, ctx: TraceContext) -> Any:
        raise PipelineBuildError(
            "a RebatchNode changes the batches of the whole pipeline",
            where=repr(self),
            expected="RebatchNode at the top level of a pipeline",
            found="a RebatchNode inside a Parallel, Branch or operator",
        )

    def structure_key(self) -> Any:
        return ("rebatch", self.target_batch_size, self.drop_remainder)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "type": "RebatchNode",
            "target_batch_size": self.target_batch_size,
            "drop_remainder": self.drop_remainder,
        }

    def __repr__(self) -> str:
        drop = ", drop_remainder" if self.drop_remainder else ""
        return f"Rebatch({self.target_batch_size}{drop})"
