"""Geometric image operators as index maps, so adjacent ones fuse into one gather.

A crop, a flip or a translation moves pixels without changing them: output pixel
``(i, j)`` of record ``b`` is input pixel ``(rows[b, i], cols[b, j])``, or a fill
value when that lies outside the image. Two such maps compose into one, so a chain
``RandomCrop >> RandomFlip`` reads every pixel once, in a single gather, with
exactly the result of running them one after the other.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from datarax.core.errors import SchemaError
from datarax.operators.base import Fields
from datarax.operators.image.base import ImageOperator


@dataclass(frozen=True)
class IndexMap:
    """Source row and column of each output pixel, per record.

    Attributes:
        rows: ``(B, out_h)`` int32; values outside ``[0, height)`` mean "fill".
        cols: ``(B, out_w)`` int32; values outside ``[0, width)`` mean "fill".
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
        return IndexMap(
            rows=_compose(self.rows, later.rows),
            cols=_compose(self.cols, later.cols),
            height=self.height,
            width=self.width,
            fill=self.fill if self.fill is not None else later.fill,
        )

    def apply(self, images: jax.Array, where: str) -> jax.Array:
        """Gather a batch of ``(B, height, width[, C])`` images through the map."""
        rows = jnp.clip(self.rows, 0, self.height - 1)
        cols = jnp.clip(self.cols, 0, self.width - 1)
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


def _compose(first: jax.Array, later: jax.Array) -> jax.Array:
    size = first.shape[1]
    picked = jnp.take_along_axis(first, jnp.clip(later, 0, size - 1), axis=1)
    return jnp.where((later >= 0) & (later < size), picked, -1)


class SpatialOperator(ImageOperator):
    """An image operator that only moves pixels, described by an :class:`IndexMap`.

    Adjacent spatial operators on one field are fused by the compiled pipeline into
    one gather (see :meth:`Operator.fusion_group`).
    """

    @abc.abstractmethod
    def index_map(self, height: int, width: int, words: jax.Array | None) -> IndexMap:
        """The map of this operator for images of ``height`` x ``width``."""

    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        height, width = images.shape[1:3]
        return self.index_map(height, width, words).apply(images, self._where())

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
        first = operators[0]
        if len(operators) == 1:  # alone, an operator may have a faster standalone form
            return first.apply_batch(data, states, record_ids, epoch, seed)
        images = first.images_of(data)
        composed: IndexMap | None = None
        height, width = images.shape[1:3]
        for op in operators:
            words = op.random_words(record_ids, epoch, seed) if op.stochastic else None
            step = op.index_map(height, width, words)
            height, width = step.rows.shape[1], step.cols.shape[1]
            if composed is None:
                composed = step
                continue
            merged = composed.then(step)
            if merged is None:  # fills differ: materialise what is composed so far
                images = composed.apply(images, first._where())
                merged = step
            composed = merged
        assert composed is not None
        return {**data, first.config.field: composed.apply(images, first._where())}, states

    def _where(self) -> str:
        return f"{self.name}, field '{self.config.field}'"
