"""`CenterCrop`, `RandomResizedCrop`, `Pad`, `Flip`: crops, padding and mirrors.

``CenterCrop``, ``Pad`` and ``Flip`` are lattice maps (whole pixels to whole
pixels): exact gathers that fuse with every adjacent geometric operator.
``RandomResizedCrop`` is torchvision's: a box per record (area fraction in
``scale``, log-uniform aspect ratio in ``ratio``, ten tries, then a centre crop)
resized to ``size`` with bilinear (or nearest) point sampling; bilinear reads
repeat the box's edge, so the result is the box cropped and then resized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import check_int
from datarax.core.errors import ConfigError
from datarax.operators.image.affine import INTERPOLATIONS
from datarax.operators.image.base import as_pair
from datarax.operators.image.sampling import Interpolation, SamplingStep, axis_aligned, window
from datarax.operators.image.spatial import (
    GeometricConfig,
    IndexMap,
    SpatialOperator,
    require_choice,
    require_number,
)
from datarax.operators.magnitude import check_magnitude

PadMode = Literal["constant", "edge", "reflect"]
_OUTSIDE = {"constant": "fill", "edge": "edge", "reflect": "reflect"}


@dataclass(frozen=True)
class CenterCropConfig(GeometricConfig):
    """Args:
    size: Output ``(height, width)``, or one int for a square.
    fill: Value of the border when the crop is larger than the image.
    """

    size: int | tuple[int, int] = 224
    fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        _check_size(self.size, "CenterCropConfig.size")
        require_number(self, "fill")


class CenterCrop(SpatialOperator):
    """The centre ``size`` window of every image (torchvision's ``CenterCrop``).

    The top row is ``round((H - h) / 2)`` (Python rounding, as torchvision); a crop
    larger than the image is padded with ``fill`` (the extra row, if odd, at the
    bottom).

    Example:
        >>> import jax.numpy as jnp
        >>> op = CenterCrop(CenterCropConfig(size=(1, 2)))
        >>> op.transform_images(jnp.arange(12.0).reshape(1, 3, 4), None).tolist()
        [[[5.0, 6.0]]]
    """

    config_type = CenterCropConfig
    config: CenterCropConfig
    differentiable_in: tuple[str, ...] = ("input",)
    reference: str = "torchvision.transforms.CenterCrop (NumPy slicing)"

    def offsets(self, height: int, width: int) -> tuple[int, int]:
        """``(top, left)`` of the window (negative: the crop is larger than the image)."""
        out_h, out_w = as_pair(self.config.size, "size")
        return _centre(height, out_h), _centre(width, out_w)

    def index_map(self, height: int, width: int, draws: jax.Array | None) -> IndexMap:
        (out_h, out_w), (top, left) = as_pair(self.config.size, "size"), self.offsets(height, width)
        return IndexMap(
            rows=jnp.arange(top, top + out_h, dtype=jnp.int32)[None],
            cols=jnp.arange(left, left + out_w, dtype=jnp.int32)[None],
            height=height,
            width=width,
            fill=self.config.fill if (out_h > height or out_w > width) else None,
        )

    def sampling_steps(
        self, height: int, width: int, draws: jax.Array | None
    ) -> tuple[SamplingStep, ...]:
        (out_h, out_w), (top, left) = as_pair(self.config.size, "size"), self.offsets(height, width)
        return (_lattice_step(self, (height, width), (out_h, out_w), top, left, "fill"),)


@dataclass(frozen=True)
class PadConfig(GeometricConfig):
    """Args:
    padding: Pixels added on each side: one int, ``(y, x)`` (top and bottom,
        left and right), or ``(top, bottom, left, right)``.
    mode: ``"constant"`` (``fill``), ``"edge"`` (repeat the edge pixel) or
        ``"reflect"`` (mirror about the edge pixel), as ``numpy.pad``.
    fill: Value of the border in ``"constant"`` mode.
    """

    padding: int | tuple[int, ...] = 4
    mode: PadMode = "constant"
    fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        _pad_widths(self.padding)
        require_choice(self, "mode", tuple(_OUTSIDE))
        require_number(self, "fill")


class Pad(SpatialOperator):
    """Pads every image by fixed widths (``numpy.pad`` with ``constant``/``edge``/``reflect``).

    ``also`` fields are padded in the same mode (``also_fill`` in ``"constant"``).

    Example:
        >>> import jax.numpy as jnp
        >>> op = Pad(PadConfig(padding=(0, 2), mode="reflect"))
        >>> op.transform_images(jnp.array([[[1.0, 2.0, 3.0]]]), None).tolist()
        [[[3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]]]
    """

    config_type = PadConfig
    config: PadConfig
    differentiable_in: tuple[str, ...] = ("input",)
    reference: str = "numpy.pad (constant, edge, reflect)"

    def index_map(self, height: int, width: int, draws: jax.Array | None) -> IndexMap:
        top, bottom, left, right = _pad_widths(self.config.padding)
        rows = np.arange(-top, height + bottom)
        cols = np.arange(-left, width + right)
        if self.config.mode != "constant":
            rows, cols = (
                _pad_index(rows, height, self.config.mode),
                _pad_index(cols, width, self.config.mode),
            )
        padded = self.config.mode == "constant" and any((top, bottom, left, right))
        return IndexMap(
            rows=jnp.asarray(rows, jnp.int32)[None],
            cols=jnp.asarray(cols, jnp.int32)[None],
            height=height,
            width=width,
            fill=self.config.fill if padded else None,
        )

    def sampling_steps(
        self, height: int, width: int, draws: jax.Array | None
    ) -> tuple[SamplingStep, ...]:
        top, bottom, left, right = _pad_widths(self.config.padding)
        out = (height + top + bottom, width + left + right)
        outside = _OUTSIDE[self.config.mode]
        return (_lattice_step(self, (height, width), out, -top, -left, outside),)


@dataclass(frozen=True)
class FlipConfig(GeometricConfig):
    """Args:
    direction: ``"horizontal"`` (mirror the width axis) or ``"vertical"``.
    """

    direction: Literal["horizontal", "vertical"] = "horizontal"

    def validate(self) -> None:
        super().validate()
        require_choice(self, "direction", ("horizontal", "vertical"))


class Flip(SpatialOperator):
    """Mirrors every image (``RandomFlip`` with probability 1, without random keys).

    Example:
        >>> import jax.numpy as jnp
        >>> Flip(FlipConfig()).transform_images(jnp.array([[[1, 2, 3]]]), None).tolist()
        [[[3, 2, 1]]]
    """

    config_type = FlipConfig
    config: FlipConfig
    differentiable_in: tuple[str, ...] = ("input",)
    reference: str = "numpy.flip"

    def index_map(self, height: int, width: int, draws: jax.Array | None) -> IndexMap:
        rows, cols = np.arange(height), np.arange(width)
        if self.config.direction == "horizontal":
            cols = cols[::-1]
        else:
            rows = rows[::-1]
        return IndexMap(
            rows=jnp.asarray(rows, jnp.int32)[None],
            cols=jnp.asarray(cols, jnp.int32)[None],
            height=height,
            width=width,
        )

    def sampling_steps(
        self, height: int, width: int, draws: jax.Array | None
    ) -> tuple[SamplingStep, ...]:
        if self.config.direction == "horizontal":
            matrix = axis_aligned(1.0, 0.0, -1.0, float(width), 1)
        else:
            matrix = axis_aligned(-1.0, float(height), 1.0, 0.0, 1)
        return (
            SamplingStep(
                matrix=matrix,
                in_size=(height, width),
                out_size=(height, width),
                window=window(0.0, height, 0.0, width, 1),
            ),
        )

    def move(self, values: jax.Array, draws: jax.Array | None, *, mask: bool) -> jax.Array:
        return jnp.flip(values, axis=2 if self.config.direction == "horizontal" else 1)


@dataclass(frozen=True)
class RandomResizedCropConfig(GeometricConfig):
    """Args:
    size: Output ``(height, width)``, or one int for a square.
    scale: ``(low, high)`` range of the box's area as a fraction of the image's.
    ratio: ``(low, high)`` range of the box's width / height, drawn log-uniformly.
    interpolation: ``"bilinear"`` or ``"nearest"``.
    attempts: Boxes tried per record before falling back to a centre crop.
    """

    size: int | tuple[int, int] = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    interpolation: Interpolation = "bilinear"
    attempts: int = 10

    def validate(self) -> None:
        super().validate()
        _check_size(self.size, "RandomResizedCropConfig.size")
        for name in ("scale", "ratio"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise ConfigError(
                    "must be a (low, high) pair",
                    where=f"RandomResizedCropConfig.{name}",
                    expected="e.g. (0.08, 1.0)",
                    found=repr(value),
                )
            low, _ = check_magnitude(value, where=f"RandomResizedCropConfig.{name}")
            if low <= 0:
                raise ConfigError(
                    f"{name} must be positive",
                    where=f"RandomResizedCropConfig.{name}",
                    expected="0 < low <= high",
                    found=repr(value),
                )
            object.__setattr__(self, name, (float(value[0]), float(value[1])))
        require_choice(self, "interpolation", INTERPOLATIONS)
        check_int(self.attempts, where="RandomResizedCropConfig.attempts", minimum=1)


class RandomResizedCrop(SpatialOperator):
    """A random box per record, resized to ``size`` (torchvision's ``RandomResizedCrop``).

    All records' boxes are drawn at once: ``attempts`` candidates each, the first
    that fits is taken (else torchvision's centre-crop fallback). The resize is
    point sampling: bilinear (or nearest) at the output pixel centres, the box's
    edge pixels repeated, without antialiasing when the box is larger than
    ``size`` (torchvision's tensor path with ``antialias=False``).

    Example:
        >>> from flax import nnx
        >>> op = RandomResizedCrop(RandomResizedCropConfig(size=24), rngs=nnx.Rngs(0))
    """

    config_type = RandomResizedCropConfig
    config: RandomResizedCropConfig
    stochastic_default = True
    differentiable_in: tuple[str, ...] = ("input",)
    reference: str = "torchvision.transforms.RandomResizedCrop box rule; crop + jax.image.resize"

    def draws(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array | None:
        return self.uniforms(record_ids, epoch, seed, 4 * self.config.attempts)

    def boxes(self, height: int, width: int, draws: jax.Array) -> jax.Array:
        """``(B, 4)`` int32 boxes ``(top, left, box_height, box_width)`` of the records.

        ``draws`` are the records' uniforms (:meth:`draws`).
        """
        (s_lo, s_hi), (r_lo, r_hi) = self.config.scale, self.config.ratio
        u = draws.reshape(draws.shape[0], self.config.attempts, 4)
        area = height * width * (s_lo + u[..., 0] * (s_hi - s_lo))
        log_lo, log_hi = math.log(r_lo), math.log(r_hi)
        aspect = jnp.exp(log_lo + u[..., 1] * (log_hi - log_lo))
        box_w = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
        box_h = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
        fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
        top = jnp.floor(u[..., 2] * (height - box_h + 1)).astype(jnp.int32)
        left = jnp.floor(u[..., 3] * (width - box_w + 1)).astype(jnp.int32)
        candidates = jnp.stack([top, left, box_h, box_w], axis=-1)  # (B, attempts, 4)
        # The first box that fits, as a one-hot sum (no gather on the batch).
        first = jax.nn.one_hot(jnp.argmax(fits, axis=1), self.config.attempts, dtype=jnp.int32)
        chosen = (candidates * first[..., None]).sum(axis=1)
        fallback = jnp.asarray(_fallback_box(height, width, self.config.ratio), jnp.int32)
        return jnp.where(fits.any(axis=1)[:, None], chosen, fallback)

    def sampling_steps(
        self, height: int, width: int, draws: jax.Array | None
    ) -> tuple[SamplingStep, ...]:
        assert draws is not None  # stochastic: always given its draws
        out_h, out_w = as_pair(self.config.size, "size")
        box = self.boxes(height, width, draws).astype(jnp.float32)
        top, left, box_h, box_w = (box[:, k] for k in range(4))
        batch = box.shape[0]
        return (
            SamplingStep(
                matrix=axis_aligned(box_h / out_h, top, box_w / out_w, left, batch),
                in_size=(height, width),
                out_size=(out_h, out_w),
                interpolation=self.config.interpolation,
                window=window(top, top + box_h, left, left + box_w, batch),
            ),
        )


# ----------------------------------------------------------------------- internals


def _lattice_step(
    op: SpatialOperator,
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    top: int,
    left: int,
    outside: str,
) -> SamplingStep:
    (height, width), (out_h, out_w) = in_size, out_size
    reads_outside = top < 0 or left < 0 or top + out_h > height or left + out_w > width
    return SamplingStep(
        matrix=axis_aligned(1.0, float(top), 1.0, float(left), 1),
        in_size=in_size,
        out_size=out_size,
        outside=outside if reads_outside else None,  # type: ignore[arg-type]
        fill=float(getattr(op.config, "fill", 0.0)),
        mask_fill=op.config.also_fill,
        window=window(top, top + out_h, left, left + out_w, 1),
    )


def _centre(size: int, crop: int) -> int:
    if crop <= size:
        return int(round((size - crop) / 2.0))
    return -((crop - size) // 2)


def _fallback_box(height: int, width: int, ratio: tuple[float, float]) -> list[int]:
    in_ratio = width / height
    if in_ratio < min(ratio):
        box_w, box_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        box_w, box_h = int(round(height * max(ratio))), height
    else:
        box_w, box_h = width, height
    return [(height - box_h) // 2, (width - box_w) // 2, box_h, box_w]


def _pad_index(index: np.ndarray, size: int, mode: str) -> np.ndarray:
    if mode == "edge" or size == 1:
        return np.clip(index, 0, size - 1)
    period = 2 * (size - 1)
    folded = np.mod(index, period)
    return (size - 1) - np.abs(folded - (size - 1))


def _pad_widths(padding: Any) -> tuple[int, int, int, int]:
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        top, bottom, left, right = padding
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in padding):
            return top, bottom, left, right
        raise ConfigError(
            "must be non-negative ints",
            where="PadConfig.padding",
            expected="an int, (y, x) or (top, bottom, left, right)",
            found=repr(padding),
        )
    try:
        pad_y, pad_x = as_pair(padding, "PadConfig.padding")
    except ConfigError as error:
        raise ConfigError(
            "must be non-negative ints",
            where="PadConfig.padding",
            expected="an int, (y, x) or (top, bottom, left, right)",
            found=repr(padding),
        ) from error
    return pad_y, pad_y, pad_x, pad_x


def _check_size(size: object, where: str) -> None:
    pair = as_pair(size, where)  # type: ignore[arg-type]
    if min(pair) <= 0:
        raise ConfigError(
            "size must be positive", where=where, expected="sizes > 0", found=repr(size)
        )
