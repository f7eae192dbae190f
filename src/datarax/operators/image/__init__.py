"""Image operators: batched, channels-last, randomness per record."""

from datarax.operators.image.base import ImageOperator, ImageOperatorConfig
from datarax.operators.image.crop import RandomCrop, RandomCropConfig
from datarax.operators.image.flip import RandomFlip, RandomFlipConfig
from datarax.operators.image.normalize import Normalize, NormalizeConfig
from datarax.operators.image.spatial import IndexMap, SpatialOperator

__all__ = [
    "ImageOperator",
    "ImageOperatorConfig",
    "IndexMap",
    "Normalize",
    "NormalizeConfig",
    "RandomCrop",
    "RandomCropConfig",
    "RandomFlip",
    "RandomFlipConfig",
    "SpatialOperator",
]
