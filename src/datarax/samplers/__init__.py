"""Samplers: which record sits at each position of each epoch."""

from datarax.samplers.base import Sampler
from datarax.samplers.epoch_aware import EpochAwareSampler, EpochAwareSamplerConfig
from datarax.samplers.feistel import FeistelPermutation
from datarax.samplers.range import RangeSampler, RangeSamplerConfig
from datarax.samplers.sequential import SequentialSampler, SequentialSamplerConfig
from datarax.samplers.shuffle import ShuffleSampler, ShuffleSamplerConfig

__all__ = [
    "EpochAwareSampler",
    "EpochAwareSamplerConfig",
    "FeistelPermutation",
    "RangeSampler",
    "RangeSamplerConfig",
    "Sampler",
    "SequentialSampler",
    "SequentialSamplerConfig",
    "ShuffleSampler",
    "ShuffleSamplerConfig",
]
