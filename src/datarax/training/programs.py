"""The compiled programs of a fused loop: a pipeline's transform and a train step in one call.

Two programs per (pipeline structure, step, steps per call):

- ``scan(leaves, source, carry, ids, epoch, count)`` computes the batches of up to
  ``length`` steps of one epoch the way the iterator computes a chunk (the
  pipeline's device plane vectorised over all their records, keys from
  ``(seed, epoch, record id)``), then runs the train step on the first ``count``
  of them in one loop (the metrics of the steps not run are zeros), so one
  program stops at any step;
- ``single(leaves, source, carry, ids, epoch, size)`` runs one step on an epoch's
  short last batch: computed padded, as the iterator computes it, and handed to
  the step at its true ``size`` (a static argument: one compilation per size).

The metrics a step returns are stacked over the steps, as ``lax.scan`` would stack them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.stages import Wrapped

from datarax.core.errors import FusionError
from datarax.dag.compiler import DevicePlan
from datarax.dag.transform import as_batch

#: ``step(carry, batch) -> (carry, metrics)``: the train step a fused loop runs.
Step = Callable[[Any, Any], tuple[Any, Any]]


@dataclass(frozen=True)
class FusedPrograms:
    """The jitted functions of one fused loop (see the module doc)."""

    scan: Wrapped
    single: Wrapped
    length: int


def build_programs(
    plan: DevicePlan,
    graphdef: Any,
    treedef: Any,
    step: Step,
    length: int,
    batch_size: int,
    sharder: Any,
    donate: bool,
) -> FusedPrograms:
    """The scan and short-batch programs of ``step`` over ``plan`` (see the module doc)."""

    def batches_of(
        leaves: Any, source: Any, ids: jax.Array, epoch: jax.Array, size: jax.Array | int
    ) -> Any:
        """The pipeline's output for the records ``ids`` (the first ``size`` are real)."""
        operators = nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, leaves))
        inputs = jax.tree_util.tree_map(lambda v: jnp.take(v, ids, axis=0, mode="clip"), source)
        out, _ = plan.apply(operators, inputs, ids, epoch, jnp.arange(ids.shape[0]) < size)
        return out

    def placed(out: Any) -> Any:
        return out if sharder is None else sharder.constrain(out)

    def scan(
        leaves: Any, source: Any, carry: Any, ids: jax.Array, epoch: jax.Array, count: jax.Array
    ) -> tuple[Any, Any]:
        out = batches_of(leaves, source, ids, epoch, count * batch_size)
        steps = ids.shape[0] // batch_size
        by_step = jax.tree_util.tree_map(
            lambda v: v.reshape(steps, batch_size, *v.shape[1:]), (out, ids)
        )

        def run(c: Any, batch: Any) -> tuple[Any, Any]:
            out, row = batch
            return step(c, as_batch(placed(out), row, epoch))

        first = jax.tree_util.tree_map(lambda v: v[0], by_step)
        shapes = jax.eval_shape(run, carry, first)
        check_carry(carry, shapes[0])

        def body(i: jax.Array, state: tuple[Any, Any]) -> tuple[Any, Any]:
            c, stacked = state
            c, metrics = run(c, jax.tree_util.tree_map(lambda v: v[i], by_step))
            stacked = jax.tree_util.tree_map(lambda s, m: s.at[i].set(m), stacked, metrics)
            return c, stacked

        # A loop of ``count`` steps (not a scan of ``steps`` with a ``lax.cond`` in
        # each): on CPU the conditional cost about a tenth of a small step.
        empty = jax.tree_util.tree_map(lambda s: jnp.zeros((steps, *s.shape), s.dtype), shapes[1])
        result: tuple[Any, Any] = jax.lax.fori_loop(0, count, body, (carry, empty))
        return result

    def single(
        leaves: Any, source: Any, carry: Any, ids: jax.Array, epoch: jax.Array, size: int
    ) -> tuple[Any, Any]:
        out = batches_of(leaves, source, ids, epoch, size)
        out = jax.tree_util.tree_map(lambda v: v[:size], placed(out))
        carry, metrics = step(carry, as_batch(out, ids[:size], epoch))
        return carry, jax.tree_util.tree_map(lambda m: jnp.asarray(m)[None], metrics)

    donated = (2,) if donate else ()
    return FusedPrograms(
        scan=jax.jit(scan, donate_argnums=donated),
        single=jax.jit(single, static_argnums=(5,), donate_argnums=donated),
        length=length,
    )


def check_carry(carry: Any, returned: Any) -> None:
    """Refuse a step whose returned carry differs from the one it was given."""
    given = jax.tree_util.tree_map(lambda v: (jnp.shape(v), jnp.result_type(v)), carry)
    back = jax.tree_util.tree_map(lambda s: (s.shape, s.dtype), returned)
    structure: Any = jax.tree_util.tree_structure(carry)
    same_structure = structure == jax.tree_util.tree_structure(returned)
    if not same_structure or (
        jax.tree_util.tree_leaves(given, is_leaf=lambda x: isinstance(x, tuple))
        != jax.tree_util.tree_leaves(back, is_leaf=lambda x: isinstance(x, tuple))
    ):
        raise FusionError(
            "the step returns a carry unlike the one it was given",
            where="fuse(step=...)",
            expected="step(carry, batch) -> (carry, metrics), the carry with the same "
            f"structure, shapes and dtypes: {_describe(given)}",
            found=_describe(back),
        )


def _describe(tree: Any) -> str:
    return str(tree)[:300]


class ProgramCache:
    """The fused programs built in this process, by what they compute.

    Args:
        max_entries: Program pairs kept (least recently used ones are dropped).
    """

    def __init__(self, max_entries: int = 16) -> None:
        self._entries: OrderedDict[Any, FusedPrograms] = OrderedDict()
        self._max = max_entries

    def get(self, key: Any, build: Callable[[], FusedPrograms]) -> FusedPrograms:
        """The programs under ``key``, built by ``build`` the first time."""
        programs = self._entries.get(key)
        if programs is None:
            programs = self._entries[key] = build()
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        return programs


#: The process's fused programs.
FUSED = ProgramCache()
