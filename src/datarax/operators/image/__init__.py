"""Image operators: batched, channels-last, randomness per record."""

from datarax.operators.image.base import ImageOperator, ImageOperatorConfig
from datarax.operators.image.color import (
    Brightness,
    BrightnessConfig,
    ColorJitter,
    ColorJitterConfig,
    Contrast,
    ContrastConfig,
    Gamma,
    GammaConfig,
    Grayscale,
    GrayscaleConfig,
    Hue,
    HueConfig,
    Saturation,
    SaturationConfig,
)
from datarax.operators.image.color_base import PixelOperator, PixelOperatorConfig
from datarax.operators.image.crop import RandomCrop, RandomCropConfig
from datarax.operators.image.flip import RandomFlip, RandomFlipConfig
from datarax.operators.image.normalize import Normalize, NormalizeConfig
from datarax.operators.image.spatial import IndexMap, SpatialOperator
from datarax.operators.image.tone import (
    AutoContrast,
    AutoContrastConfig,
    Equalize,
    EqualizeConfig,
    Invert,
    InvertConfig,
    Posterize,
    PosterizeConfig,
    Sharpness,
    SharpnessConfig,
    Solarize,
    SolarizeConfig,
)

__all__ = [
    "AutoContrast",
    "AutoContrastConfig",
    "Brightness",
    "BrightnessConfig",
    "ColorJitter",
    "ColorJitterConfig",
    "Contrast",
    "ContrastConfig",
    "Equalize",
    "EqualizeConfig",
    "Gamma",
    "GammaConfig",
    "Grayscale",
    "GrayscaleConfig",
    "Hue",
    "HueConfig",
    "ImageOperator",
    "ImageOperatorConfig",
    "IndexMap",
    "Invert",
    "InvertConfig",
    "Normalize",
    "NormalizeConfig",
    "PixelOperator",
    "PixelOperatorConfig",
    "Posterize",
    "PosterizeConfig",
    "RandomCrop",
    "RandomCropConfig",
    "RandomFlip",
    "RandomFlipConfig",
    "Saturation",
    "SaturationConfig",
    "Sharpness",
    "SharpnessConfig",
    "Solarize",
    "SolarizeConfig",
    "SpatialOperator",
]
