"""`Rotate`, `Affine`, `RandomAffine`: affine maps about the image centre, sampled.

Angles are in degrees, counter-clockwise as the image is displayed (row 0 at the
top), about the image centre ``(H / 2, W / 2)`` in pixel-centre coordinates
(centres at ``i + 0.5``): ``Rotate`` equals ``PIL.Image.rotate(angle, expand=False)``.

An affine map is torchvision's decomposition ``T * C * R * S * Sh * C^-1`` (``C``:
to the centre, ``R``: rotation, ``S``: scale, ``Sh``: shears, ``T``: translation in
pixels), written on ``(x, y)``::

    R = [[cos a, sin a], [-sin a, cos a]]        Shy = [[1, 0], [-tan sy, 1]]
    Shx = [[1, -tan sx], [0, 1]]                 A = scale * R @ Shy @ Shx

and an output pixel at ``p`` reads the input at ``C + A^-1 (p - C - T)``.
torchvision's ``affine`` documents its angle as clockwise: its ``angle=-a`` is
datarax's ``rotation=a`` (translate, scale and shear alike). Points outside the
input read ``fill``. With ``"bilinear"`` the output is differentiable in the image
and in every magnitude (``learnable=True`` makes them ``nnx.Param`` s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import require_bool
from datarax.core.errors import ConfigError
from datarax.operators.image.sampling import Interpolation, SamplingStep
from datarax.operators.image.spatial import (
    GeometricConfig,
    SpatialOperator,
    require_choice,
    require_number,
)
from datarax.operators.magnitude import Magnitude, Span, check_magnitude, draw, magnitude_of

INTERPOLATIONS = ("bilinear", "nearest")


@dataclass(frozen=True)
class RotateConfig(GeometricConfig):
    """Args:
    angle: Degrees counter-clockwise: a number, or ``(low, high)`` drawn per record.
    interpolation: ``"bilinear"`` or ``"nearest"``.
    fill: Value of pixels that come from outside the image.
    learnable: Make ``angle`` an ``nnx.Param`` (differentiable with ``"bilinear"``).
    """

    angle: float | tuple[float, float] = 0.0
    interpolation: Interpolation = "bilinear"
    fill: float = 0.0
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        check_magnitude(self.angle, where="RotateConfig.angle")
        _validate_sampling(self)


@dataclass(frozen=True)
class AffineConfig(GeometricConfig):
    """Each magnitude is a number, or ``(low, high)`` drawn per record.

    Args:
        rotation: Degrees counter-clockwise.
        translate_x, translate_y: Pixels right and down (after rotation).
        scale: Zoom factor (> 0): 2 doubles the size of what is shown.
        shear_x, shear_y: Shear angles in degrees, in ``(-90, 90)``.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill: Value of pixels that come from outside the image.
        learnable: Make every magnitude an ``nnx.Param``.
    """

    rotation: float | tuple[float, float] = 0.0
    translate_x: float | tuple[float, float] = 0.0
    translate_y: float | tuple[float, float] = 0.0
    scale: float | tuple[float, float] = 1.0
    shear_x: float | tuple[float, float] = 0.0
    shear_y: float | tuple[float, float] = 0.0
    interpolation: Interpolation = "bilinear"
    fill: float = 0.0
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        for name in ("rotation", "translate_x", "translate_y"):
            check_magnitude(getattr(self, name), where=f"AffineConfig.{name}")
        _check_scale(check_magnitude(self.scale, where="AffineConfig.scale"), "AffineConfig.scale")
        for name in ("shear_x", "shear_y"):
            _check_shear(check_magnitude(getattr(self, name), where=f"AffineConfig.{name}"), name)
        _validate_sampling(self)


@dataclass(frozen=True)
class RandomAffineConfig(GeometricConfig):
    """torchvision's ``RandomAffine`` parameters, drawn uniformly per record.

    Args:
        degrees: ``d`` for ``(-d, d)``, or ``(low, high)``; counter-clockwise.
        translate: ``(a, b)``: translations up to ``a * width`` and ``b * height``
            pixels either way; ``None`` for none. (torchvision rounds them to whole
            pixels; here they stay continuous, so they are differentiable.)
        scale: ``(low, high)`` zoom factors; ``None`` for 1.
        shear: ``s`` for an x shear in ``(-s, s)``, ``(low, high)`` for an x shear,
            ``(xlow, xhigh, ylow, yhigh)`` for both; ``None`` for none.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill: Value of pixels that come from outside the image.
        learnable: Make the ranges ``nnx.Param`` s.
    """

    degrees: float | tuple[float, float] = 0.0
    translate: tuple[float, float] | None = None
    scale: tuple[float, float] | None = None
    shear: float | tuple[float, ...] | None = None
    interpolation: Interpolation = "bilinear"
    fill: float = 0.0
    learnable: bool = False

    def validate(self) -> None:
        super().validate()
        spans = random_affine_spans(self)  # raises on bad values
        _check_scale(spans["scale"], "RandomAffineConfig.scale")
        _validate_sampling(self)


class Rotate(SpatialOperator):
    """Rotates each image about its centre by a fixed or per-record angle.

    Example:
        >>> from flax import nnx
        >>> rotate = Rotate(RotateConfig(angle=(-15.0, 15.0), fill=0.5), rngs=nnx.Rngs(0))
    """

    config_type = RotateConfig
    config: RotateConfig
    differentiable_in: tuple[str, ...] = ("input", "angle")
    reference: str = "PIL.Image.rotate (expand=False), scipy.ndimage.affine_transform"

    def __init__(
        self, config: RotateConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        self.angle: Magnitude = _magnitude(config.angle, "RotateConfig.angle", config.learnable)

    @classmethod
    def is_stochastic(cls, config: Any) -> bool:
        return _is_span(check_magnitude(config.angle, where="RotateConfig.angle"))

    def draws(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array | None:
        return self.uniforms(record_ids, epoch, seed, 1) if self.stochastic else None

    def sampling_steps(
        self, height: int, width: int, draws: jax.Array | None
    ) -> tuple[SamplingStep, ...]:
        angle = draw(self.angle, _uniforms(draws, 1)[:, 0])
        return (affine_step(self, height, width, affine_matrix(height, width, rotation=angle)),)


class Affine(SpatialOperator):
    """Rotates, translates, scales and shears each image about its centre.

    Each magnitude is fixed or drawn per record (see :class:`AffineConfig`).

    Example:
        >>> from flax import nnx
        >>> op = Affine(AffineConfig(rotation=10.0, translate_x=(-2.0, 2.0), scale=1.1),
        ...             rngs=nnx.Rngs(0))
    """

    config_type = AffineConfig
    config: AffineConfig
    differentiable_in: tuple[str, ...] = (
        "input", "rotation", "translate_x", "translate_y", "scale", "shear_x", "shear_y",
    )  # fmt: skip
    reference: str = "scipy.ndimage.affine_transform with the same matrix"

    _NAMES = ("rotation", "translate_x", "translate_y", "scale", "shear_x", "shear_y")

    def __init__(
        self, config: AffineConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        for key in self._NAMES:
            value = _magnitude(getattr(config, key), f"AffineConfig.{key}", config.learnable)
            setattr(self, key, value)

    @classmethod
    def is_stochastic(cls, config: Any) -> bool:
        return any(_is_span(check_magnitude(getattr(config, k), where=k)) for k in cls._NAMES)

    def draws(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array | None:
        count = len(self._NAMES)
        return self.uniforms(record_ids, epoch, seed, count) if self.stochastic else None

    def sampling_steps(
        self, height: int, width: int, draws: jax.Array | None
    ) -> tuple[SamplingStep, ...]:
        u = _uniforms(draws, len(self._NAMES))
        values = {k: draw(getattr(self, k), u[:, i]) for i, k in enumerate(self._NAMES)}
        return (affine_step(self, height, width, affine_matrix(height, width, **values)),)


class RandomAffine(SpatialOperator):
    """torchvision's ``RandomAffine``: a random affine map per record.

    Example:
        >>> from flax import nnx
        >>> op = RandomAffine(
        ...     RandomAffineConfig(degrees=15.0, translate=(0.1, 0.1), scale=(0.9, 1.1)),
        ...     rngs=nnx.Rngs(0),
        ... )
    """

    config_type = RandomAffineConfig
    config: RandomAffineConfig
    differentiable_in: tuple[str, ...] = (
        "input", "rotation", "translate_x", "translate_y", "scale", "shear_x", "shear_y",
    )  # fmt: skip
    reference: str = "scipy.ndimage.affine_transform with the same matrix"

    _NAMES = Affine._NAMES

    def __init__(
        self, config: RandomAffineConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        for key, span in random_affine_spans(config).items():
            setattr(self, key, magnitude_of(span, learnable=config.learnable))

    @classmethod
    def is_stochastic(cls, config: Any) -> bool:
        return any(_is_span(span) for span in random_affine_spans(config).values())

    def draws(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array | None:
        count = len(self._NAMES)
        return self.uniforms(record_ids, epoch, seed, count) if self.stochastic else None

    def sampling_steps(
        self, height: int, width: int, draws: jax.Array | None
    ) -> tuple[SamplingStep, ...]:
        u = _uniforms(draws, len(self._NAMES))
        values = {k: draw(getattr(self, k), u[:, i]) for i, k in enumerate(self._NAMES)}
        values["translate_x"] = values["translate_x"] * width  # fractions of the size
        values["translate_y"] = values["translate_y"] * height
        return (affine_step(self, height, width, affine_matrix(height, width, **values)),)


def affine_matrix(
    height: int,
    width: int,
    *,
    rotation: jax.Array | float = 0.0,
    translate_x: jax.Array | float = 0.0,
    translate_y: jax.Array | float = 0.0,
    scale: jax.Array | float = 1.0,
    shear_x: jax.Array | float = 0.0,
    shear_y: jax.Array | float = 0.0,
) -> jax.Array:
    """``(N, 3, 3)`` maps from output ``(y, x, 1)`` to input ``(y, x, 1)`` (see module doc).

    Every argument is a number or one value per record (``N`` of them); the result
    is differentiable in all of them.

    Example:
        >>> m = affine_matrix(4, 4, rotation=90.0)  # the right edge comes to the top
        >>> [[round(float(v), 6) + 0.0 for v in row] for row in m[0, :2]]  # y_in, x_in
        [[0.0, 1.0, 0.0], [-1.0, 0.0, 4.0]]
    """
    args = [rotation, translate_x, translate_y, scale, shear_x, shear_y]
    rot, tx, ty, s, shx, shy = jnp.broadcast_arrays(*(jnp.asarray(a, jnp.float32) for a in args))
    rot, tx, ty, s, shx, shy = (jnp.atleast_1d(v) for v in (rot, tx, ty, s, shx, shy))
    a, kx, ky = jnp.deg2rad(rot), jnp.tan(jnp.deg2rad(shx)), jnp.tan(jnp.deg2rad(shy))
    cos, sin = _exact_zero(jnp.cos(a)), _exact_zero(jnp.sin(a))
    # A = s * R @ Shy @ Shx on (x, y); Shy @ Shx = [[1, -kx], [-ky, 1 + kx ky]].
    a00 = s * (cos - sin * ky)
    a01 = s * (-cos * kx + sin * (1 + kx * ky))
    a10 = s * (-sin - cos * ky)
    a11 = s * (sin * kx + cos * (1 + kx * ky))
    det = s * s  # rotations and shears have determinant 1
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det  # A^-1 on (x, y)
    cy, cx = height / 2.0, width / 2.0
    # input = C + A^-1 (output - C - T), rows for (y, x)
    off_y = cy - i10 * (cx + tx) - i11 * (cy + ty)
    off_x = cx - i00 * (cx + tx) - i01 * (cy + ty)
    zero, one = jnp.zeros_like(a00), jnp.ones_like(a00)
    return jnp.stack(
        [
            jnp.stack([i11, i10, off_y], -1),
            jnp.stack([i01, i00, off_x], -1),
            jnp.stack([zero, zero, one], -1),
        ],
        axis=1,
    )


def random_affine_spans(config: RandomAffineConfig) -> dict[str, Span]:
    """The ``(low, high)`` range of each affine parameter for a :class:`RandomAffineConfig`.

    Translations are fractions of the width and height.
    """
    degrees = config.degrees
    if isinstance(degrees, (int, float)) and not isinstance(degrees, bool):
        if degrees < 0:
            raise ConfigError(
                "a single number of degrees must be non-negative",
                where="RandomAffineConfig.degrees",
                expected="d >= 0 (for the range (-d, d)) or a (low, high) pair",
                found=repr(degrees),
            )
        degrees = (-degrees, degrees)
    spans = {"rotation": check_magnitude(degrees, where="RandomAffineConfig.degrees")}
    if config.translate is None:
        spans["translate_x"] = spans["translate_y"] = (0.0, 0.0)
    else:
        translate = config.translate
        if not isinstance(translate, (tuple, list)) or len(translate) != 2:
            raise ConfigError(
                "must be a pair of fractions",
                where="RandomAffineConfig.translate",
                expected="(a, b) with 0 <= a, b <= 1, or None",
                found=repr(translate),
            )
        for key, value in zip(("translate_x", "translate_y"), translate, strict=True):
            span = check_magnitude(
                value, where="RandomAffineConfig.translate", minimum=0.0, maximum=1.0
            )
            spans[key] = (-span[0], span[0])
    spans["scale"] = (
        (1.0, 1.0)
        if config.scale is None
        else check_magnitude(_pair(config.scale, "scale"), where="RandomAffineConfig.scale")
    )
    shear = config.shear
    if shear is None:
        shear_x, shear_y = (0.0, 0.0), (0.0, 0.0)
    elif isinstance(shear, (tuple, list)) and len(shear) == 4:
        shear_x = check_magnitude(tuple(shear[:2]), where="RandomAffineConfig.shear")
        shear_y = check_magnitude(tuple(shear[2:]), where="RandomAffineConfig.shear")
    elif isinstance(shear, (tuple, list)):
        shear_x, shear_y = check_magnitude(shear, where="RandomAffineConfig.shear"), (0.0, 0.0)
    else:
        s = check_magnitude(shear, where="RandomAffineConfig.shear", minimum=0.0)[0]
        shear_x, shear_y = (-s, s), (0.0, 0.0)
    _check_shear(shear_x, "shear", "RandomAffineConfig")
    _check_shear(shear_y, "shear", "RandomAffineConfig")
    spans["shear_x"], spans["shear_y"] = shear_x, shear_y
    return spans


# ----------------------------------------------------------------------- internals


def affine_step(op: Any, height: int, width: int, matrix: jax.Array) -> SamplingStep:
    """The sampling step of ``matrix`` with ``op``'s interpolation and fills."""
    return SamplingStep(
        matrix=matrix,
        in_size=(height, width),
        out_size=(height, width),
        interpolation=op.config.interpolation,
        outside="fill",
        fill=op.config.fill,
        mask_fill=op.config.also_fill,
    )


def _exact_zero(value: jax.Array) -> jax.Array:
    # cos(90 deg) is -4e-8 in float32: make it 0 (as PIL rounds its matrix) so that
    # quarter turns map pixel centres exactly; the gradient stays that of ``value``.
    return value + jax.lax.stop_gradient(jnp.where(jnp.abs(value) < 1e-6, -value, 0.0))


def _uniforms(draws: jax.Array | None, count: int) -> jax.Array:
    # A fixed magnitude ignores its uniform: one row serves every record.
    return jnp.zeros((1, count), jnp.float32) if draws is None else draws


def _magnitude(value: Any, where: str, learnable: bool) -> Magnitude:
    return magnitude_of(check_magnitude(value, where=where), learnable=learnable)


def _is_span(span: Span) -> bool:
    return span[0] != span[1]


def _pair(value: Any, name: str) -> Any:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ConfigError(
            "must be a (low, high) pair",
            where=f"RandomAffineConfig.{name}",
            expected="e.g. (0.9, 1.1), or None",
            found=repr(value),
        )
    return tuple(value)


def _check_scale(span: Span, where: str) -> None:
    if span[0] <= 0:
        raise ConfigError(
            "scale must be positive", where=where, expected="values > 0", found=repr(span)
        )


def _check_shear(span: Span, name: str, config: str = "AffineConfig") -> None:
    if not (span[0] > -90.0 and span[1] < 90.0):
        raise ConfigError(
            "shear out of range",
            where=f"{config}.{name}",
            expected="degrees in (-90, 90)",
            found=repr(span),
        )


def _validate_sampling(config: Any) -> None:
    require_choice(config, "interpolation", INTERPOLATIONS)
    require_number(config, "fill")
    require_bool(config, "learnable")
