"""Relaxed policies: per-record choices whose probabilities a loss can learn.

:class:`~datarax.operators.policies.ApplyWithProbability` and
:class:`~datarax.operators.policies.ChooseOne` draw discrete decisions, so no
gradient reaches their probabilities. The operators here draw the same kind of
decisions from a continuous relaxation, so gradients do reach them:

- :class:`RelaxedApply` applies an operator to a record with a learnable
  probability ``p``: a relaxed Bernoulli (binary Concrete) gate
  ``m = sigmoid((logit(p) + logistic noise) / temperature)``.
- :class:`RelaxedChoice` picks one of several operators per record with learnable
  weights: Gumbel-softmax ``w = softmax((log weights + Gumbel noise) / temperature)``.

With ``hard=True`` (the default) the output of a record is exactly the output of
its discrete decision: the gate is 1 when ``logit(p) + noise > 0`` (probability
``p``), the pick is ``argmax(log weights + noise)`` (probability ``w_i / sum w``),
and the relaxation only gives the gradient (straight-through). With ``hard=False``
the output is the blend ``m * op(x) + (1 - m) * x`` or ``sum_i w_i op_i(x)``.

Both compute every candidate on the whole batch (the gradient of a choice needs
each candidate's output). Integer fields, and every field a decision selects but
cannot blend, take the row of the discrete decision. Magnitudes of the wrapped
operators learn as they do alone (``learnable=True`` in their configs), from the
records that went through them.

Example:
    >>> from flax import nnx
    >>> from datarax.operators.image import Brightness, BrightnessConfig
    >>> bright = Brightness(BrightnessConfig(factor=1.4, learnable=True))
    >>> gate = RelaxedApply(RelaxedApplyConfig(probability=0.3), operator=bright,
    ...                     rngs=nnx.Rngs(0))
    >>> round(float(gate.probability()), 6)
    0.3
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import Config, require_bool, require_number
from datarax.core.errors import ConfigError
from datarax.operators.base import Fields, Operator
from datarax.operators.combine import Output, select_per_record
from datarax.operators.policies import candidates, check_operator

__all__ = [
    "RelaxedApply",
    "RelaxedApplyConfig",
    "RelaxedChoice",
    "RelaxedChoiceConfig",
    "relaxed_select",
]

#: Half of the smallest step of :func:`~datarax.operators.base.uniform`: noise uniforms
#: are moved off 0 by it, so ``log(u)`` and ``log(1 - u)`` stay finite.
_HALF_STEP = 0.5 / (1 << 24)


def relaxed_select(
    index: jax.Array, weights: jax.Array, outputs: Sequence[Output], *, hard: bool, where: str
) -> Output:
    """Each record's output from its discrete ``index`` and its relaxed ``weights``.

    ``weights`` is ``(B, len(outputs))``. With ``hard`` every field is the row of
    ``outputs[index]`` exactly; floating-point fields also carry the gradient of
    ``sum_i weights_i * output_i`` (straight-through). Without ``hard`` the
    floating-point fields are that weighted sum and the other fields follow ``index``.

    Example:
        >>> import jax.numpy as jnp
        >>> a, b = ({"x": jnp.array([1.0, 1.0])}, {}), ({"x": jnp.array([3.0, 3.0])}, {})
        >>> w = jnp.array([[0.75, 0.25], [0.5, 0.5]])
        >>> relaxed_select(jnp.array([1, 0]), w, [a, b], hard=True, where="ex")[0]["x"].tolist()
        [3.0, 1.0]
        >>> relaxed_select(jnp.array([1, 0]), w, [a, b], hard=False, where="ex")[0]["x"].tolist()
        [1.5, 2.0]
    """
    chosen = select_per_record(index, outputs, where)

    def combine(picked: jax.Array, *leaves: jax.Array) -> jax.Array:
        if not jnp.issubdtype(picked.dtype, jnp.inexact):
            return picked
        shape = (picked.shape[0],) + (1,) * (picked.ndim - 1)
        w = [weights[:, i].reshape(shape).astype(picked.dtype) for i in range(len(leaves))]
        if not hard:
            return sum(
                (wi * leaf for wi, leaf in zip(w, leaves, strict=True)), jnp.zeros_like(picked)
            )
        # Zero in value (w - w), so the forward value is exactly the picked row.
        zero = [wi - jax.lax.stop_gradient(wi) for wi in w]
        return picked + sum(
            (zi * leaf for zi, leaf in zip(zero, leaves, strict=True)), jnp.zeros_like(picked)
        )

    result: Output = jax.tree_util.tree_map(combine, chosen, *outputs)
    return result


def _noise_uniforms(op: Operator, record_ids: jax.Array, epoch: jax.Array, seed: int, count: int):
    """``count`` uniforms in ``(0, 1)`` per record, from ``op``'s own stream."""
    u = op.uniforms(record_ids, epoch, seed, count)
    return u + _HALF_STEP


@dataclass(frozen=True)
class RelaxedApplyConfig(Config):
    """Args:
    probability: The chance ``p`` that a record goes through the operator, in (0, 1).
    temperature: Temperature of the relaxed Bernoulli gate (lower: closer to 0/1).
    hard: Outputs exactly the discrete decision (the relaxation gives the gradient).
    learnable: Make ``logit(p)`` an ``nnx.Param``.
    stream_name: Random stream of the decisions.
    """

    probability: float = 0.5
    temperature: float = 0.5
    hard: bool = True
    learnable: bool = True
    stream_name: str | None = None

    def validate(self) -> None:
        require_number(self, "probability", minimum=0.0, maximum=1.0)
        if not 0.0 < self.probability < 1.0:
            raise ConfigError(
                "probability must lie strictly between 0 and 1 (its logit is the parameter)",
                where="RelaxedApplyConfig.probability",
                expected="a number in (0, 1)",
                found=repr(self.probability),
            )
        require_number(self, "temperature", positive=True)
        require_bool(self, "hard")
        require_bool(self, "learnable")


class RelaxedApply(Operator):
    """Each record goes through ``operator`` with a learnable probability (relaxed Bernoulli).

    A record's gate is ``1`` when ``logit(p) + log(u) - log(1 - u) > 0`` for the
    uniform ``u`` of its key in this operator's stream (probability exactly ``p``);
    the gradient is that of ``sigmoid((logit(p) + log(u) - log(1 - u)) / temperature)``.
    The wrapped operator must keep the fields, shapes and dtypes.

    Example:
        >>> from flax import nnx
        >>> from datarax.operators.image import Contrast, ContrastConfig
        >>> op = Contrast(ContrastConfig(factor=(0.5, 1.5)), rngs=nnx.Rngs(1))
        >>> maybe = RelaxedApply(RelaxedApplyConfig(probability=0.25), operator=op,
        ...                      rngs=nnx.Rngs(2))
        >>> type(maybe.logit).__name__
        'Param'
    """

    config_type = RelaxedApplyConfig
    config: RelaxedApplyConfig
    reference: str = "binary Concrete / Gumbel-sigmoid gate (Maddison et al.; Jang et al.)"
    differentiable_in: tuple[str, ...] = ("input", "probability")

    def __init__(
        self,
        config: RelaxedApplyConfig,
        *,
        operator: Operator,
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        operator = check_operator(operator, "RelaxedApply(operator=...)")
        stream = config.stream_name or type(self).__name__
        super().__init__(config, stochastic=True, stream_name=stream, rngs=rngs, name=name)
        self.operator = operator
        p = config.probability
        logit = math.log(p) - math.log1p(-p)
        self.logit: Any = nnx.Param(jnp.asarray(logit, jnp.float32)) if config.learnable else logit

    def probability(self) -> jax.Array:
        """The current chance that a record goes through the operator."""
        return jax.nn.sigmoid(_value(self.logit))

    def gates(
        self, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[jax.Array, jax.Array]:
        """Each record's discrete gate ``(B,)`` bool and relaxed gate ``(B,)`` float32."""
        u = _noise_uniforms(self, record_ids, epoch, seed, 1)[:, 0]
        score = _value(self.logit) + jnp.log(u) - jnp.log1p(-u)
        return score > 0, jax.nn.sigmoid(score / self.config.temperature)

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        record_ids, epoch = jnp.asarray(record_ids, jnp.int32), jnp.asarray(epoch, jnp.uint32)
        applied, soft = self.gates(record_ids, epoch, seed)
        through = self.operator.apply_batch(data, states, record_ids, epoch, seed)
        weights = jnp.stack([1.0 - soft, soft], axis=1)
        return relaxed_select(
            applied.astype(jnp.int32),
            weights,
            [(data, states), through],
            hard=self.config.hard,
            where=self.name,
        )

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "operator": self.operator.fingerprint()}


@dataclass(frozen=True)
class RelaxedChoiceConfig(Config):
    """Args:
    weights: One positive weight per operator, or ``None`` for equal weights (they
        need not sum to 1; their logarithms are the parameters).
    temperature: Temperature of the Gumbel-softmax (lower: closer to one-hot).
    hard: Outputs exactly the picked operator's output (the relaxation gives the gradient).
    learnable: Make the log-weights an ``nnx.Param``.
    stream_name: Random stream of the choices.
    """

    weights: Sequence[float] | None = None
    temperature: float = 1.0
    hard: bool = True
    learnable: bool = True
    stream_name: str | None = None

    def validate(self) -> None:
        require_number(self, "temperature", positive=True)
        require_bool(self, "hard")
        require_bool(self, "learnable")
        if self.weights is None:
            return
        w = self.weights
        valid = (
            isinstance(w, (tuple, list))
            and len(w) > 0
            and all(
                isinstance(x, (int, float))
                and not isinstance(x, bool)
                and math.isfinite(x)
                and x > 0
                for x in w
            )
        )
        if not valid:
            raise ConfigError(
                "weights must be positive numbers (their logarithms are learned)",
                where="RelaxedChoiceConfig.weights",
                expected="e.g. (1.0, 2.0) or None",
                found=repr(w),
            )
        object.__setattr__(self, "weights", tuple(float(x) for x in w))


class RelaxedChoice(Operator):
    """Each record goes through one of ``operators``, picked by weights it learns (Gumbel-softmax).

    A record picks ``argmax_i(log w_i + g_i)`` for Gumbel noise ``g_i`` from its key
    in this operator's stream (so operator ``i`` with probability ``w_i / sum w``);
    the gradient is that of ``softmax((log w + g) / temperature)``. All operators
    must produce the same fields, shapes and dtypes.

    Example:
        >>> from flax import nnx
        >>> from datarax.operators.image import Brightness, BrightnessConfig, Invert, InvertConfig
        >>> ops = [Brightness(BrightnessConfig(factor=1.3)), Invert(InvertConfig())]
        >>> pick = RelaxedChoice(RelaxedChoiceConfig(weights=(3.0, 1.0)), operators=ops,
        ...                      rngs=nnx.Rngs(0))
        >>> [round(float(w), 4) for w in pick.weights()]
        [0.75, 0.25]
    """

    config_type = RelaxedChoiceConfig
    config: RelaxedChoiceConfig
    reference: str = "Gumbel-softmax, straight-through (Jang et al.; DARTS / DADA search)"
    differentiable_in: tuple[str, ...] = ("input", "weights")

    def __init__(
        self,
        config: RelaxedChoiceConfig,
        *,
        operators: Sequence[Operator],
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        ops, weights = candidates(operators, config.weights, owner="RelaxedChoice", minimum=2)
        stream = config.stream_name or type(self).__name__
        super().__init__(config, stochastic=True, stream_name=stream, rngs=rngs, name=name)
        self.operators = nnx.List(ops)
        logits = tuple(math.log(w) for w in weights)
        self.logits: Any = (
            nnx.Param(jnp.asarray(logits, jnp.float32)) if config.learnable else logits
        )

    def weights(self) -> jax.Array:
        """The current probability of each operator (sums to 1)."""
        return jax.nn.softmax(_value(self.logits))

    def choices(
        self, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[jax.Array, jax.Array]:
        """Each record's pick ``(B,)`` int32 and relaxed weights ``(B, n)`` float32."""
        n = len(self.operators)
        u = _noise_uniforms(self, record_ids, epoch, seed, n)
        score = _value(self.logits)[None, :] - jnp.log(-jnp.log(u))
        index = jnp.argmax(score, axis=1).astype(jnp.int32)
        return index, jax.nn.softmax(score / self.config.temperature, axis=1)

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        record_ids, epoch = jnp.asarray(record_ids, jnp.int32), jnp.asarray(epoch, jnp.uint32)
        index, weights = self.choices(record_ids, epoch, seed)
        outputs = [op.apply_batch(data, states, record_ids, epoch, seed) for op in self.operators]
        return relaxed_select(index, weights, outputs, hard=self.config.hard, where=self.name)

    def fingerprint(self) -> dict[str, Any]:
        ops = [op.fingerprint() for op in self.operators]
        return {**super().fingerprint(), "operators": ops}


def _value(x: Any) -> jax.Array:
    """A parameter's traced value, or a constant as a float32 array."""
    return x[...] if isinstance(x, nnx.Variable) else jnp.asarray(x, jnp.float32)
