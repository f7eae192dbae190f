"""`Switch` and `Branch`: route each record (or each batch) to one of several paths.

Per record (the default) every path runs on the whole batch and each record takes
the output of its own path (a vectorised select: branch-free, so XLA keeps the
batch in one computation). Per batch (``per_batch=True``) one decision is taken
for each batch and only the chosen path runs (``lax.switch`` inside a loop over
the chunk's batches).

Paths must produce the same fields, shapes and dtypes; a mismatch is a build-time
:class:`PipelineBuildError`. Decisions must be deterministic functions of the
records: put randomness in operators, whose keys follow the records. The per-record
choice and select are those of :mod:`datarax.operators.combine`, which
:class:`~datarax.operators.CompositeOperator` uses too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp

from datarax.core.element import Element
from datarax.core.errors import PipelineBuildError
from datarax.core.identity import function_identity
from datarax.dag.base import Node, Pair, TraceContext, as_node, lower_node, single
from datarax.operators.base import Fields
from datarax.operators.combine import (
    check_same_outputs,
    choose_path,
    choose_per_record,
    select_per_record,
    single_choice,
)


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
        return choose_path(self.selector(element), len(self.paths), self.name)

    # -- lowering ------------------------------------------------------------------------
    def lower(self, flow: Any, ctx: TraceContext) -> Pair:
        data, states = single(flow, self.name)
        if self.per_batch:
            return self._lower_per_batch(data, states, ctx)

        index = choose_per_record(self.path_index, data, states, ctx.record_ids, self.name)
        outs = [single(lower_node(p, (data, states), ctx), self.name) for p in self.paths]
        return select_per_record(index, outs, self.name)

    def _lower_per_batch(self, data: Fields, states: Fields, ctx: TraceContext) -> Pair:
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

        def one_batch(args: tuple[Any, ...]) -> Pair:
            d, s, ids, valid = args
            meta = {"record_ids": ids, "epoch": ctx.epoch, "valid": valid}
            index = single_choice(self.path_index(Element(d, s, meta)), "batch", self.name)
            sub = ctx.with_rows(ids, valid)

            def run_path(pair: Pair, path: Node) -> Pair:
                return single(lower_node(path, pair, sub), self.name)

            fns = [functools.partial(run_path, path=p) for p in self.paths]
            # Traced only, to check the paths; XLA drops the unused outputs.
            check_same_outputs([fn((d, s)) for fn in fns], self.name)
            return cast(Pair, jax.lax.switch(index, fns, (d, s)))

        out = jax.lax.map(one_batch, batched)
        return cast(Pair, jax.tree_util.tree_map(lambda x: x.reshape(rows, *x.shape[2:]), out))

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
