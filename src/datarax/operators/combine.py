"""Combining the outputs of several operators run on one batch: merge and select.

An *output* is a ``(data, states)`` pair (dicts of arrays, records on axis 0). The
DAG's ``Merge`` and ``Switch``/``Branch`` nodes and :class:`CompositeOperator` all
combine outputs with these functions, so a composite computes what its graph would.

:func:`merge_outputs` combines outputs field by field:

- reductions ``"mean"``, ``"sum"``, ``"max"``, ``"min"`` and ``"weighted"``
  (``sum(w_i * output_i)``) keep shapes and dtypes (integer fields are averaged or
  weighted in float32 and rounded to the nearest integer);
- ``"concat"`` joins along a record axis (default ``-1``);
- ``"stack"`` adds a record axis (default ``0``) of one entry per output.

By default the floating-point fields are combined and every other field is taken
from the first output; ``fields=[...]`` names the combined data fields instead.
Axes count within a record: the batch axis is never touched.

:func:`select_per_record` gives each record the row of the output of its own path,
as chosen by :func:`choose_per_record` (a vectorised select, no control flow).

Example:
    >>> import jax.numpy as jnp
    >>> a = ({"x": jnp.array([1.0, 2.0])}, {})
    >>> b = ({"x": jnp.array([3.0, 6.0])}, {})
    >>> merge_outputs([a, b], "mean")[0]["x"].tolist()
    [2.0, 4.0]
    >>> select_per_record(jnp.array([1, 0]), [a, b], "example")[0]["x"].tolist()
    [3.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.element import Element
from datarax.core.errors import PipelineBuildError
from datarax.operators.base import Fields, spec_of

Output = tuple[Fields, Fields]

REDUCTIONS = ("mean", "sum", "max", "min", "weighted")
MERGE_STRATEGIES = (*REDUCTIONS, "concat", "stack")
_DEFAULT_AXES = {"concat": -1, "stack": 0}


def default_axis(strategy: str) -> int | None:
    """The record axis ``strategy`` joins along when none is given (``None``: no axis)."""
    return _DEFAULT_AXES.get(strategy)


def merge_outputs(
    outputs: Sequence[Output],
    strategy: str,
    *,
    axis: int | None = None,
    fields: Sequence[str] | None = None,
    weights: Any = None,
    where: str = "Merge",
) -> Output:
    """Combine ``outputs`` into one ``(data, states)`` pair by ``strategy``.

    Args:
        outputs: One ``(data, states)`` pair per branch, all from the same batch.
        strategy: One of :data:`MERGE_STRATEGIES`.
        axis: The record axis of ``"concat"`` and ``"stack"`` (default: see
            :func:`default_axis`).
        fields: Data fields to combine (default: the floating-point ones); state
            fields always follow the default.
        weights: One weight per output, for ``"weighted"``; may be traced (learnable).
        where: Names the node or operator in errors.

    Raises:
        PipelineBuildError: outputs differ in fields, dtypes or shapes, an axis is out
            of range, a named field does not exist or the weights do not match.
    """
    if strategy not in MERGE_STRATEGIES:
        raise PipelineBuildError(
            "unknown merge strategy",
            where=where,
            expected=f"one of {', '.join(MERGE_STRATEGIES)}",
            found=repr(strategy),
        )
    if strategy == "weighted" and weights is None:
        raise PipelineBuildError(
            "the 'weighted' strategy needs weights",
            where=where,
            expected=f"{len(outputs)} weights",
            found="none",
        )
    if weights is not None and len(weights) != len(outputs):
        raise PipelineBuildError(
            "one weight per branch is needed",
            where=where,
            expected=f"{len(outputs)} weights",
            found=f"{len(weights)}",
        )
    rule = _MergeRule(
        strategy,
        default_axis(strategy) if axis is None else int(axis),
        (fields,) if isinstance(fields, str) else None if fields is None else tuple(fields),
        weights,
        where,
    )
    data = _merge_fields(rule, [d for d, _ in outputs], "")
    states = _merge_fields(rule, [s for _, s in outputs], "state:")
    return data, states


def choose_path(value: Any, n_paths: int, where: str) -> jax.Array:
    """``value`` (an integer or bool) as a path index, clipped to ``0 .. n_paths - 1``."""
    value = jnp.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.integer) and value.dtype != bool:
        raise PipelineBuildError(
            "the selector must return an integer",
            where=where,
            expected="an int32 path index",
            found=str(value.dtype),
        )
    return jnp.clip(value.astype(jnp.int32), 0, n_paths - 1)


def single_choice(index: jax.Array, scope: str, where: str) -> jax.Array:
    """``index`` checked to be one decision (a scalar) per ``scope`` (record, batch)."""
    if index.shape != ():
        raise PipelineBuildError(
            f"one decision per {scope} is needed",
            where=where,
            expected="a scalar",
            found=f"shape {index.shape}",
        )
    return index


def choose_per_record(
    index_of: Callable[[Element], jax.Array],
    data: Fields,
    states: Fields,
    record_ids: jax.Array,
    where: str,
) -> jax.Array:
    """The path index of every record: ``index_of(element)`` vmapped over the batch.

    Each record is seen as ``Element(data, state, {"record_id": id})``; ``index_of``
    must give one scalar per record.
    """

    def one(d, s, rid):
        return single_choice(index_of(Element(d, s, {"record_id": rid})), "record", where)

    return jax.vmap(one)(data, states, record_ids)


def select_per_record(index: jax.Array, outputs: Sequence[Output], where: str) -> Output:
    """Each record's row of ``outputs[index[record]]`` (outputs must be alike)."""
    check_same_outputs(outputs, where)
    return jax.tree_util.tree_map(lambda *leaves: _select(index, leaves), *outputs)


#: How :func:`run_per_record` runs a per-record choice of paths.
DISPATCHES = ("auto", "switch", "select")

#: A path: ``(data, states, rows) -> (data, states)`` on a batch, where ``rows`` is a
#: pytree of per-record arrays (record ids, per-record choices) sliced alike.
Path = Callable[[Fields, Fields, Any], Output]


def run_per_record(
    index: jax.Array,
    paths: Sequence[Path],
    data: Fields,
    states: Fields,
    rows: Any,
    *,
    where: str,
    dispatch: str = "auto",
) -> Output:
    """Each record through ``paths[index[record]]`` alone; the paths' outputs must be alike.

    ``dispatch`` picks one of two ways, with equal results (up to how XLA contracts
    float operations at each shape):

    - ``"select"``: every path runs on the whole batch and each record takes the rows
      of its own path (:func:`select_per_record`). No control flow: the way for
      accelerators, where a wide batch costs little more than one record.
    - ``"switch"``: the records run one at a time (``lax.map``), each through its own
      path only (``lax.switch``). On CPU the work is then one path per record instead
      of every path for every record.
    - ``"auto"``: ``"switch"`` when the default backend is the CPU, else ``"select"``.

    Paths that need the whole batch (a batch-mixing operator) must use ``"select"``.

    Example:
        >>> import jax.numpy as jnp
        >>> double = lambda d, s, rows: ({"x": 2 * d["x"]}, s)
        >>> negate = lambda d, s, rows: ({"x": -d["x"]}, s)
        >>> out, _ = run_per_record(jnp.array([0, 1, 0]), [double, negate],
        ...                         {"x": jnp.array([1.0, 2.0, 3.0])}, {}, None,
        ...                         where="example", dispatch="switch")
        >>> out["x"].tolist()
        [2.0, -2.0, 6.0]
    """
    if dispatch == "auto":
        dispatch = "switch" if jax.default_backend() == "cpu" else "select"
    if len(paths) == 1:
        return paths[0](data, states, rows)
    if dispatch == "select":
        return select_per_record(index, [path(data, states, rows) for path in paths], where)
    one_record = jax.tree_util.tree_map(lambda x: x[:1], (data, states, rows))
    check_same_outputs([jax.eval_shape(path, *one_record) for path in paths], where)

    def record(args: tuple[Output, Any, jax.Array]) -> Output:
        (d, s), r, i = args
        as_batch = lambda tree: jax.tree_util.tree_map(lambda x: x[None], tree)  # noqa: E731
        out = jax.lax.switch(i, list(paths), as_batch(d), as_batch(s), as_batch(r))
        return jax.tree_util.tree_map(lambda x: x[0], out)

    return jax.lax.map(record, ((data, states), rows, index))


def check_same_outputs(outputs: Sequence[Output], where: str) -> None:
    """Raise unless every output has the fields, shapes and dtypes of the first."""
    first = spec_of(outputs[0])
    for i, out in enumerate(outputs[1:], start=1):
        spec = spec_of(out)
        if spec != first:
            raise PipelineBuildError(
                "paths produce different outputs",
                where=where,
                expected=f"{_describe(first)} (as path 0)",
                found=f"{_describe(spec)} from path {i}",
            )


@dataclass(frozen=True)
class _MergeRule:
    """What one merge does: strategy, resolved axis, named fields, weights, error place."""

    strategy: str
    axis: int | None
    fields: tuple[str, ...] | None
    weights: Any
    where: str


def _merge_fields(rule: _MergeRule, branches: list[dict], prefix: str) -> dict:
    names = list(branches[0])
    for i, branch in enumerate(branches[1:], start=1):
        if list(branch) != names and sorted(branch) != sorted(names):
            raise PipelineBuildError(
                "branches produce different fields",
                where=rule.where,
                expected=f"fields {sorted(names)} (as branch 0)",
                found=f"{sorted(branch)} in branch {i}",
            )
    out = {}
    for name in names:
        values = [b[name] for b in branches]
        if rule.fields is None or prefix:  # states always follow the default rule
            combine = bool(jnp.issubdtype(values[0].dtype, jnp.inexact))
        else:
            combine = name in rule.fields
        _check_alike(rule, values, f"{rule.where}, field '{prefix}{name}'", combine)
        out[name] = _combine(rule, values) if combine else values[0]
    if rule.fields is not None and not prefix:
        missing = [f for f in rule.fields if f not in out]
        if missing:
            raise PipelineBuildError(
                "unknown field to merge",
                where=rule.where,
                expected=f"one of {sorted(out)}",
                found=repr(missing[0]),
            )
    return out


def _check_alike(rule: _MergeRule, values: list, where: str, combined: bool) -> None:
    first = values[0]
    concat = combined and rule.strategy == "concat"
    rank = first.ndim - 1  # the record's rank; axis 0 of the arrays is the batch
    if combined and rule.strategy in _DEFAULT_AXES:
        limit = rank if concat else rank + 1
        axis = rule.axis
        assert axis is not None
        if limit == 0 or not -limit <= axis < limit:
            raise PipelineBuildError(
                f"axis out of range for {rule.strategy}",
                where=where,
                expected=f"-{limit} <= axis < {limit} for records of shape {first.shape[1:]}",
                found=f"axis={axis}",
            )
    for i, value in enumerate(values[1:], start=1):
        if value.dtype != first.dtype:
            raise PipelineBuildError(
                "branches produce different dtypes",
                where=where,
                expected=f"{first.dtype} (as branch 0)",
                found=f"{value.dtype} in branch {i}",
            )
        shape_a, shape_b = list(first.shape[1:]), list(value.shape[1:])
        if concat and len(shape_a) == len(shape_b):
            assert rule.axis is not None
            shape_a[rule.axis] = shape_b[rule.axis] = -1
        if shape_a != shape_b:
            raise PipelineBuildError(
                "branches produce different shapes",
                where=where,
                expected=f"records of shape {tuple(first.shape[1:])} (as branch 0)"
                + (" apart from the concat axis" if concat else ""),
                found=f"{tuple(value.shape[1:])} in branch {i}",
            )


def _combine(rule: _MergeRule, values: list) -> jax.Array:
    strategy, weights = rule.strategy, rule.weights
    dtype = values[0].dtype
    if strategy in ("mean", "weighted") and not jnp.issubdtype(dtype, jnp.inexact):
        # Integer and boolean fields: combined in float32, rounded back to the dtype.
        as_float = [v.astype(jnp.float32) for v in values]
        return jnp.round(_combine(rule, as_float)).astype(dtype)
    if strategy in ("mean", "sum"):
        total = values[0]
        for v in values[1:]:
            total = total + v
        return total / np.asarray(len(values), dtype) if strategy == "mean" else total
    if strategy == "max":
        return _fold(jnp.maximum, values)
    if strategy == "min":
        return _fold(jnp.minimum, values)
    if strategy == "weighted":
        total = values[0] * jnp.asarray(weights[0], dtype)
        for v, w in zip(values[1:], weights[1:], strict=True):
            total = total + v * jnp.asarray(w, dtype)
        return total
    axis = rule.axis
    assert axis is not None
    batch_axis = axis + 1 if axis >= 0 else axis
    if strategy == "concat":
        return jnp.concatenate(values, axis=batch_axis)
    return jnp.stack(values, axis=batch_axis)


def _fold(fn, values: list) -> jax.Array:
    out = values[0]
    for v in values[1:]:
        out = fn(out, v)
    return out


def _select(index: jax.Array, leaves: Sequence[jax.Array]) -> jax.Array:
    which = index.reshape(index.shape + (1,) * (leaves[0].ndim - 1))
    return jax.lax.select_n(jnp.broadcast_to(which, leaves[0].shape), *leaves)


def _describe(spec: tuple) -> str:
    return ", ".join(f"{path}: {dtype}{list(shape)[1:]}" for path, shape, dtype in spec)
