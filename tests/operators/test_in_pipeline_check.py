"""The in-pipeline check on the operators that exist before the library grows."""

import numpy as np
from flax import nnx
from in_pipeline import assert_operator_in_pipeline

from datarax.operators.image import RandomCrop, RandomCropConfig, RandomFlip, RandomFlipConfig


def test_crop_and_flip_pass_the_in_pipeline_check():
    images = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    assert_operator_in_pipeline(
        lambda: RandomCrop(RandomCropConfig(size=6, padding=1), rngs=nnx.Rngs(1)),
        {"image": images},
    )
    assert_operator_in_pipeline(
        lambda: RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(2)), {"image": images}, resume=False
    )
