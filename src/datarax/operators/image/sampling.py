"""Coordinate-map sampling: each output pixel reads its image at a continuous point.

Coordinates are continuous, ``(y, x)``, with pixel centres at ``(i + 0.5, j + 0.5)``:
pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)`` and an ``H x W`` image spans
``[0, H) x [0, W)``. This is the convention of PIL's geometric transforms (and of
``jax.image.resize``); ``scipy.ndimage`` puts centres at integers instead, so a map
``p -> A p + t`` here is ``q -> A q + (t + A @ 0.5 - 0.5)`` there.

- ``"bilinear"`` reads the four pixels around the point, weighted by distance, and
  repeats the edge pixels for points in the outer half-pixel band; it is
  differentiable in the image and in the point.
- ``"nearest"`` reads the pixel that contains the point (``floor(y), floor(x)``).
- A point outside ``[0, H) x [0, W)`` reads the fill value (a hard edge, as PIL).

A geometric operator is one or more :class:`SamplingStep` s: an affine map (a 3x3
matrix per record) from output points to input points, plus how it treats points
outside its input. :func:`render` runs a chain of steps with ONE gather from the
source: the matrices compose by matrix product, and the non-affine parts (edge or
reflect padding, nearest rounding, a crop window's edge) are applied to the points
in between.

Example:
    >>> import jax.numpy as jnp
    >>> image = jnp.arange(4.0).reshape(1, 2, 2)  # [[0, 1], [2, 3]]
    >>> sample(image, jnp.array([[[1.0]]]), jnp.array([[[1.0]]])).tolist()  # the centre
    [[[1.5]]]
    >>> sample(image, jnp.array([[[2.5]]]), jnp.array([[[0.5]]]), fill=-1.0).tolist()
    [[[-1.0]]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.errors import SchemaError

Interpolation = Literal["bilinear", "nearest"]
Outside = Literal["fill", "edge", "reflect"]

__all__ = [
    "Interpolation",
    "Outside",
    "SamplingStep",
    "axis_aligned",
    "fill_value",
    "render",
    "sample",
    "to_dtype",
    "window",
]


def sample(
    images: jax.Array,
    ys: jax.Array,
    xs: jax.Array,
    *,
    interpolation: Interpolation = "bilinear",
    fill: float | None = None,
) -> jax.Array:
    """Read ``(B, H, W[, C])`` images at points ``(ys, xs)``, each ``(B, h, w)``.

    Returns ``(B, h, w[, C])`` in the images' dtype (integer images are rounded to
    the nearest integer and clipped to their range, as PIL does). Points outside the
    image read ``fill``; ``fill=None`` reads the nearest edge pixel instead.
    """
    out = _interpolate(images, ys, xs, interpolation)
    if fill is None:
        return out
    outside = ~_inside(ys, xs, (images.shape[1], images.shape[2]))
    return jnp.where(_expand(outside, out), fill_value(fill, images.dtype, "sample"), out)


@dataclass(frozen=True)
class SamplingStep:
    """One geometric map from output points to input points, per record.

    Attributes:
        matrix: ``(B, 3, 3)``: input ``(y, x, 1)`` = matrix @ output ``(y, x, 1)``
            (``(1, 3, 3)`` when the same for every record).
        in_size, out_size: ``(height, width)`` of the step's input and output.
        interpolation: How the step reads its input; ``None`` for a lattice map
            (crop, flip, pad), which sends pixel centres to pixel centres and so is
            exact under either interpolation.
        outside: How points outside the input read: ``"fill"`` (the fill value),
            ``"edge"`` (the nearest edge pixel), ``"reflect"`` (mirrored about the
            edge pixel, like ``numpy.pad(mode="reflect")``); ``None`` when the step
            never reads outside.
        fill: The image's fill value; ``mask_fill`` that of fields moved with it.
        window: ``(B, 4)`` (or ``(1, 4)``) ``(top, bottom, left, right)`` in input coordinates: the
            part of the input the step reads, its edge repeated beyond (a crop read
            by a later interpolating step, or resized like torchvision's
            crop-then-resize); ``None`` for the whole input.
    """

    matrix: jax.Array
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    interpolation: Interpolation | None = None
    outside: Outside | None = None
    fill: float = 0.0
    mask_fill: float = 0.0
    window: jax.Array | None = None


def render(
    steps: Sequence[SamplingStep], values: jax.Array, *, mask: bool, where: str
) -> jax.Array:
    """``values`` (``(B, H, W[, C])``) through ``steps`` (earliest first), one gather.

    Points are traced back from the last step's output to the source. A lattice
    step is exact; an interpolating step reads the result of the steps before it
    at the traced point, which equals running the steps one by one exactly when
    those earlier steps are lattice maps, and closely when they interpolate too.
    ``mask=True`` (fields moved with an image) reads every interpolating step with
    ``"nearest"`` and fills with each step's ``mask_fill``: a run of nearest steps
    equals running them one by one exactly.
    """
    height, width = steps[-1].out_size
    batch = values.shape[0]  # a step's matrix may be one for all records: (1, 3, 3)
    points = _Points.grid(batch, height, width, steps[-1].matrix.dtype)
    fractional = False  # whether points may lie off pixel centres
    fills: list[tuple[jax.Array, float]] = []
    for step in reversed(steps):
        points = points.then(step.matrix)
        fractional = fractional or step.interpolation is not None
        if fractional and step.window is not None:
            points = points.clamped(*_window_bounds(step.window))
        if step.outside == "fill":
            ys, xs = points.values()
            fills.append((~_inside(ys, xs, step.in_size), step.mask_fill if mask else step.fill))
        elif step.outside == "edge":
            h, w = step.in_size
            points = points.clamped(0.5, h - 0.5, 0.5, w - 0.5)
        elif step.outside == "reflect":
            points = points.mapped(lambda y, x, size=step.in_size: _reflect_point(y, x, size))
        if step.interpolation == "nearest" or (mask and step.interpolation is not None):
            points = points.mapped(lambda y, x: (jnp.floor(y) + 0.5, jnp.floor(x) + 0.5))
            fractional = False
    ys, xs = (jnp.broadcast_to(v, (batch, height, width)) for v in points.values())
    out = _interpolate(values, ys, xs, "bilinear" if fractional else "nearest")
    for outside, fill in reversed(fills):  # the latest step that is outside decides
        out = jnp.where(_expand(outside, out), fill_value(fill, values.dtype, where), out)
    return out


def axis_aligned(
    scale_y: jax.Array | float,
    offset_y: jax.Array | float,
    scale_x: jax.Array | float,
    offset_x: jax.Array | float,
    batch: int,
) -> jax.Array:
    """``(B, 3, 3)`` matrices of ``y -> scale_y * y + offset_y``, ``x -> scale_x * x + offset_x``.

    Each argument is a number or one value per record.
    """
    zero = jnp.zeros((batch,), jnp.float32)
    sy, oy, sx, ox = (
        jnp.asarray(v, jnp.float32) + zero for v in (scale_y, offset_y, scale_x, offset_x)
    )
    one = zero + 1.0
    return jnp.stack(
        [
            jnp.stack([sy, zero, oy], -1),
            jnp.stack([zero, sx, ox], -1),
            jnp.stack([zero, zero, one], -1),
        ],
        axis=1,
    )


def window(
    top: jax.Array | float,
    bottom: jax.Array | float,
    left: jax.Array | float,
    right: jax.Array | float,
    batch: int,
) -> jax.Array:
    """``(B, 4)`` windows ``[top, bottom) x [left, right)`` (numbers or one per record)."""
    zero = jnp.zeros((batch,), jnp.float32)
    return jnp.stack([jnp.asarray(v, jnp.float32) + zero for v in (top, bottom, left, right)], -1)


def fill_value(fill: float, dtype: jnp.dtype, where: str) -> np.ndarray:
    """``fill`` as a scalar of ``dtype``; a :class:`SchemaError` when it cannot hold it."""
    value = np.asarray(fill).astype(dtype)
    if value != fill:
        raise SchemaError(
            "fill value not representable in the image dtype",
            where=where,
            expected=f"a {np.dtype(dtype)} value",
            found=repr(fill),
        )
    return value


# ----------------------------------------------------------------------- internals


class _Points:
    """Points per output pixel: ``matrix @ base``, ``base`` the output pixel centres
    until a non-affine step forces values (then the matrix starts again from identity),
    so that chained affine steps compose by matrix product."""

    def __init__(self, matrix: jax.Array, base: tuple[jax.Array, jax.Array] | None, size):
        self.matrix, self.base, self.size = matrix, base, size

    @classmethod
    def grid(cls, batch: int, height: int, width: int, dtype) -> _Points:
        eye = jnp.broadcast_to(jnp.eye(3, dtype=dtype), (batch, 3, 3))
        return cls(eye, None, (height, width))

    def then(self, matrix: jax.Array) -> _Points:
        # Elementwise products, not a dot: exact float32 on every backend.
        product = (matrix[:, :, :, None] * self.matrix[:, None, :, :]).sum(axis=2)
        return _Points(product, self.base, self.size)

    def values(self) -> tuple[jax.Array, jax.Array]:
        m = self.matrix[:, :, :, None, None]
        if self.base is None:
            height, width = self.size
            ys = (jnp.arange(height, dtype=m.dtype) + 0.5)[None, :, None]
            xs = (jnp.arange(width, dtype=m.dtype) + 0.5)[None, None, :]
        else:
            ys, xs = self.base
        return m[:, 0, 0] * ys + m[:, 0, 1] * xs + m[:, 0, 2], m[:, 1, 0] * ys + m[
            :, 1, 1
        ] * xs + m[:, 1, 2]

    def mapped(self, fn) -> _Points:
        ys, xs = fn(*self.values())
        eye = jnp.broadcast_to(jnp.eye(3, dtype=self.matrix.dtype), self.matrix.shape)
        return _Points(eye, (ys, xs), self.size)

    def clamped(self, top, bottom, left, right) -> _Points:
        return self.mapped(lambda y, x: (jnp.clip(y, top, bottom), jnp.clip(x, left, right)))


def _window_bounds(win: jax.Array) -> tuple[jax.Array, ...]:
    # Clamp to the centres of the window's edge pixels.
    top, bottom, left, right = (win[:, k, None, None] for k in range(4))
    return top + 0.5, bottom - 0.5, left + 0.5, right - 0.5


def _reflect_point(ys: jax.Array, xs: jax.Array, size: tuple[int, int]):
    return _reflect(ys, size[0]), _reflect(xs, size[1])


def _reflect(coord: jax.Array, size: int) -> jax.Array:
    # Mirror about the edge pixels' centres (period 2 (size - 1) in index space).
    if size == 1:
        return jnp.full_like(coord, 0.5)
    period = 2.0 * (size - 1)
    index = jnp.mod(coord - 0.5, period)
    return (size - 1) - jnp.abs(index - (size - 1)) + 0.5


def _inside(ys: jax.Array, xs: jax.Array, size: tuple[int, int]) -> jax.Array:
    return (ys >= 0) & (ys < size[0]) & (xs >= 0) & (xs < size[1])


def _expand(mask: jax.Array, like: jax.Array) -> jax.Array:
    return mask[..., None] if like.ndim == mask.ndim + 1 else mask


def _interpolate(images: jax.Array, ys: jax.Array, xs: jax.Array, mode: str) -> jax.Array:
    height, width = images.shape[1:3]
    channels = images.ndim == 4
    stack = images if channels else images[..., None]
    # Bounded before the integer cast; points further out are filled by the caller.
    ys = jnp.clip(ys, -1.0, height + 1.0)
    xs = jnp.clip(xs, -1.0, width + 1.0)
    if mode == "nearest":
        rows = jnp.clip(jnp.floor(ys).astype(jnp.int32), 0, height - 1)
        cols = jnp.clip(jnp.floor(xs).astype(jnp.int32), 0, width - 1)
        out = _gather(stack, rows[:, None], cols[:, None])[:, 0]
        return out if channels else out[..., 0]
    compute = images.dtype if images.dtype in (jnp.float32, jnp.float64) else jnp.float32
    u, v = ys - 0.5, xs - 0.5
    top, left = jnp.floor(u), jnp.floor(v)
    fy, fx = (u - top).astype(compute), (v - left).astype(compute)
    top_i, left_i = top.astype(jnp.int32), left.astype(jnp.int32)
    rows = jnp.stack([top_i, top_i, top_i + 1, top_i + 1], axis=1)
    cols = jnp.stack([left_i, left_i + 1, left_i, left_i + 1], axis=1)
    corners = _gather(stack, jnp.clip(rows, 0, height - 1), jnp.clip(cols, 0, width - 1))
    # Two lerps along x, then one along y. XLA:CPU computes this form with the same
    # bits in programs of any size and under ``grad`` (the sum of four weighted
    # corners it rounded differently as fusion changed), and about 6x faster.
    c00, c01, c10, c11 = (corners[:, k].astype(compute) for k in range(4))
    fy, fx = fy[..., None], fx[..., None]
    top_row, bottom_row = c00 + fx * (c01 - c00), c10 + fx * (c11 - c10)
    out = top_row + fy * (bottom_row - top_row)
    out = out if channels else out[..., 0]
    return to_dtype(out, images.dtype)


def _gather(images: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    # One gather per call: (B, H, W, C) read at (B, K, h, w) -> (B, K, h, w, C). Per
    # record (vmapped), so a sharded batch gathers on each device without moving.
    batch, height, width, channels = images.shape
    flat = images.reshape(batch, height * width, channels)
    return jax.vmap(lambda image, index: image[index])(flat, rows * width + cols)


def to_dtype(values: jax.Array, dtype) -> jax.Array:
    """Back to ``dtype``: integers rounded (half up) and clipped to their range, like PIL."""
    if jnp.issubdtype(dtype, jnp.integer):
        info = jnp.iinfo(dtype)
        return jnp.clip(jnp.floor(values + 0.5), info.min, info.max).astype(dtype)
    return values.astype(dtype)
