"""dm_pix as its docs recommend: its functions on one image, ``jax.vmap`` over the batch, jitted.

RA only. Each record gets 2 operations drawn from the RandAugment families dm_pix has
(identity, shear x/y and translate x/y through ``affine_transform``, ``rotate``,
``adjust_brightness``, ``adjust_saturation`` for torchvision's Color, ``adjust_contrast``,
``solarize``), with torchvision's magnitudes at 9 of 31 bins and a random sign; the
geometric ones sample nearest pixels and fill with black, as torchvision's defaults.
dm_pix has no sharpness, posterize, autocontrast or equalize, so those families are
not drawn. The loop is the JAX reference's: arrays on the device once, one jitted
gather and vmapped transform per batch.
"""

from __future__ import annotations

import math

import jax

from datarax.benchmarking.adapters.base import BuildContext, MakePass
from datarax.benchmarking.adapters.jax_ref import batch_passes
from datarax.benchmarking.adapters.randaugment import (
    MAGNITUDES,
    Family,
    identity,
    pull_matrix,
    rand_augment,
)
from datarax.benchmarking.scenarios import Scenario

UNSUPPORTED: dict[str, str] = {}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """Passes of the vmapped dm_pix RandAugment over the scenario's images."""
    if scenario.name != "RA":
        raise ValueError(f"the dm_pix adapter runs RA, not {scenario.name}")
    return batch_passes(scenario, context, rand_augment(list(families().values())))


def families() -> dict[str, Family]:
    """The RandAugment families dm_pix has (torchvision's names in RandAugment's order)."""
    import dm_pix as pix

    m = MAGNITUDES
    enhance, angle = m["enhance"], math.radians(m["rotate"])

    def warp(image: jax.Array, matrix: jax.Array) -> jax.Array:
        return pix.affine_transform(image, matrix, order=0, mode="constant", cval=0.0)

    return {
        "identity": identity,
        "shear_x": lambda im, s, _k: warp(im, pull_matrix(shear_x=s * m["shear"])),
        "shear_y": lambda im, s, _k: warp(im, pull_matrix(shear_y=s * m["shear"])),
        "translate_x": lambda im, s, _k: warp(im, pull_matrix(dx=s * m["translate"])),
        "translate_y": lambda im, s, _k: warp(im, pull_matrix(dy=s * m["translate"])),
        "rotate": lambda im, s, _k: pix.rotate(im, s * angle, order=0, mode="constant", cval=0.0),
        "brightness": lambda im, s, _k: pix.adjust_brightness(im, s * enhance),
        "color": lambda im, s, _k: pix.adjust_saturation(im, 1.0 + s * enhance),
        "contrast": lambda im, s, _k: pix.adjust_contrast(im, 1.0 + s * enhance),
        "solarize": lambda im, _s, _k: pix.solarize(im, m["solarize_threshold"]),
    }
