"""RandAugment for the JAX image libraries of RA: torchvision's magnitudes and the choice.

torchvision's ``RandAugment(num_ops=2, magnitude=9, num_magnitude_bins=31)`` picks, per
image, ``num_ops`` operations uniformly (with repetition) from its 14 and gives the
signed ones a random sign. The peers of RA (``dm_pix``, ``augmax``) have some of those
operation families; :func:`rand_augment` builds the per-record function that picks
from the families a library has, with torchvision's magnitudes for 32x32 images
(:data:`MAGNITUDES`), vmapped and jitted by the adapter.

Example:
    >>> round(MAGNITUDES["rotate"], 2), MAGNITUDES["translate"], MAGNITUDES["posterize_bits"]
    (9.0, 4, 7)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from datarax.benchmarking.scenarios import RA_MAGNITUDE, RA_NUM_BINS, RA_NUM_OPS


def _magnitudes(size: int = 32) -> dict[str, Any]:
    """torchvision's ``_augmentation_space`` at ``RA_MAGNITUDE`` of ``RA_NUM_BINS`` bins."""
    share = RA_MAGNITUDE / (RA_NUM_BINS - 1)
    return {
        "shear": 0.3 * share,  # shear factor (torchvision: angle atan(0.09))
        "translate": int(150.0 / 331.0 * size * share),  # pixels, truncated as torchvision
        "rotate": 30.0 * share,  # degrees
        "enhance": 0.9 * share,  # factor 1 +- 0.27: brightness, color, contrast, sharpness
        "posterize_bits": int(8 - round(RA_MAGNITUDE / ((RA_NUM_BINS - 1) / 4))),
        "solarize_threshold": 1.0 - share,  # of the value range: 178.5 of 255
    }


#: torchvision's RandAugment magnitudes for RA's 32x32 images.
MAGNITUDES = _magnitudes()

#: ``(float image HWC in [0, 1], sign +-1., key) -> float image``: one operation family.
Family = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def rand_augment(families: Sequence[Family], num_ops: int = RA_NUM_OPS) -> Callable[..., Any]:
    """RandAugment of a batch over ``families``: ``(batch, keys) -> batch``, one key a record.

    The ``uint8`` images become float32 in ``[0, 1]``. ``num_ops`` times, each record
    draws a family uniformly and a sign with probability 1/2 from its own key; every
    family runs on the whole batch as ``jax.vmap`` of the library's per-image
    function, and each record takes its own family's image (``jnp.choose``; a
    ``lax.select_n`` of the candidates was several times slower here), clipped to
    ``[0, 1]`` as ``uint8`` images are. The result is rounded back to ``uint8``. (A
    ``jax.lax.switch`` per record under ``vmap`` computes the same and was up to 7x
    slower here.)
    """
    branches = list(families)

    def draw(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        k_family, k_sign, k_op = jax.random.split(key, 3)
        index = jax.random.randint(k_family, (), 0, len(branches))
        return index, jnp.where(jax.random.bernoulli(k_sign), 1.0, -1.0), k_op

    def fn(batch: dict[str, jax.Array], keys: jax.Array) -> dict[str, jax.Array]:
        image = batch["image"].astype(jnp.float32) / 255.0
        op_keys = jax.vmap(lambda k: jax.random.split(k, num_ops))(keys)  # (B, num_ops)
        for i in range(num_ops):
            index, sign, op_key = jax.vmap(draw)(op_keys[:, i])
            candidates = [jax.vmap(f)(image, sign, op_key) for f in branches]
            chosen = jnp.choose(index[:, None, None, None], candidates, mode="clip")
            image = jnp.clip(chosen, 0.0, 1.0)
        out = jnp.clip(jnp.round(image * 255.0), 0, 255).astype(jnp.uint8)
        return {**batch, "image": out}

    return fn


def identity(image: jax.Array, _sign: jax.Array, _key: jax.Array) -> jax.Array:
    """The ``Identity`` family."""
    return image


def pull_matrix(
    *, shear_x: Any = 0.0, shear_y: Any = 0.0, dx: Any = 0.0, dy: Any = 0.0
) -> jax.Array:
    """Homogeneous ``(4, 4)`` matrix mapping an HWC output index to its input position.

    Shears about the top-left corner (``x_in = x + shear_x * y``), as torchvision's
    shears with ``center=[0, 0]``, and translations moving the content by ``dx``
    (right) and ``dy`` (down) pixels.
    """
    m = jnp.eye(4)
    m = m.at[1, 0].set(shear_x).at[0, 1].set(shear_y)
    return m.at[0, 3].set(-dy).at[1, 3].set(-dx)


__all__ = ["MAGNITUDES", "Family", "identity", "pull_matrix", "rand_augment"]
