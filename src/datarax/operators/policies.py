"""Policies: operators that decide per record which operators run.

- :class:`ApplyWithProbability` runs an operator on a random share of the records;
- :class:`ChooseOne` runs, for each record, one operator picked by weight;
- :class:`RandAugment` and :class:`TrivialAugment` are the automatic augmentation
  policies of torchvision, built from the library's image operators.

Each record gets the output of its own choice only. How that runs is the config's
``dispatch`` (see :func:`~datarax.operators.combine.run_per_record`): by default, on
CPU the records run one at a time, each through its chosen operator alone
(``lax.switch``); on accelerators every candidate is computed on the whole batch and
each record takes the rows of its own (a select, no control flow). Either way the candidates must
keep the batch's fields, shapes and dtypes. The choices are drawn from the policy's
own stream per record; each wrapped operator keeps its own stream, so it draws for
a record what it draws when it runs alone.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax.core.config import Config, check_int, require_choice
from datarax.core.errors import ConfigError
from datarax.operators.base import Fields, Operator, uniform
from datarax.operators.combine import DISPATCHES, Path, run_per_record
from datarax.operators.image.affine import (
    Affine,
    AffineConfig,
    Rotate,
    RotateConfig,
    affine_matrix,
    affine_step,
)
from datarax.operators.image.base import ImageOperatorConfig, image_field
from datarax.operators.image.color import (
    Brightness,
    BrightnessConfig,
    Contrast,
    ContrastConfig,
    Saturation,
    SaturationConfig,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
)
from datarax.operators.image.color_base import PixelOperator
from datarax.operators.image.color_space import blend, smooth3x3
from datarax.operators.image.sampling import render
from datarax.operators.image.tone import (
    AutoContrast,
    AutoContrastConfig,
    Equalize,
    EqualizeConfig,
    Posterize,
    PosterizeConfig,
    Sharpness,
    SharpnessConfig,
    Solarize,
    SolarizeConfig,
)

__all__ = [
    "AUGMENT_OPS",
    "ApplyWithProbability",
    "ApplyWithProbabilityConfig",
    "ChooseOne",
    "ChooseOneConfig",
    "RandAugment",
    "RandAugmentConfig",
    "TrivialAugment",
    "TrivialAugmentConfig",
    "augment_operator",
    "candidates",
    "check_operator",
    "randaugment_magnitude",
]


def check_operator(operator: Any, where: str) -> Operator:
    """``operator`` when it is a datarax operator, else a :class:`ConfigError` naming ``where``."""
    if not isinstance(operator, Operator):
        raise ConfigError(
            "must be a datarax operator",
            where=where,
            expected="an Operator instance",
            found=type(operator).__name__,
        )
    return operator


def candidates(
    operators: Sequence[Any], weights: Sequence[float] | None, *, owner: str, minimum: int
) -> tuple[list[Operator], tuple[float, ...]]:
    """The operators a choice picks from and one weight each (default: equal weights).

    Raises :class:`ConfigError` naming ``owner`` for anything that is not an
    operator, fewer than ``minimum`` operators, or a weight count that differs.
    """
    ops = [check_operator(op, f"{owner}(operators=...)") for op in operators]
    if len(ops) < minimum:
        raise ConfigError(
            "nothing to choose from" if not ops else "too few operators to choose from",
            where=f"{owner}(operators=...)",
            expected="at least one operator" if minimum == 1 else f"at least {minimum} operators",
            found=f"{len(ops)}" if ops else "none",
        )
    chosen = tuple(weights) if weights else tuple(1.0 for _ in ops)
    if len(chosen) != len(ops):
        raise ConfigError(
            "one weight per operator",
            where=f"{owner}Config.weights",
            expected=f"{len(ops)} weights",
            found=f"{len(chosen)}",
        )
    return ops, chosen


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class _Policy(Operator):
    """Shared plumbing: the batch types a pipeline passes and the choice uniforms."""

    differentiable_in: tuple[str, ...] = ("input",)

    def _policy_init(
        self,
        config: Config,
        stream_name: str | None,
        draws: bool,
        operators: Sequence[Operator],
        rngs: nnx.Rngs | None,
        name: str | None,
    ) -> None:
        stream = stream_name or type(self).__name__
        super().__init__(config, stochastic=draws, stream_name=stream, rngs=rngs, name=name)
        self.draws = draws
        self.stochastic = draws or any(op.stochastic for op in operators)

    def _choice_uniforms(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array:
        return uniform(self.random_words(record_ids, epoch, seed)[:, 0])

    def _run(
        self,
        index: jax.Array,
        paths: Sequence[Path],
        data: Fields,
        states: Fields,
        rows: Any,
        operators: Sequence[Operator],
    ) -> tuple[Fields, Fields]:
        """Each record through ``paths[index]``, as the config's ``dispatch`` says.

        An operator that mixes its batch (MixUp, CutMix) needs the whole batch, so
        its paths are always selected.
        """
        dispatch = getattr(self.config, "dispatch", "auto")
        if any(op.mixes_batch for op in operators):
            dispatch = "select"
        return run_per_record(index, paths, data, states, rows, where=self.name, dispatch=dispatch)


def _unchanged(data: Fields, states: Fields, rows: Any) -> tuple[Fields, Fields]:
    """The path of records that go through nothing."""
    return data, states


def _through(operator: Operator, epoch: jax.Array, seed: int) -> Path:
    """The path of records that go through ``operator``."""

    def path(data: Fields, states: Fields, record_ids: jax.Array) -> tuple[Fields, Fields]:
        return operator.apply_batch(data, states, record_ids, epoch, seed)

    return path


@dataclass(frozen=True)
class ApplyWithProbabilityConfig(Config):
    """Args:
    probability: Chance that a record goes through the operator.
    stream_name: Random stream of the decisions.
    dispatch: ``"auto"``, ``"switch"`` or ``"select"``: how records go through their
        choice (see :func:`~datarax.operators.combine.run_per_record`).
    """

    probability: float = 0.5
    stream_name: str | None = None
    dispatch: str = "auto"

    def validate(self) -> None:
        require_choice(self, "dispatch", DISPATCHES)
        if not _is_real(self.probability) or not 0.0 <= self.probability <= 1.0:
            raise ConfigError(
                "probability out of range",
                where="ApplyWithProbabilityConfig.probability",
                expected="a number in [0, 1]",
                found=repr(self.probability),
            )


class ApplyWithProbability(_Policy):
    """Each record goes through ``operator`` with ``probability``, else is left as is.

    A record is transformed when the uniform of its first random word (of this
    policy's stream) is below ``probability``. The operator must keep the fields,
    shapes and dtypes (see the module for how records are dispatched). With
    probability 0 or 1 nothing is drawn.

    Example:
        >>> from flax import nnx
        >>> from datarax.operators.image.noise import GaussianNoise, GaussianNoiseConfig
        >>> noise = GaussianNoise(GaussianNoiseConfig(sigma=0.1), rngs=nnx.Rngs(0))
        >>> maybe = ApplyWithProbability(
        ...     ApplyWithProbabilityConfig(probability=0.3), operator=noise, rngs=nnx.Rngs(1))
    """

    config_type = ApplyWithProbabilityConfig
    config: ApplyWithProbabilityConfig
    reference: str = "torchvision.transforms.RandomApply, per record"

    def __init__(
        self,
        config: ApplyWithProbabilityConfig,
        *,
        operator: Operator,
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        operator = check_operator(operator, "ApplyWithProbability(operator=...)")
        draws = 0.0 < config.probability < 1.0
        self._policy_init(config, config.stream_name, draws, [operator], rngs, name)
        self.operator = operator

    def applied(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array:
        """Which records go through the operator ``(B,)`` bool."""
        p = self.config.probability
        if not self.draws:
            return jnp.full(jnp.shape(record_ids), p == 1.0)
        return self._choice_uniforms(record_ids, epoch, seed) < p

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        record_ids, epoch = jnp.asarray(record_ids, jnp.int32), jnp.asarray(epoch, jnp.uint32)
        if self.config.probability == 0.0:
            return data, states
        through = _through(self.operator, epoch, seed)
        if not self.draws:
            return through(data, states, record_ids)
        index = self.applied(record_ids, epoch, seed).astype(jnp.int32)
        paths = [_unchanged, through]
        return self._run(index, paths, data, states, record_ids, [self.operator])

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "operator": self.operator.fingerprint()}


@dataclass(frozen=True)
class ChooseOneConfig(Config):
    """Args:
    weights: One non-negative weight per operator (not all zero), or ``None`` for
        equal weights. They need not sum to 1.
    stream_name: Random stream of the choices.
    dispatch: ``"auto"``, ``"switch"`` or ``"select"``: how records go through their
        choice (see :func:`~datarax.operators.combine.run_per_record`).
    """

    weights: Sequence[float] | None = None
    stream_name: str | None = None
    dispatch: str = "auto"

    def validate(self) -> None:
        require_choice(self, "dispatch", DISPATCHES)
        if self.weights is None:
            return
        weights = self.weights
        valid = (
            isinstance(weights, (tuple, list))
            and len(weights) > 0
            and all(_is_real(w) and np.isfinite(w) and w >= 0 for w in weights)
            and sum(weights) > 0
        )
        if not valid:
            raise ConfigError(
                "weights must be non-negative numbers, not all zero",
                where="ChooseOneConfig.weights",
                expected="e.g. (1.0, 2.0) or None",
                found=repr(weights),
            )
        object.__setattr__(self, "weights", tuple(float(w) for w in weights))


class ChooseOne(_Policy):
    """Each record goes through one of ``operators``, picked with probability ``w_i / sum(w)``.

    The pick of a record is the first operator whose cumulative weight share exceeds
    the uniform of its first random word (of this policy's stream). All operators
    must produce the same fields, shapes and dtypes.

    Example:
        >>> from flax import nnx
        >>> from datarax.operators.image.noise import GaussianBlur, GaussianBlurConfig
        >>> blur = GaussianBlur(GaussianBlurConfig(sigma=1.0))
        >>> sharp = GaussianBlur(GaussianBlurConfig(sigma=0.3))
        >>> one = ChooseOne(ChooseOneConfig(weights=(3, 1)), operators=[blur, sharp],
        ...                 rngs=nnx.Rngs(0))
    """

    config_type = ChooseOneConfig
    config: ChooseOneConfig
    reference: str = "torchvision.transforms.RandomChoice, per record"

    def __init__(
        self,
        config: ChooseOneConfig,
        *,
        operators: Sequence[Operator],
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        ops, weights = candidates(operators, config.weights, owner="ChooseOne", minimum=1)
        self._policy_init(config, config.stream_name, len(ops) > 1, ops, rngs, name)
        self.operators = nnx.List(ops)
        self.thresholds = _cumulative_shares(weights)

    def choices(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array:
        """Each record's operator index ``(B,)`` int32."""
        if not self.draws:
            return jnp.zeros(jnp.shape(record_ids), jnp.int32)
        return pick(self.thresholds, self._choice_uniforms(record_ids, epoch, seed))

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        record_ids, epoch = jnp.asarray(record_ids, jnp.int32), jnp.asarray(epoch, jnp.uint32)
        ops = list(self.operators)
        paths = [_through(op, epoch, seed) for op in ops]
        index = self.choices(record_ids, epoch, seed)
        return self._run(index, paths, data, states, record_ids, ops)

    def fingerprint(self) -> dict[str, Any]:
        ops = [op.fingerprint() for op in self.operators]
        return {**super().fingerprint(), "operators": ops}


def _cumulative_shares(weights: Sequence[float]) -> tuple[float, ...]:
    """Upper ends of each choice's share of [0, 1) (the last is exactly 1)."""
    shares = np.cumsum(np.asarray(weights, np.float64)) / float(np.sum(weights))
    shares[-1] = 1.0
    return tuple(float(s) for s in shares)


def pick(thresholds: Sequence[float], u: jax.Array) -> jax.Array:
    """Index of the first threshold above each uniform ``u`` ``(B,)`` int32.

    Example:
        >>> import jax.numpy as jnp
        >>> pick((0.25, 1.0), jnp.array([0.1, 0.25, 0.9])).tolist()
        [0, 1, 1]
    """
    edges = jnp.asarray(thresholds, jnp.float32)
    index = jnp.sum(u[:, None] >= edges[None, :], axis=1)
    return jnp.minimum(index, len(thresholds) - 1).astype(jnp.int32)


# ----------------------------------------------------------- automatic augmentation

#: The operations of RandAugment and TrivialAugment (torchvision's names in brackets):
#: identity, shear_x/y [ShearX/Y], translate_x/y [TranslateX/Y], rotate, brightness,
#: color [Color: saturation], contrast, sharpness, posterize, solarize, autocontrast,
#: equalize.
AUGMENT_OPS = (
    "identity",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
)
#: Operations whose magnitude is negated for half of the records.
SIGNED_OPS = frozenset(AUGMENT_OPS[1:10])


@dataclass(frozen=True)
class _AugmentConfig(ImageOperatorConfig):
    """Args:
    ops: The operations to choose from (default: all of :data:`AUGMENT_OPS`).
    interpolation: Sampling of the geometric operations, ``"nearest"`` (as
        torchvision's default) or ``"bilinear"``.
    fill: Value of pixels the geometric operations bring in from outside.
    dispatch: ``"auto"``, ``"switch"`` or ``"select"``: how records go through their
        operations (see :func:`~datarax.operators.combine.run_per_record`).
    """

    ops: tuple[str, ...] | None = None
    interpolation: str = "nearest"
    fill: float = 0.0
    dispatch: str = "auto"

    def validate(self) -> None:
        super().validate()
        require_choice(self, "dispatch", DISPATCHES)
        name = type(self).__name__
        ops = self.ops
        if ops is not None:
            valid = (
                isinstance(ops, (tuple, list))
                and len(ops) > 0
                and all(op in AUGMENT_OPS for op in ops)
                and len(set(ops)) == len(ops)
            )
            if not valid:
                raise ConfigError(
                    "unknown or repeated operations",
                    where=f"{name}.ops",
                    expected=f"distinct names among {', '.join(AUGMENT_OPS)}",
                    found=repr(ops),
                )
            object.__setattr__(self, "ops", tuple(ops))
        if self.interpolation not in ("nearest", "bilinear"):
            raise ConfigError(
                "unknown interpolation",
                where=f"{name}.interpolation",
                expected="'nearest' or 'bilinear'",
                found=repr(self.interpolation),
            )
        if not _is_real(self.fill):
            raise ConfigError(
                "fill must be a number",
                where=f"{name}.fill",
                expected="an int or float",
                found=repr(self.fill),
            )

    def op_names(self) -> tuple[str, ...]:
        """The operations chosen from, in order."""
        return self.ops or AUGMENT_OPS


@dataclass(frozen=True)
class RandAugmentConfig(_AugmentConfig):
    """torchvision's ``RandAugment`` parameters (see :class:`_AugmentConfig` for the rest).

    Args:
        num_ops: Operations applied one after another to each record.
        magnitude: Magnitude bin, ``0 .. num_magnitude_bins - 1`` (torchvision: 0..30).
        num_magnitude_bins: Bins of the magnitude scale (at least 2).
    """

    num_ops: int = 2
    magnitude: int = 9
    num_magnitude_bins: int = 31

    def validate(self) -> None:
        super().validate()
        check_int(self.num_ops, where="RandAugmentConfig.num_ops", minimum=1)
        bins = check_int(self.num_magnitude_bins, where="RandAugmentConfig.num_magnitude_bins")
        if bins < 2:
            raise ConfigError(
                "at least two magnitude bins",
                where="RandAugmentConfig.num_magnitude_bins",
                expected="an int >= 2",
                found=repr(bins),
            )
        magnitude = check_int(self.magnitude, where="RandAugmentConfig.magnitude")
        if not 0 <= magnitude < bins:
            raise ConfigError(
                "magnitude out of range",
                where="RandAugmentConfig.magnitude",
                expected=f"an int in 0..{bins - 1}",
                found=repr(magnitude),
            )


class RandAugment(_Policy):
    """torchvision's ``RandAugment``: ``num_ops`` random operations at one magnitude.

    Per record and step, one operation of ``config.op_names()`` is picked uniformly
    (uniform ``2 n`` of the policy's stream) and, for the signed ones, its magnitude
    is negated when uniform ``2 n + 1`` is below 0.5. Magnitudes at bin ``M`` of
    ``B`` (torchvision's table): shear ``linspace(0, 0.3)`` (a shear factor, about
    the top-left corner as torchvision), translate ``linspace(0, 150 / 331 * size)``
    pixels (truncated to whole pixels), rotate ``linspace(0, 30)`` degrees,
    brightness / color / contrast / sharpness ``linspace(0, 0.9)`` (factor
    ``1 + m``), posterize ``8 - round(M / ((B - 1) / 4))`` bits, solarize
    ``linspace(255, 0)`` levels (threshold ``m / 255``).

    The operations are the library's (:class:`Brightness`, :class:`Saturation`,
    :class:`Contrast`, :class:`Sharpness`, :class:`Posterize`, :class:`Solarize`,
    :class:`AutoContrast`, :class:`Equalize`, :class:`Rotate`, :class:`Affine`) with
    fixed magnitudes. At each step every record goes through one of a few paths: all
    geometric operations are one sampling through each record's affine map, each
    enhancement one blend with each record's signed factor, each other operation
    its operator. ``"color"`` needs RGB images.

    Example:
        >>> from flax import nnx
        >>> augment = RandAugment(RandAugmentConfig(num_ops=2, magnitude=9), rngs=nnx.Rngs(0))
    """

    config_type = RandAugmentConfig
    config: RandAugmentConfig
    # posterize, equalize and nearest sampling are piecewise constant
    differentiable_in: tuple[str, ...] = ()
    reference: str = "torchvision.transforms.RandAugment (operations: PIL references)"

    def __init__(
        self, config: RandAugmentConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        self.require_config(config)
        self._policy_init(config, config.stream_name, True, [], rngs, name)

    def choices(
        self, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[jax.Array, jax.Array]:
        """``(kinds, negated)``: ``(B, num_ops)`` operation indices and sign flips."""
        u = self.uniforms(record_ids, epoch, seed, 2 * self.config.num_ops)
        kinds = len(self.config.op_names())
        index = jnp.minimum(jnp.floor(u[:, 0::2] * kinds).astype(jnp.int32), kinds - 1)
        return index, u[:, 1::2] < 0.5

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        record_ids, epoch = jnp.asarray(record_ids, jnp.int32), jnp.asarray(epoch, jnp.uint32)
        images = image_field(data, self.config.field, self.name)
        height, width = images.shape[1:3]
        names = self.config.op_names()
        groups = _operation_groups(names)
        group_of = jnp.asarray([next(g for g, ops in enumerate(groups) if n in ops) for n in names])
        kinds, negated = self.choices(record_ids, epoch, seed)

        def group_path(ops: tuple[str, ...]) -> Path:
            def path(d: Fields, s: Fields, rows: tuple[jax.Array, ...]) -> tuple[Fields, Fields]:
                ids, kind, neg = rows
                return self._group_output(ops, d, s, kind, neg, (ids, epoch, seed))

            return path

        paths = [group_path(ops) for ops in groups]
        for step in range(self.config.num_ops):
            kind, neg = kinds[:, step], negated[:, step]
            rows = (record_ids, kind, neg)
            data, states = self._run(group_of[kind], paths, data, states, rows, [])
        return data, states

    def _group_output(
        self,
        ops: tuple[str, ...],
        data: Fields,
        states: Fields,
        kind: jax.Array,
        negated: jax.Array,
        keys: tuple[jax.Array, jax.Array, int],
    ) -> tuple[Fields, Fields]:
        """One candidate output for a group of operations, each record's own sign applied.

        The geometric operations are one affine map per record (one sampling); an
        enhancement is one blend with per-record factors ``1 +- m``; every other
        operation is its library operator at its fixed magnitude.
        """
        cfg, field = self.config, self.config.field
        images = data[field]
        height, width = images.shape[1:3]
        names = cfg.op_names()
        magnitude = {n: self._magnitude(n, height, width) for n in ops}
        if ops[0] in GEOMETRIC_OPS:
            values = {k: jnp.zeros(kind.shape, jnp.float32) for k in _AFFINE_KEYS}
            for name in ops:
                chosen = kind == names.index(name)
                plus = _geometry_values(name, magnitude[name], height, width)
                minus = _geometry_values(name, -magnitude[name], height, width)
                for key in plus:
                    signed = jnp.where(negated, jnp.float32(minus[key]), jnp.float32(plus[key]))
                    values[key] = jnp.where(chosen, signed, values[key])
            carrier = augment_operator(ops[0], magnitude[ops[0]], cfg, height, width)
            step = affine_step(carrier, height, width, affine_matrix(height, width, **values))
            moved = render((step,), images, mask=False, where=f"{self.name}, field '{field}'")
            return {**data, field: moved}, states
        name = ops[0]
        op = augment_operator(name, magnitude[name], cfg, height, width)
        if op is None:
            return data, states
        if name in ENHANCEMENTS:
            m = magnitude[name]
            factors = jnp.where(negated, jnp.float32(1.0 - m), jnp.float32(1.0 + m))
            enhance = ENHANCEMENTS[name]
            out = cast(PixelOperator, op).on_pixels(images, lambda work: enhance(work, factors))
            return {**data, field: out}, states
        return op.apply_batch(data, states, *keys)

    def _magnitude(self, name: str, height: int, width: int) -> float:
        cfg = self.config
        return randaugment_magnitude(name, cfg.magnitude, cfg.num_magnitude_bins, height, width)


def randaugment_magnitude(kind: str, index: int, bins: int, height: int, width: int) -> float:
    """torchvision's RandAugment magnitude of ``kind`` at bin ``index`` of ``bins``."""
    top = {
        "shear_x": 0.3,
        "shear_y": 0.3,
        "translate_x": 150.0 / 331.0 * width,
        "translate_y": 150.0 / 331.0 * height,
        "rotate": 30.0,
        "brightness": 0.9,
        "color": 0.9,
        "contrast": 0.9,
        "sharpness": 0.9,
    }
    if kind in top:
        return float(np.linspace(0.0, top[kind], bins)[index])
    if kind == "posterize":
        return float(8 - int(np.round(index / ((bins - 1) / 4.0))))
    if kind == "solarize":
        return float(np.linspace(255.0, 0.0, bins)[index])
    return 0.0


def augment_operator(
    kind: str, magnitude: float, config: _AugmentConfig, height: int, width: int
) -> Operator | None:
    """The library operator applying ``kind`` at a fixed ``magnitude`` (``None``: identity).

    Magnitudes are torchvision's: factors ``1 + m``, shear factors (about the
    top-left corner), whole pixels of translation, degrees, bits, threshold levels.
    """
    field = config.field
    if kind in ("brightness", "color", "contrast", "sharpness"):
        enhance = {
            "brightness": (Brightness, BrightnessConfig),
            "color": (Saturation, SaturationConfig),
            "contrast": (Contrast, ContrastConfig),
            "sharpness": (Sharpness, SharpnessConfig),
        }
        op_type, config_type = enhance[kind]
        return op_type(config_type(field=field, factor=1.0 + magnitude))
    if kind == "posterize":
        return Posterize(PosterizeConfig(field=field, bits=int(magnitude)))
    if kind == "solarize":
        return Solarize(SolarizeConfig(field=field, threshold=magnitude / 255.0))
    if kind == "autocontrast":
        return AutoContrast(AutoContrastConfig(field=field))
    if kind == "equalize":
        return Equalize(EqualizeConfig(field=field))
    sampling: dict[str, Any] = {
        "field": field,
        "interpolation": config.interpolation,
        "fill": config.fill,
    }
    if kind == "rotate":
        return Rotate(RotateConfig(angle=magnitude, **sampling))
    if kind in GEOMETRIC_OPS:
        geometry: dict[str, Any] = _geometry_values(kind, magnitude, height, width)
        return Affine(AffineConfig(**geometry, **sampling))
    return None


#: The operations that only move pixels: each is an affine map of the image.
GEOMETRIC_OPS = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
#: The enhancements: a blend with a degenerate image, by a per-record factor.
ENHANCEMENTS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "brightness": adjust_brightness,
    "color": adjust_saturation,
    "contrast": adjust_contrast,
    "sharpness": lambda images, factor: blend(smooth3x3(images), images, factor),
}
_AFFINE_KEYS = ("rotation", "translate_x", "translate_y", "shear_x", "shear_y")


def _geometry_values(kind: str, magnitude: float, height: int, width: int) -> dict[str, float]:
    """The :func:`affine_matrix` arguments of a geometric operation at ``magnitude``."""
    if kind == "rotate":
        return {"rotation": magnitude}
    if kind in ("translate_x", "translate_y"):
        return {kind: float(int(magnitude))}  # whole pixels, as torchvision
    # torchvision shears about the top-left corner: a shear about the centre moved
    # back by what it moves the corner.
    angle = math.degrees(math.atan(magnitude))
    if kind == "shear_x":
        return {"shear_x": angle, "translate_x": -magnitude * height / 2.0}
    return {"shear_y": angle, "translate_y": -magnitude * width / 2.0}


def _operation_groups(names: Sequence[str]) -> list[tuple[str, ...]]:
    """The operations that share one candidate output: all geometric ones together."""
    geometric = tuple(n for n in names if n in GEOMETRIC_OPS)
    groups = [(n,) for n in names if n not in GEOMETRIC_OPS]
    return groups + ([geometric] if geometric else [])


@dataclass(frozen=True)
class TrivialAugmentConfig(_AugmentConfig):
    """TrivialAugment (torchvision's ``TrivialAugmentWide`` ranges); see :class:`_AugmentConfig`."""


class TrivialAugment(_Policy):
    """TrivialAugment: one random operation per record at a uniform random magnitude.

    The operation is picked uniformly (the uniform of the policy's first word);
    each operation is a library operator drawing its magnitude uniformly per record
    from its own stream (``"<stream>/<operation>"``) over torchvision's
    ``TrivialAugmentWide`` range: shear ``+-degrees(atan(0.99))`` degrees (about
    the image centre), translate ``+-32`` pixels, rotate ``+-135`` degrees,
    brightness / color / contrast / sharpness factors ``1 +- 0.99``, posterize
    ``2..8`` bits, solarize thresholds ``0..1``.

    Differences from torchvision: magnitudes are continuous (torchvision draws one
    of 31 bins, then a sign), translations are not rounded to whole pixels, and
    shears are about the centre (torchvision: the top-left corner).

    Example:
        >>> from flax import nnx
        >>> augment = TrivialAugment(TrivialAugmentConfig(), rngs=nnx.Rngs(0))
    """

    config_type = TrivialAugmentConfig
    config: TrivialAugmentConfig
    differentiable_in: tuple[str, ...] = ()  # as RandAugment
    reference: str = "torchvision.transforms.TrivialAugmentWide (continuous magnitudes)"

    def __init__(
        self,
        config: TrivialAugmentConfig,
        *,
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        stream = config.stream_name or type(self).__name__
        ops = [
            _trivial_operator(kind, config, f"{stream}/{kind}", rngs) for kind in config.op_names()
        ]
        self._policy_init(config, stream, True, [op for op in ops if op is not None], rngs, name)
        self.operators = nnx.List([op for op in ops if op is not None])

    def choices(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array:
        """Each record's operation index into ``config.op_names()`` ``(B,)`` int32."""
        kinds = len(self.config.op_names())
        u = self._choice_uniforms(record_ids, epoch, seed)
        return jnp.minimum(jnp.floor(u * kinds).astype(jnp.int32), kinds - 1)

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        record_ids, epoch = jnp.asarray(record_ids, jnp.int32), jnp.asarray(epoch, jnp.uint32)
        image_field(data, self.config.field, self.name)
        ops = iter(self.operators)
        paths = [
            _unchanged if kind == "identity" else _through(next(ops), epoch, seed)
            for kind in self.config.op_names()
        ]
        index = self.choices(record_ids, epoch, seed)
        return self._run(index, paths, data, states, record_ids, list(self.operators))

    def fingerprint(self) -> dict[str, Any]:
        ops = [op.fingerprint() for op in self.operators]
        return {**super().fingerprint(), "operators": ops}


def _trivial_operator(
    kind: str, config: TrivialAugmentConfig, stream: str, rngs: nnx.Rngs | None
) -> Operator | None:
    """The ranged library operator of ``kind`` (``None``: identity)."""
    common: dict[str, Any] = {"field": config.field, "stream_name": stream}
    if kind in ("brightness", "color", "contrast", "sharpness"):
        enhance = {
            "brightness": (Brightness, BrightnessConfig),
            "color": (Saturation, SaturationConfig),
            "contrast": (Contrast, ContrastConfig),
            "sharpness": (Sharpness, SharpnessConfig),
        }
        op_type, config_type = enhance[kind]
        return op_type(config_type(factor=(0.01, 1.99), **common), rngs=rngs)
    if kind == "posterize":
        return Posterize(PosterizeConfig(bits=(2, 8), **common), rngs=rngs)
    if kind == "solarize":
        return Solarize(SolarizeConfig(threshold=(0.0, 1.0), **common), rngs=rngs)
    if kind == "autocontrast":
        return AutoContrast(AutoContrastConfig(**common))
    if kind == "equalize":
        return Equalize(EqualizeConfig(**common))
    sampling: dict[str, Any] = {
        **common,
        "interpolation": config.interpolation,
        "fill": config.fill,
    }
    if kind == "rotate":
        return Rotate(RotateConfig(angle=(-135.0, 135.0), **sampling), rngs=rngs)
    shear = math.degrees(math.atan(0.99))
    ranges: dict[str, dict[str, Any]] = {
        "shear_x": {"shear_x": (-shear, shear)},
        "shear_y": {"shear_y": (-shear, shear)},
        "translate_x": {"translate_x": (-32.0, 32.0)},
        "translate_y": {"translate_y": (-32.0, 32.0)},
    }
    if kind in ranges:
        return Affine(AffineConfig(**ranges[kind], **sampling), rngs=rngs)
    return None
