"""`CompositeOperator`: several operators combined into one, by a strategy.

Each strategy computes what the equivalent DAG graph does, with the same functions
(:mod:`datarax.operators.combine`), and every operator keeps the per-record keys it
has when it runs alone:

- ``"sequential"``: one after another (``a >> b``);
- ``"parallel"``: each on the same input, outputs joined by ``merge``
  (``"concat"`` along ``axis`` or ``"stack"``) (``(a | b) >> Merge(...)``);
- ``"ensemble"``: each on the same input, outputs reduced by ``reduction``
  (``"mean"``, ``"sum"``, ``"max"``, ``"min"``);
- ``"merging"``: a weighted sum of the outputs, ``sum(w_i * out_i)``; with
  ``learnable_weights`` the weights are an ``nnx.Param`` that gradients reach;
- ``"branching"``: each record goes through the operator ``router(element)`` picks
  (``Switch(router, ...)``).

Example:
    >>> import jax.numpy as jnp
    >>> from datarax.operators import ElementOperator, ElementOperatorConfig
    >>> def scaled(k):
    ...     return ElementOperator(ElementOperatorConfig(),
    ...         fn=lambda e: e.update_data({"x": e.data["x"] * k}))
    >>> both = CompositeOperator(CompositeOperatorConfig(
    ...     strategy="ensemble", operators=(scaled(2.0), scaled(4.0))))
    >>> data, _ = both.apply_batch({"x": jnp.ones(2)}, {}, jnp.arange(2), 0, 0)
    >>> data["x"].tolist()
    [3.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import Config
from datarax.core.errors import ConfigError
from datarax.core.identity import function_identity
from datarax.operators.base import Fields, Operator, apply_in_order
from datarax.operators.combine import (
    choose_path,
    choose_per_record,
    merge_outputs,
    select_per_record,
)

STRATEGIES = ("sequential", "parallel", "ensemble", "merging", "branching")
_PARALLEL_MERGES = ("concat", "stack")
_REDUCTIONS = ("mean", "sum", "max", "min")


@dataclass(frozen=True)
class CompositeOperatorConfig(Config):
    """Args:
    strategy: One of ``sequential``, ``parallel``, ``ensemble``, ``merging``, ``branching``.
    operators: The operators combined (at least one; two for the combining strategies).
    merge: ``parallel`` only: ``"concat"`` or ``"stack"``.
    axis: ``parallel`` only: the record axis (default ``-1`` for concat, ``0`` for stack).
    reduction: ``ensemble`` only: ``"mean"``, ``"sum"``, ``"max"`` or ``"min"``.
    weights: ``merging`` only: one weight per operator (default: all ``1/n``).
    learnable_weights: ``merging`` only: hold the weights in an ``nnx.Param``.
    router: ``branching`` only: ``router(element) -> int`` operator index per record.
    fields: Data fields the combining strategies combine (default: floating-point ones).
    """

    strategy: str = "sequential"
    operators: Sequence[Operator] = ()
    merge: str = "concat"
    axis: int | None = None
    reduction: str = "mean"
    weights: Sequence[float] | None = None
    learnable_weights: bool = False
    router: Callable[..., Any] | None = None
    fields: Sequence[str] | None = None

    def validate(self) -> None:
        where = "CompositeOperatorConfig"
        object.__setattr__(self, "operators", tuple(self.operators))
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                "unknown strategy",
                where=f"{where}.strategy",
                expected=f"one of {', '.join(STRATEGIES)}",
                found=repr(self.strategy),
            )
        bad = [type(op).__name__ for op in self.operators if not isinstance(op, Operator)]
        if bad or not self.operators:
            raise ConfigError(
                "operators must be datarax operators",
                where=f"{where}.operators",
                expected="a non-empty sequence of Operator instances",
                found=bad[0] if bad else "none",
            )
        if self.strategy != "sequential" and len(self.operators) < 2:
            raise ConfigError(
                f"the {self.strategy} strategy combines several operators",
                where=f"{where}.operators",
                expected="at least 2 operators",
                found=len(self.operators),
            )
        checks = {
            "merge": (self.merge, _PARALLEL_MERGES),
            "reduction": (self.reduction, _REDUCTIONS),
        }
        for field, (value, allowed) in checks.items():
            if value not in allowed:
                raise ConfigError(
                    f"unknown {field}",
                    where=f"{where}.{field}",
                    expected=f"one of {', '.join(allowed)}",
                    found=repr(value),
                )
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
            if self.strategy != "merging" or len(self.weights) != len(self.operators):
                raise ConfigError(
                    "weights go with the merging strategy, one per operator",
                    where=f"{where}.weights",
                    expected=f"{len(self.operators)} weights and strategy='merging'",
                    found=f"{len(self.weights)} weights, strategy={self.strategy!r}",
                )
        if (self.router is not None) != (self.strategy == "branching") or (
            self.router is not None and not callable(self.router)
        ):
            raise ConfigError(
                "a router goes with the branching strategy, and only with it",
                where=f"{where}.router",
                expected="router=callable(element) -> int for strategy='branching'",
                found=f"router={self.router!r}, strategy={self.strategy!r}",
            )


class CompositeOperator(Operator):
    """Combines its operators into one by the config's strategy (see the module doc).

    Stochastic when any of its operators is; each keeps its own random stream, so a
    record's randomness is the same as when the operator runs alone.
    """

    config_type = CompositeOperatorConfig
    config: CompositeOperatorConfig

    def __init__(self, config: CompositeOperatorConfig, *, name: str | None = None) -> None:
        self.require_config(config)
        ops = list(config.operators)
        super().__init__(
            config,
            stochastic=False,
            stream_name=None,
            rngs=None,
            name=name or f"Composite({config.strategy})",
        )
        self.operators = nnx.List(ops)
        self.stochastic = any(op.stochastic for op in ops)
        if config.strategy == "merging":
            weights = config.weights or tuple(1.0 / len(ops) for _ in ops)
            kind = nnx.Param if config.learnable_weights else nnx.Variable
            self.weights: nnx.Variable = kind(jnp.asarray(weights, jnp.float32))

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        # The types a pipeline passes, so each operator sees what it sees in a graph.
        record_ids = jnp.asarray(record_ids, jnp.int32)
        epoch, seed = jnp.asarray(epoch, jnp.uint32), int(seed)
        ops, cfg = list(self.operators), self.config
        if cfg.strategy == "sequential":
            return apply_in_order(ops, data, states, record_ids, epoch, seed)
        if cfg.strategy == "branching":
            router = cfg.router
            assert router is not None

            def index_of(element):
                return choose_path(router(element), len(ops), self.name)

            index = choose_per_record(index_of, data, states, record_ids, self.name)
            outputs = [op.apply_batch(data, states, record_ids, epoch, seed) for op in ops]
            return select_per_record(index, outputs, self.name)
        outputs = [op.apply_batch(data, states, record_ids, epoch, seed) for op in ops]
        if cfg.strategy == "parallel":
            return merge_outputs(
                outputs, cfg.merge, axis=cfg.axis, fields=cfg.fields, where=self.name
            )
        if cfg.strategy == "ensemble":
            return merge_outputs(outputs, cfg.reduction, fields=cfg.fields, where=self.name)
        return merge_outputs(
            outputs, "weighted", fields=cfg.fields, weights=self.weights[...], where=self.name
        )

    def fingerprint(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "type": type(self).__name__,
            "name": self.name,
            "strategy": cfg.strategy,
            "operators": [op.fingerprint() for op in self.operators],
            "merge": cfg.merge,
            "axis": cfg.axis,
            "reduction": cfg.reduction,
            "weights": cfg.weights,
            "learnable_weights": cfg.learnable_weights,
            "router": None if cfg.router is None else function_identity(cfg.router),
            "fields": None if cfg.fields is None else list(cfg.fields),
        }
