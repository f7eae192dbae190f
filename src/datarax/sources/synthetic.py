"""`synthetic_images`: a labelled image dataset generated in memory, without downloads.

Each class draws a bright Gaussian blob at its own position on a ring around the
image centre; every image adds a small random shift of the blob, a random
brightness and pixel noise. The classes are therefore easy to tell apart, no class
pattern is left-right symmetric, and the whole dataset is a pure function of its
arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from datarax.core.config import check_int
from datarax.core.errors import ConfigError

_WHERE = "synthetic_images"
_BACKGROUND = 24.0  # mean background brightness
_NOISE_STD = 12.0  # pixel noise
_JITTER = 1.0  # largest shift of a blob from its class position, in pixels


def synthetic_images(
    num_records: int = 10_000,
    *,
    seed: int = 0,
    image_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
) -> dict[str, np.ndarray]:
    """Labelled float32 images in ``[0, 255]`` whose content depends on the label.

    Args:
        num_records: Number of images.
        seed: Seeds ``np.random.default_rng``; equal arguments give equal arrays.
        image_shape: ``(height, width, channels)``, or ``(height, width)`` for
            images without a channel axis.
        num_classes: Labels are drawn uniformly from ``0 .. num_classes - 1``.

    Returns:
        ``{"image": float32 (num_records, *image_shape), "label": int32 (num_records,)}``,
        ready for :class:`~datarax.sources.MemorySource`.

    Example:
        >>> data = synthetic_images(100, seed=1)
        >>> data["image"].shape, data["image"].dtype, data["label"].dtype
        ((100, 28, 28, 1), dtype('float32'), dtype('int32'))
        >>> bool(data["image"].min() >= 0.0 and data["image"].max() <= 255.0)
        True
        >>> bool((synthetic_images(100, seed=1)["image"] == data["image"]).all())
        True
    """
    n = _check_count(num_records, "num_records")
    k = _check_count(num_classes, "num_classes")
    shape = _check_shape(image_shape)
    seed = check_int(seed, where=f"{_WHERE}.seed", minimum=0, message="invalid seed")
    height, width = shape[0], shape[1]
    rng = np.random.default_rng(seed)

    labels = rng.integers(0, k, size=n).astype(np.int32)
    # Class positions on a ring; the quarter-step offset keeps every one off the
    # vertical axis, so no class pattern is its own mirror image.
    angle = 2.0 * np.pi * (labels + 0.25) / k
    radius = 0.3 * min(height, width)
    cy = (height - 1) / 2.0 - radius * np.cos(angle)
    cx = (width - 1) / 2.0 + radius * np.sin(angle)
    shift = rng.uniform(-_JITTER, _JITTER, size=(2, n))
    cy, cx = (cy + shift[0]).astype(np.float32), (cx + shift[1]).astype(np.float32)
    amplitude = rng.uniform(180.0, 230.0, size=n).astype(np.float32)

    rows = np.arange(height, dtype=np.float32)[None, :, None]
    cols = np.arange(width, dtype=np.float32)[None, None, :]
    dist2 = (rows - cy[:, None, None]) ** 2 + (cols - cx[:, None, None]) ** 2
    sigma = max(0.12 * min(height, width), 0.5)
    blob = amplitude[:, None, None] * np.exp(dist2 / np.float32(-2.0 * sigma**2))

    pattern = blob.reshape(n, height, width, *([1] * (len(shape) - 2)))
    noise = rng.standard_normal(size=(n, *shape), dtype=np.float32)
    images = _BACKGROUND + pattern + np.float32(_NOISE_STD) * noise
    np.clip(images, 0.0, 255.0, out=images)
    return {"image": images.astype(np.float32, copy=False), "label": labels}


def _check_count(value: object, name: str) -> int:
    return check_int(value, where=f"{_WHERE}.{name}", minimum=1, message=f"invalid {name}")


def _check_shape(image_shape: object) -> tuple[int, ...]:
    where = f"{_WHERE}.image_shape"
    try:
        dims: tuple[object, ...] = tuple(image_shape)  # type: ignore[arg-type]
        shape = tuple(check_int(d, where=where, minimum=1) for d in dims)
    except (TypeError, ConfigError):  # not a sequence, or not of positive ints
        shape = ()
    if len(shape) not in (2, 3):
        raise ConfigError(
            "invalid image shape",
            where=where,
            expected="(height, width) or (height, width, channels) of ints >= 1",
            found=repr(image_shape),
        )
    return shape
