"""augmax as its docs recommend: its transformations on one image, ``jax.vmap``, jitted.

RA only. Each record gets 2 operations drawn from the RandAugment families augmax has
(identity, ``Rotate``, ``Translate`` in x and y, ``RandomBrightness``,
``RandomContrast``, ``Solarization``), each built with a fixed magnitude (a range of
one value, ``p=1``): torchvision's at 9 of 31 bins, with a random sign. augmax has no
shear, color (its ``ColorJitter`` saturation leaves images unchanged), sharpness,
posterize, autocontrast or equalize, so those families are not drawn. The loop is the
JAX reference's: arrays on the device once, one jitted gather and vmapped transform
per batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from datarax.benchmarking.adapters.base import BuildContext, MakePass
from datarax.benchmarking.adapters.jax_ref import batch_passes
from datarax.benchmarking.adapters.randaugment import MAGNITUDES, Family, identity, rand_augment
from datarax.benchmarking.scenarios import Scenario

UNSUPPORTED: dict[str, str] = {}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the vmapped augmax RandAugment over the scenario's images."""
    if scenario.name != "RA":
        raise ValueError(f"the augmax adapter runs RA, not {scenario.name}")
    return batch_passes(scenario, context, rand_augment(list(families().values())))


def families() -> dict[str, Family]:
    """The RandAugment families augmax has (torchvision's names in RandAugment's order)."""
    import augmax

    m = MAGNITUDES
    rotations = [augmax.Rotate(angle_range=(a, a), p=1.0) for a in (m["rotate"], -m["rotate"])]
    solarize = augmax.Solarization(threshold=m["solarize_threshold"], p=1.0)

    def rotate(image: jax.Array, sign: jax.Array, key: jax.Array) -> jax.Array:
        left, right = (r(key, image) for r in rotations)
        return jnp.where(sign > 0, left, right)

    def translate(axis: str) -> Family:
        def fn(image: jax.Array, sign: jax.Array, key: jax.Array) -> jax.Array:
            shift = sign * m["translate"]
            dx, dy = (shift, 0.0) if axis == "x" else (0.0, shift)
            return augmax.Translate(dx=dx, dy=dy)(key, image)

        return fn

    def enhance(kind: type) -> Family:
        def fn(image: jax.Array, sign: jax.Array, key: jax.Array) -> jax.Array:
            amount = 2.0 * sign * m["enhance"]  # augmax halves the range it is given
            return kind(range=(amount, amount), p=1.0)(key, image)

        return fn

    return {
        "identity": identity,
        "translate_x": translate("x"),
        "translate_y": translate("y"),
        "rotate": rotate,
        "brightness": enhance(augmax.RandomBrightness),
        "contrast": enhance(augmax.RandomContrast),
        "solarize": lambda im, _s, k: solarize(k, im),
    }
