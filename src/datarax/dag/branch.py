"""`Switch` and `Branch`: route each record (or each batch) to one of several paths.

Per record (the default) every path runs on the whole batch and each record takes
the output of its own path (a vectorised select: branch-free, so XLA keeps the
batch in one computation). Per batch (``per_batch=True``) one decision is taken
for each batch and only the chosen path runs (``lax.switch`` inside a loop over
the chunk's batches).

Paths must produce the same fields, shapes and dtypes; a mismatch is a build-time
:class:`PipelineBuildError`. Decisions must be deterministic functions of the
records: put randomness in operators, whose keys follow the records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from datarax.core.element import Element
from datarax.core.errors import PipelineBuildError
from datarax.dag.base import Node, Pair, TraceContext, as_node, lower_node, single
from datarax.operators.base import spec_of
from datarax.operators.element import function_identity


class Switch(Node):
    """Sends each record to ``paths[selector(element)]``.

    Args:
        selector: ``selector(element) -> int``; per record it sees one record, per
            batch an ``Element`` whose fields hold the whole batch and whose
            metadata holds ``record_ids``, ``epoch`` and ``valid`` (``False`` on the
            padding rows of an epoch's short last batch). Indices outside the
            paths are clipped to the nearest path.
        paths: The nodes (or operators; ``None`` passes records through).
        per_batch: Decide once per batch instead of once per record.

    Example:
        >>> import jax.numpy as jnp
        >>> from datarax.operators import ElementOperator, ElementOperatorConfig
        >>> double = ElementOperator(ElementOperatorConfig(),
        ...     fn=lambda e: e.update_data({"x": e.data["x"] * 2}))
        >>> node = Switch(lambda e: (e.data["x"] > 2).astype(jnp.int32), [None, double])
        >>> len(node.paths)
        2
    """

    __slots__ = ("selector", "paths", "per_batch")
    selector: Callable[[Element], Any]
    paths: tuple[Node, ...]
    per_batch: bool

    def __init__(
        self,
        selector: Callable[[Element], Any],
        paths: Sequence[Any],
        *,
        per_batch: bool = False,
    ) -> None:
        if not callable(selector):
            raise PipelineBuildError(
                "the decision function is not callable",
                where=type(self).__name__,
                expected="a function of an Element",
                found=type(selector).__name__,
            )
        nodes = tuple(as_node(p, type(self).__name__) for p in paths)
        if len(nodes) < 2:
            raise PipelineBuildError(
                "too few paths",
                where=type(self).__name__,
                expected="at least 2 paths",
                found=len(nodes),
            )
        self._init(selector=selector, paths=nodes, per_batch=bool(per_batch))

    # -- decisions -----------------------------------------------------------------------
    def path_index(self, element: Element) -> jax.Array:
        """The chosen path's index for one record (or one batch)."""
        value = jnp.asarray(self.selector(element))
        if not jnp.issubdtype(value.dtype, jnp.integer) and value.dtype != bool:
            raise PipelineBuildError(
                "the selector must return an integer",
                where=self.name,
                expected="an int32 path index",
                found=str(value.dtype),
            )
        return jnp.clip(value.astype(jnp.int32), 0, len(self.paths) - 1)

    def _decide(self, element: Element, scope: str) -> jax.Array:
        index = self.path_index(element)
        if index.shape != ():
            raise PipelineBuildError(
                f"one decision per {scope} is needed",
                where=self.name,
                expected="a scalar",
                found=f"shape {index.shape}",
            )
        return index

    # -- lowering ------------------------------------------------------------------------
    def lower(self, flow: Any, ctx: TraceContext) -> Pair:
        data, states = single(flow, self.name)
        if self.per_batch:
            return self._lower_per_batch(data, states, ctx)

        def decide(d, s, rid):
            return self._decide(Element(d, s, {"record_id": rid}), "record")

        index = jax.vmap(decide)(data, states, ctx.record_ids)
        outs = [single(lower_node(p, (data, states), ctx), self.name) for p in self.paths]
        self._check_alike(outs)
        return jax.tree_util.tree_map(lambda *leaves: _select(index, leaves), *outs)

    def _lower_per_batch(self, data, states, ctx: TraceContext) -> Pair:
        size = ctx.batch_size
        if size is None:
            raise PipelineBuildError(
                "a per-batch decision needs batches",
                where=self.name,
                expected="a Branch/Switch node in the pipeline (not inside an operator)",
                found="per_batch=True inside an operator",
            )
        rows = ctx.record_ids.shape[0]
        split = lambda x: x.reshape(rows // size, size, *x.shape[1:])  # noqa: E731
        batched = jax.tree_util.tree_map(split, (data, states, ctx.record_ids, ctx.valid))

        def one_batch(args):
            d, s, ids, valid = args
            meta = {"record_ids": ids, "epoch": ctx.epoch, "valid": valid}
            index = self._decide(Element(d, s, meta), "batch")
            sub = ctx.with_rows(ids, valid)
            fns = [
                lambda pair, p=p: single(lower_node(p, pair, sub), self.name) for p in self.paths
            ]
            self._check_alike([fn((d, s)) for fn in fns])  # traced only; XLA drops it
            return jax.lax.switch(index, fns, (d, s))

        out = jax.lax.map(one_batch, batched)
        return jax.tree_util.tree_map(lambda x: x.reshape(rows, *x.shape[2:]), out)

    def _check_alike(self, outs: list[Pair]) -> None:
        first = spec_of(outs[0])
        for i, out in enumerate(outs[1:], start=1):
            spec = spec_of(out)
            if spec != first:
                raise PipelineBuildError(
                    "paths produce different outputs",
                    where=self.name,
                    expected=f"{_describe(first)} (as path 0)",
                    found=f"{_describe(spec)} from path {i}",
                )

    # -- description ---------------------------------------------------------------------
    def children(self) -> tuple[Node, ...]:
        return self.paths

    def memoisable(self) -> str | None:
        if self.per_batch:
            return "it decides per batch, so a record's output depends on its batch"
        return super().memoisable()

    def structure_key(self) -> Any:
        keys = tuple(p.structure_key() for p in self.paths)
        return (type(self).__name__, self.selector, self.per_batch, keys)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "selector": function_identity(self.selector),
            "per_batch": self.per_batch,
            "paths": [p.fingerprint() for p in self.paths],
        }

    def __repr__(self) -> str:
        mode = ", per_batch" if self.per_batch else ""
        name = getattr(self.selector, "__name__", "selector")
        return f"{type(self).__name__}({name}{mode}: {', '.join(repr(p) for p in self.paths)})"


class Branch(Switch):
    """``true_path`` for records where ``condition(element)`` holds, else ``false_path``.

    Args:
        condition: ``condition(element) -> bool`` (a scalar per record, or per batch
            with ``per_batch=True``; see :class:`Switch` for what it sees).
        true_path: Node (or operator) for records meeting the condition.
        false_path: Node (or operator) for the others; ``None`` passes them through.
        per_batch: Decide once per batch instead of once per record.

    Example:
        >>> import jax.numpy as jnp
        >>> from datarax.operators import ElementOperator, ElementOperatorConfig
        >>> invert = ElementOperator(ElementOperatorConfig(),
        ...     fn=lambda e: e.update_data({"x": 1.0 - e.data["x"]}))
        >>> Branch(lambda e: e.data["x"] > 0.5, invert, None).per_batch
        False
    """

    __slots__ = ()

    def __init__(
        self,
        condition: Callable[[Element], Any],
        true_path: Any,
        false_path: Any = None,
        *,
        per_batch: bool = False,
    ) -> None:
        super().__init__(condition, [true_path, false_path], per_batch=per_batch)

    @property
    def condition(self) -> Callable[[Element], Any]:
        """The decision function."""
        return self.selector

    @property
    def true_path(self) -> Node:
        """The path of records meeting the condition."""
        return self.paths[0]

    @property
    def false_path(self) -> Node:
        """The path of the other records."""
        return self.paths[1]

    def path_index(self, element: Element) -> jax.Array:
        value = jnp.asarray(self.selector(element))
        return jnp.where(value.astype(bool), 0, 1).astype(jnp.int32)


def _select(index: jax.Array, leaves: Sequence[jax.Array]) -> jax.Array:
    which = index.reshape(index.shape + (1,) * (leaves[0].ndim - 1))
    return jax.lax.select_n(jnp.broadcast_to(which, leaves[0].shape), *leaves)


def _describe(spec: tuple) -> str:
    return ", ".join(f"{path}: {dtype}{list(shape)[1:]}" for path, shape, dtype in spec)
