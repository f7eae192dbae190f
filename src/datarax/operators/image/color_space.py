"""Pixel arithmetic shared by the colour and tone operators.

Images are channels-last batches ``(B, H, W, C)``, either ``uint8`` (levels 0..255)
or ``float32`` (values in [0, 1]). ``uint8`` results follow Pillow's integer
semantics (luma in 16-bit fixed point, blends truncated and clipped); float results
use the same formulas without quantisation, clipped to [0, 1].

Example:
    >>> import jax.numpy as jnp
    >>> luma(jnp.array([[[[255, 0, 0]]]], jnp.uint8)).tolist()
    [[[76]]]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

#: ITU-R 601-2 luma weights, as Pillow's ``convert("L")``.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
# Pillow's 16-bit fixed-point form of the same weights (they sum to 65536).
_LUMA_FIXED = (19595, 38470, 7471)


def luma(images: jax.Array) -> jax.Array:
    """ITU-R 601-2 luma of ``(B, H, W, 3)`` images, ``(B, H, W)`` in the same dtype.

    ``uint8``: ``(19595 R + 38470 G + 7471 B + 32768) >> 16``, bit for bit Pillow's
    ``convert("L")``; float: ``0.299 R + 0.587 G + 0.114 B``.
    """
    if images.dtype == jnp.uint8:
        rgb = images.astype(jnp.int32)
        fr, fg, fb = _LUMA_FIXED
        total = rgb[..., 0] * fr + rgb[..., 1] * fg + rgb[..., 2] * fb + (1 << 15)
        return (total >> 16).astype(jnp.uint8)
    wr, wg, wb = LUMA_WEIGHTS
    return images[..., 0] * wr + images[..., 1] * wg + images[..., 2] * wb


def blend(degenerate: jax.Array, images: jax.Array, factor: jax.Array) -> jax.Array:
    """``degenerate + factor * (images - degenerate)`` per record, as ``Image.blend``.

    ``factor`` is ``(B,)``. ``uint8``: computed in float32, truncated towards zero
    and clipped to [0, 255] (Pillow's ``ImagingBlend``); float: clipped to [0, 1].
    A factor above 1 extrapolates away from the degenerate image.
    """
    f = per_record(factor, images.ndim)
    if images.dtype == jnp.uint8:
        low = degenerate.astype(jnp.float32)
        mixed = low + _rounded_product(f, images.astype(jnp.float32) - low)
        return jnp.clip(jnp.trunc(mixed), 0.0, 255.0).astype(jnp.uint8)
    return jnp.clip(degenerate + f * (images - degenerate), 0.0, 1.0)


def _rounded_product(factor: jax.Array, levels: jax.Array) -> jax.Array:
    # fl(factor * levels) for integer levels in [-255, 255], rounded once to float32
    # before the blend's addition, as Pillow computes it. A plain multiply-add may be
    # fused into one FMA by the compiler (a different rounding, one level off after
    # truncation). Split factor into two 12-bit halves: each partial product is exact,
    # so their float32 sum is the correctly rounded product whatever gets fused.
    bits = jax.lax.bitcast_convert_type(factor, jnp.uint32) & jnp.uint32(0xFFFFF000)
    high = jax.lax.bitcast_convert_type(bits, jnp.float32)
    return high * levels + (factor - high) * levels


def per_record(values: jax.Array, ndim: int) -> jax.Array:
    """``(B,)`` values shaped to broadcast against ``ndim``-dimensional batches."""
    return jnp.reshape(values, (-1,) + (1,) * (ndim - 1))


def to_unit(images: jax.Array) -> jax.Array:
    """Images as float32 in [0, 1] (``uint8`` divided by 255)."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255.0
    return images


def from_unit(values: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """Float32 values in [0, 1] back to ``dtype``: ``uint8`` rounds to the nearest level."""
    if dtype == jnp.uint8:
        return jnp.clip(jnp.round(values * 255.0), 0.0, 255.0).astype(jnp.uint8)
    return jnp.clip(values, 0.0, 1.0)


def rgb_to_hsv(rgb: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Hue, saturation and value of float RGB in [0, 1], as :mod:`colorsys`.

    Hue is in [0, 1) (red 0, green 1/3, blue 2/3); grey pixels have hue and
    saturation 0. Divisions are guarded so that gradients stay finite on grey
    and black pixels.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    maxc = jnp.max(rgb, axis=-1)
    minc = jnp.min(rgb, axis=-1)
    delta = maxc - minc
    chromatic = delta > 0
    safe_delta = jnp.where(chromatic, delta, 1.0)
    safe_max = jnp.where(maxc > 0, maxc, 1.0)
    saturation = jnp.where(maxc > 0, delta / safe_max, 0.0)
    rc, gc, bc = ((maxc - c) / safe_delta for c in (r, g, b))
    sector = jnp.where(r == maxc, bc - gc, jnp.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = jnp.where(chromatic, jnp.mod(sector / 6.0, 1.0), 0.0)
    return hue, saturation, maxc


def hsv_to_rgb(hue: jax.Array, saturation: jax.Array, value: jax.Array) -> jax.Array:
    """Float RGB ``(..., 3)`` from hue (any real, taken modulo 1), saturation and value.

    Channel ``n`` (5 for red, 3 for green, 1 for blue) is
    ``v - v s clip(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 hue) mod 6``: the
    piecewise-linear form of :func:`colorsys.hsv_to_rgb`, differentiable in hue.
    """
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = jnp.mod(n + 6.0 * hue, 6.0)
        ramp = jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
        channels.append(value - value * saturation * ramp)
    return jnp.stack(channels, axis=-1)


def smooth3x3(images: jax.Array) -> jax.Array:
    """Pillow's ``ImageFilter.SMOOTH`` of ``(B, H, W, C)`` images; borders unchanged.

    The kernel is ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13``. ``uint8`` results are
    rounded to the nearest level (a sum over 13 never ties); float results are not
    rounded. Images smaller than 3x3 are all border, so they are returned as they are.
    """
    height, width = images.shape[1:3]
    if height < 3 or width < 3:
        return images
    wide = images.astype(jnp.int32 if images.dtype == jnp.uint8 else jnp.float32)
    total = 4 * wide[:, 1:-1, 1:-1]
    for dy in range(3):
        for dx in range(3):
            total = total + wide[:, dy : dy + height - 2, dx : dx + width - 2]
    if images.dtype == jnp.uint8:
        inner = ((2 * total + 13) // 26).astype(jnp.uint8)
    else:
        inner = total / 13.0
    return images.at[:, 1:-1, 1:-1].set(inner)
