"""`Resize`: every image to one size, with PIL's resampling filters.

``"bilinear"``, ``"bicubic"`` and ``"area"`` are PIL's ``BILINEAR``, ``BICUBIC``
(Keys, ``a = -0.5``) and ``BOX`` filters: separable, pixel centres at ``i + 0.5``,
weights normalised over the taps inside the image (so edges repeat). With
``antialias=True`` (PIL's behaviour) a downscaling filter is widened by the scale
factor, so every input pixel contributes; ``antialias=False`` keeps it one pixel
wide (point sampling, as ``jax.image.resize(..., antialias=False)``). ``"area"`` is
always the area average. ``"nearest"`` is PIL's ``NEAREST``: input pixel
``floor((i + 0.5) * H / h)``.

Like PIL, the two passes run one after the other (the one with the longer filter
first, columns first when equal, which is PIL's order for most sizes), and integer
images are rounded (half up) and clipped after each pass, so uint8 results are
within one level of PIL's (which uses fixed-point weights); float images are not
clipped (bicubic may overshoot their range). Fields in ``also`` are resized with ``"nearest"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.config import require_bool
from datarax.core.errors import ConfigError
from datarax.operators.image.base import as_pair
from datarax.operators.image.sampling import SamplingStep, axis_aligned, to_dtype, window
from datarax.operators.image.spatial import (
    GeometricConfig,
    IndexMap,
    SpatialOperator,
    require_choice,
)

ResizeMethod = Literal["nearest", "bilinear", "bicubic", "area"]
METHODS = ("nearest", "bilinear", "bicubic", "area")


@dataclass(frozen=True)
class ResizeConfig(GeometricConfig):
    """Args:
    size: Output ``(height, width)``, or one int for a square.
    interpolation: ``"nearest"``, ``"bilinear"``, ``"bicubic"`` or ``"area"``.
    antialias: Widen the filter when downscaling (ignored by ``"nearest"`` and
        ``"area"``).
    """

    size: int | tuple[int, int] = 224
    interpolation: ResizeMethod = "bilinear"
    antialias: bool = True

    def validate(self) -> None:
        super().validate()
        size = as_pair(self.size, "ResizeConfig.size")
        if min(size) <= 0:
            raise ConfigError(
                "size must be positive",
                where="ResizeConfig.size",
                expected="sizes > 0",
                found=repr(self.size),
            )
        require_choice(self, "interpolation", METHODS)
        require_bool(self, "antialias")


class Resize(SpatialOperator):
    """Resizes every image to ``config.size``.

    Nearest resizing is a gather and point-sampled bilinear resizing (upscaling,
    or ``antialias=False``) a sampling step, so both fuse with adjacent geometric
    operators; filtered resizing runs on its own, as two small matrix products.

    Example:
        >>> import jax.numpy as jnp
        >>> op = Resize(ResizeConfig(size=(1, 2), interpolation="area"))
        >>> op.transform_images(jnp.array([[[0.0, 1.0, 2.0, 3.0]]]), None).tolist()
        [[[0.5, 2.5]]]
    """

    config_type = ResizeConfig
    config: ResizeConfig
    differentiable_in: tuple[str, ...] = ("input",)
    reference: str = "PIL.Image.resize (NEAREST, BILINEAR, BICUBIC, BOX)"

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return as_pair(self.config.size, "ResizeConfig.size")

    def index_map(self, height: int, width: int, draws: jax.Array | None) -> IndexMap | None:
        if self.config.interpolation != "nearest":
            return None
        return _nearest_map(height, width, self.output_size(height, width))

    def sampling_steps(
        self, height: int, width: int, draws: jax.Array | None
    ) -> tuple[SamplingStep, ...] | None:
        out_h, out_w = self.output_size(height, width)
        method = self.config.interpolation
        filtered = self.config.antialias and (out_h < height or out_w < width)
        if method == "nearest" or (method == "bilinear" and not filtered):
            return (
                SamplingStep(
                    matrix=axis_aligned(height / out_h, 0.0, width / out_w, 0.0, 1),
                    in_size=(height, width),
                    out_size=(out_h, out_w),
                    interpolation=method,
                    window=window(0.0, height, 0.0, width, 1),
                ),
            )
        return None

    def move(self, values: jax.Array, draws: jax.Array | None, *, mask: bool) -> jax.Array:
        height, width = values.shape[1:3]
        out_h, out_w = self.output_size(height, width)
        if mask or self.config.interpolation == "nearest":
            return _nearest_map(height, width, (out_h, out_w)).apply(values, self._where())
        return resize(
            values, (out_h, out_w), self.config.interpolation, antialias=self.config.antialias
        )


def resize(
    images: jax.Array,
    size: tuple[int, int],
    method: Literal["bilinear", "bicubic", "area"],
    *,
    antialias: bool = True,
) -> jax.Array:
    """``(B, H, W[, C])`` images resampled to ``size`` with a PIL filter (see module doc).

    Differentiable in ``images``; integer images keep their dtype.
    """
    height, width = images.shape[1:3]
    passes = [(2, width, size[1]), (1, height, size[0])]
    if _taps(height, size[0], method, antialias) > _taps(width, size[1], method, antialias):
        passes.reverse()  # PIL runs the pass with the wider filter first
    values = images
    for axis, in_size, out_size in passes:
        if out_size != in_size:
            weights = resample_weights(in_size, out_size, method, antialias=antialias)
            values = _apply_weights(values, weights, axis=axis, dtype=images.dtype)
    return values


def resample_weights(
    in_size: int, out_size: int, method: str, *, antialias: bool = True
) -> np.ndarray:
    """``(out_size, in_size)`` float64 weights of one resampling pass, rows summing to 1.

    Output pixel ``o`` is centred at input point ``c = (o + 0.5) * in / out``; tap
    ``i`` weighs ``kernel((i + 0.5 - c) / f)`` with ``f = max(in / out, 1)`` when
    the filter is widened, else 1, over the taps PIL uses.

    Example:
        >>> resample_weights(4, 2, "area").tolist()
        [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
    """
    kernel, support = _KERNELS[method]
    scale = in_size / out_size
    widen = antialias or method == "area"
    filter_scale = max(scale, 1.0) if widen else 1.0
    reach = support * filter_scale
    centres = (np.arange(out_size) + 0.5) * scale
    # PIL's tap range: [int(c - reach + 0.5), int(c + reach + 0.5)), clipped to the image.
    first = np.maximum(np.trunc(centres - reach + 0.5), 0)[:, None]
    last = np.minimum(np.trunc(centres + reach + 0.5), in_size)[:, None]
    taps = np.arange(in_size)[None, :]
    weights = kernel((taps + 0.5 - centres[:, None]) / filter_scale)
    weights = np.where((taps >= first) & (taps < last), weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total != 0)


# ----------------------------------------------------------------------- internals


def _taps(in_size: int, out_size: int, method: str, antialias: bool) -> int:
    # PIL's filter length for one pass: 2 ceil(support * scale) + 1.
    _, support = _KERNELS[method]
    widen = antialias or method == "area"
    scale = max(in_size / out_size, 1.0) if widen else 1.0
    return 2 * math.ceil(support * scale) + 1


def _apply_weights(values: jax.Array, weights: np.ndarray, *, axis: int, dtype) -> jax.Array:
    compute = dtype if dtype in (jnp.float32, jnp.float64) else jnp.float32
    matrix = jnp.asarray(weights, compute)
    spec = "oh,bh...->bo..." if axis == 1 else "ow,bhw...->bho..."
    out = jnp.einsum(spec, matrix, values.astype(compute), precision=jax.lax.Precision.HIGHEST)
    return to_dtype(out, dtype)


def _nearest_map(height: int, width: int, size: tuple[int, int]) -> IndexMap:
    out_h, out_w = size
    return IndexMap(
        rows=jnp.asarray(_nearest_index(height, out_h), jnp.int32)[None],
        cols=jnp.asarray(_nearest_index(width, out_w), jnp.int32)[None],
        height=height,
        width=width,
    )


def _nearest_index(in_size: int, out_size: int) -> np.ndarray:
    # floor((o + 0.5) * in / out) as PIL computes it: the point advanced by repeated
    # float64 additions of the scale, which decides exact ties as PIL does.
    scale = in_size / out_size
    steps = np.full(out_size, scale)
    steps[0] = 0.5 * scale
    return np.clip(np.floor(np.cumsum(steps)), 0, in_size - 1).astype(np.int64)


def _box(x: np.ndarray) -> np.ndarray:
    return ((x > -0.5) & (x <= 0.5)).astype(np.float64)


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 - np.abs(x), 0.0)


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


_KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "area": (_box, 0.5),
    "bilinear": (_triangle, 1.0),
    "bicubic": (_keys_cubic, 2.0),
}
