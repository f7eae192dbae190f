"""`ImageOperator`: a batched operator on one image field (channels last)."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import jax

from datarax.core.config import Config
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.base import ConfiguredOperator, Fields, field_of, uniform

__all__ = ["ImageOperator", "ImageOperatorConfig", "as_pair", "image_field", "uniform"]


@dataclass(frozen=True)
class ImageOperatorConfig(Config):
    """Args:
    field: The data field holding images, ``(H, W)`` or ``(H, W, C)`` per record.
    stream_name: Random stream of a stochastic operator.
    """

    field: str = "image"
    stream_name: str | None = None

    def validate(self) -> None:
        if not isinstance(self.field, str) or not self.field:
            raise ConfigError(
                "must be a field name",
                where=f"{type(self).__name__}.field",
                expected="a non-empty string",
                found=repr(self.field),
            )


class ImageOperator(ConfiguredOperator):
    """Base of image operators: whole-batch array code, one field, per-record randomness.

    Subclasses implement :meth:`transform_images` on the batch of images
    ``(B, H, W[, C])``; stochastic ones receive :meth:`random_words` for their records.
    """

    stochastic_default = False
    config: ImageOperatorConfig

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        images = self.images_of(data)
        words = self.random_words(record_ids, epoch, seed) if self.stochastic else None
        return {**data, self.config.field: self.transform_images(images, words)}, states

    def images_of(self, data: Fields) -> jax.Array:
        """This operator's image field of ``data``, checked for presence and rank."""
        return image_field(data, self.config.field, self.name)

    @abc.abstractmethod
    def transform_images(self, images: jax.Array, words: jax.Array | None) -> jax.Array:
        """Transform a batch of images; ``words`` is ``(B, 2) uint32`` when stochastic."""


def image_field(data: Fields, field: str, where: str) -> jax.Array:
    """``data[field]`` as a batch of images, checked for presence and rank."""
    images = field_of(data, field, where, "image")
    if images.ndim not in (3, 4):
        raise SchemaError(
            "images must be (H, W) or (H, W, C) per record",
            where=f"{where}, field '{field}'",
            expected="rank 2 or 3 per record",
            found=f"shape {tuple(images.shape[1:])}",
        )
    return images


def as_pair(value: int | tuple[int, int], where: str) -> tuple[int, int]:
    """``4`` -> ``(4, 4)``; checks non-negative ints."""
    if isinstance(value, int):
        pair: tuple = (value, value)
    elif isinstance(value, (tuple, list)):
        pair = tuple(value)
    else:
        pair = ()
    valid = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair)
    if len(pair) != 2 or not valid:
        raise ConfigError(
            "must be a non-negative int or a pair of them",
            where=where,
            expected="e.g. 4 or (4, 2)",
            found=repr(value),
        )
    return pair
