"""Geometric image operators, fused so that a chain of them reads each pixel once.

A crop, a flip or a padding moves pixels without changing them: output pixel
``(i, j)`` of record ``b`` is input pixel ``(rows[b, i], cols[b, j])``, or a fill
value when that lies outside the image (an :class:`IndexMap`). Two such maps
compose into one, so a chain ``RandomCrop >> RandomFlip`` reads every pixel once,
in a single gather, with exactly the result of running them one after the other.

Rotations, affine maps and resized crops read their input at continuous points
(:mod:`datarax.operators.image.sampling`). An adjacent chain of geometric operators
on one field, of either kind, runs as ONE sampling of the source: lattice maps
(crops, flips, pads) are exact in it; interpolating ones read the source at the
composed point, which equals running them one by one closely (exactly for
``"nearest"``). Fields named in ``also`` (masks, label maps) move with the image,
always with nearest sampling.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.operators.base import Fields, field_of
from datarax.operators.image.base import ImageOperator, ImageOperatorConfig
from datarax.operators.image.sampling import SamplingStep, render


@dataclass(frozen=True)
class GeometricConfig(ImageOperatorConfig):
    """Args:
    also: Fields moved with the image (masks, label maps), ``(H, W)`` or
        ``(H, W, C)`` per record with the image's height and width; always sampled
        with ``"nearest"``, so labels stay labels.
    also_fill: Value of their pixels where the image reads its fill.
    """

    also: tuple[str, ...] = ()
    also_fill: float = 0.0

    def validate(self) -> None:
        super().validate()
        also = self.also
        names = isinstance(also, (tuple, list)) and all(isinstance(n, str) and n for n in also)
        if not names or len(set(also)) != len(also) or self.field in also:
            raise ConfigError(
                "must be distinct field names other than the image field",
                where=f"{type(self).__name__}.also",
                expected=f"a tuple of names without {self.field!r}, e.g. ('mask',)",
                found=repr(also),
            )
        object.__setattr__(self, "also", tuple(also))
        require_number(self, "also_fill")


def require_number(config: Any, field: str) -> None:
    """Raise :class:`ConfigError` unless ``config.field`` is a finite real number."""
    value = getattr(config, field)
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not np.isfinite(float(value))
    ):
        raise ConfigError(
            f"{field} must be a number",
            where=f"{type(config).__name__}.{field}",
            expected="a finite int or float",
            found=repr(value),
        )


def require_choice(config: Any, field: str, choices: Sequence[str]) -> None:
    """Raise :class:`ConfigError` unless ``config.field`` is one of ``choices``."""
    value = getattr(config, field)
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(
            f"unknown {field}",
            where=f"{type(config).__name__}.{field}",
            expected=" or ".join(repr(c) for c in choices),
            found=repr(value),
        )


@dataclass(frozen=True)
class IndexMap:
    """Source row and column of each output pixel, per record.

    Attributes:
        rows: ``(B, out_h)`` int32; values outside ``[0, height)`` mean "fill"
            (``(1, out_h)`` when the same for every record).
        cols: ``(B, out_w)`` int32; values outside ``[0, width)`` mean "fill"
            (``(1, out_w)`` likewise).
        height, width: Size of the images the map reads from.
        fill: Value of outside pixels (``None`` when the map never reads outside).
    """

    rows: jax.Array
    cols: jax.Array
    height: int
    width: int
    fill: float | None = None

    def then(self, later: IndexMap) -> IndexMap | None:
        """This map followed by ``later`` (whose indices address this map's output).

        ``None`` when the two would fill with different values.
        """
        if self.fill is not None and later.fill is not None and self.fill != later.fill:
            return None
        batch = max(self.rows.shape[0], later.rows.shape[0])
        return IndexMap(
            rows=_compose(_batched(self.rows, batch), _batched(later.rows, batch)),
            cols=_compose(_batched(self.cols, batch), _batched(later.cols, batch)),
            height=self.height,
            width=self.width,
            fill=self.fill if self.fill is not None else later.fill,
        )

    def apply(self, images: jax.Array, where: str) -> jax.Array:
        """Gather a batch of ``(B, height, width[, C])`` images through the map."""
        rows = jnp.clip(_batched(self.rows, images.shape[0]), 0, self.height - 1)
        cols = jnp.clip(_batched(self.cols, images.shape[0]), 0, self.width - 1)
        # Per record (vmapped), so the gather keeps the batch as a batching dimension:
        # a sharded batch then gathers on each device without moving images around.
        out = jax.vmap(lambda image, r, c: image[r[:, None], c[None, :]])(images, rows, cols)
        if self.fill is None:
            return out
        fill = np.asarray(self.fill).astype(images.dtype)
        if fill != self.fill:
            raise SchemaError(
                "fill value not representable in the image dtype",
                where=where,
                expected=f"a {images.dtype} value",
                found=repr(self.fill),
            )
        inside = ((self.rows >= 0) & (self.rows < self.height))[:, :, None] & (
            (self.cols >= 0) & (self.cols < self.width)
        )[:, None, :]
        if images.ndim == 4:
            inside = inside[..., None]
        return jnp.where(inside, out, fill)

    def out_size(self) -> tuple[int, int]:
        """``(height, width)`` of the map's output."""
        return self.rows.shape[1], self.cols.shape[1]


def _batched(index: jax.Array, batch: int) -> jax.Array:
    return jnp.broadcast_to(index, (batch, index.shape[1]))


def _compose(first: jax.Array, later: jax.Array) -> jax.Array:
    size = first.shape[1]
    picked = jnp.take_along_axis(first, jnp.clip(later, 0, size - 1), axis=1)
    return jnp.where((later >= 0) & (later < size), picked, -1)


class SpatialOperator(ImageOperator):
    """An image operator that only moves pixels.

    A subclass describes itself by :meth:`index_map` (an exact gather), by
    :meth:`sampling_steps` (points read with interpolation), or by both. Adjacent
    spatial operators on one field are fused by the compiled pipeline into one
    gather or one sampling (see :meth:`Operator.fusion_group`); the fields in
    ``config.also`` move with the image.
    """

    config: GeometricConfig

    def draws(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array | None:
        """The per-record random numbers :meth:`index_map` and :meth:`sampling_steps` get.

        ``(B, 2) uint32`` words for a stochastic operator (``None`` otherwise);
        subclasses that need more draw :meth:`uniforms` instead.
        """
        return self.random_words(record_ids, epoch, seed) if self.stochastic else None

    def index_map(self, height: int, width: int, draws: jax.Array | None) -> IndexMap | None:
        """The map of this operator for ``height x width`` images (``None``: not a gather)."""
        return None

    def sampling_steps(
        self, height: int, width: int, draws: jax.Array | None
    ) -> tuple[SamplingStep, ...] | None:
        """The steps of this operator for ``height x width`` images (``None``: none)."""
        return None

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` of the output for ``height x width`` images.

        Needed only by operators with neither an index map nor sampling steps at
        that size (they run alone, through their own :meth:`move`).
        """
        raise OperatorError(
            "a spatial operator must describe itself",
            where=self.name,
            expected="an index_map, sampling_steps or output_size",
            found="neither",
        )

    def move(self, values: jax.Array, draws: jax.Array | None, *, mask: bool) -> jax.Array:
        """This operator alone on one field (``mask``: a field moved with the image)."""
        height, width = values.shape[1:3]
        index_map = self.index_map(height, width, draws)
        if index_map is not None:
            if mask and index_map.fill is not None:
                index_map = dataclasses.replace(index_map, fill=self.config.also_fill)
            return index_map.apply(values, self._where())
        steps = self.sampling_steps(height, width, draws)
        if steps is None:
            raise OperatorError(
                "a spatial operator must describe itself",
                where=self.name,
                expected="an index_map or sampling_steps",
                found="neither",
            )
        return render(steps, values, mask=mask, where=self._where())

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        return self.move(images, words, mask=False)

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        return apply_spatial([self], data, record_ids, epoch, seed), states

    def fusion_group(self) -> tuple[str, str]:
        return ("spatial", self.config.field)

    @classmethod
    def apply_fused(
        cls,
        operators: Sequence,
        data: Fields,
        states: Fields,
        record_ids: jax.Array,
        epoch: jax.Array,
        seed: int,
    ) -> tuple[Fields, Fields]:
        return apply_spatial(operators, data, record_ids, epoch, seed), states

    def _where(self) -> str:
        return f"{self.name}, field '{self.config.field}'"


def apply_spatial(
    operators: Sequence[SpatialOperator],
    data: Fields,
    record_ids: jax.Array,
    epoch: jax.Array,
    seed: int,
) -> Fields:
    """Run adjacent spatial operators on one field as few gathers as their kinds allow.

    Operators moving different ``also`` fields are run in separate groups, so every
    field moves exactly with the operators that name it.
    """
    groups: list[list[SpatialOperator]] = []
    for op in operators:
        if groups and groups[-1][0].config.also == op.config.also:
            groups[-1].append(op)
        else:
            groups.append([op])
    for group in groups:
        data = _apply_group(group, data, record_ids, epoch, seed)
    return data


def _apply_group(
    ops: Sequence[SpatialOperator], data: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
) -> Fields:
    first = ops[0]
    images = first.images_of(data)
    fields = {first.config.field: images, **_moved_fields(first, data, images)}
    draws = [op.draws(record_ids, epoch, seed) for op in ops]
    if len(ops) == 1:  # alone, an operator may have a faster standalone form
        moved = {
            f: first.move(v, draws[0], mask=f != first.config.field) for f, v in fields.items()
        }
        return {**data, **moved}

    height, width = images.shape[1:3]
    plans = []
    for op, d in zip(ops, draws, strict=True):
        index_map, steps = op.index_map(height, width, d), op.sampling_steps(height, width, d)
        plans.append((op, d, index_map, steps))
        if index_map is not None:
            height, width = index_map.out_size()
        elif steps is not None:
            height, width = steps[-1].out_size
        else:
            height, width = op.output_size(height, width)
    out = dict(data)
    for name, values in fields.items():
        out[name] = _run_plans(plans, values, mask=name != first.config.field)
    return out


def _run_plans(plans: list, values: jax.Array, *, mask: bool) -> jax.Array:
    first = plans[0][0]
    if all(index_map is not None for _, _, index_map, _ in plans):
        return _gather_composed([p[2] for p in plans], values, mask=mask, op=first)
    # One sampling per run of operators with steps; the others alone (their own move).
    pending: list[SamplingStep] = []
    for op, draws, _, steps in plans:
        if steps is not None:
            pending.extend(steps)
            continue
        if pending:
            values = render(pending, values, mask=mask, where=first._where())
            pending = []
        values = op.move(values, draws, mask=mask)
    if pending:
        values = render(pending, values, mask=mask, where=first._where())
    return values


def _gather_composed(
    maps: list[IndexMap], values: jax.Array, *, mask: bool, op: SpatialOperator
) -> jax.Array:
    composed: IndexMap | None = None
    for step in maps:
        if mask and step.fill is not None:
            step = dataclasses.replace(step, fill=op.config.also_fill)
        if composed is None:
            composed = step
            continue
        merged = composed.then(step)
        if merged is None:  # fills differ: materialise what is composed so far
            values = composed.apply(values, op._where())
            merged = step
        composed = merged
    assert composed is not None
    return composed.apply(values, op._where())


def _moved_fields(op: SpatialOperator, data: Fields, images: jax.Array) -> Fields:
    moved = {}
    for name in op.config.also:
        values = field_of(data, name, op.name, "moved")
        if values.ndim not in (3, 4) or values.shape[:3] != images.shape[:3]:
            raise SchemaError(
                "a field moved with the image must have its height and width",
                where=f"{op.name}, field '{name}'",
                expected=f"(H, W) or (H, W, C) per record with (H, W) = {images.shape[1:3]}",
                found=f"shape {tuple(values.shape[1:])}",
            )
        moved[name] = values
    return moved
