"""Writes the generated parts of docs/operators.md and its gallery.

    python docs/operators_page.py            # the table and every gallery image
    python docs/operators_page.py --table    # the table only (fast)

The table comes from :func:`datarax.operators.catalog.library` (each operator's
family, what it is differentiable in and its reference); the gallery applies every
image operator to photographs that scikit-image ships, in one compiled call per
operator, and saves one PNG per family under docs/images/. The page's prose is
written by hand around the two generated blocks.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DOCS = Path(__file__).resolve().parent
PAGE = DOCS / "operators.md"
IMAGES = DOCS / "images"
CELL = 96  # pixels of one gallery cell


#: The configuration each image operator is shown with (visible, not typical).
def demos() -> dict[str, Callable[[], Any]]:
    from flax import nnx

    from datarax.operators import image as im
    from datarax.operators import policies as po

    r = nnx.Rngs
    return {
        "Normalize": lambda: im.Normalize(im.NormalizeConfig(mean=0.0, std=255.0)),
        "Brightness": lambda: im.Brightness(im.BrightnessConfig(factor=1.6)),
        "Contrast": lambda: im.Contrast(im.ContrastConfig(factor=1.8)),
        "Saturation": lambda: im.Saturation(im.SaturationConfig(factor=2.0)),
        "Hue": lambda: im.Hue(im.HueConfig(shift=0.25)),
        "Gamma": lambda: im.Gamma(im.GammaConfig(gamma=2.0)),
        "Grayscale": lambda: im.Grayscale(im.GrayscaleConfig(output_channels=3)),
        "ColorJitter": lambda: im.ColorJitter(
            im.ColorJitterConfig(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
            rngs=r(0),
        ),
        "Sharpness": lambda: im.Sharpness(im.SharpnessConfig(factor=4.0)),
        "Solarize": lambda: im.Solarize(im.SolarizeConfig(threshold=0.5)),
        "Posterize": lambda: im.Posterize(im.PosterizeConfig(bits=2)),
        "Invert": lambda: im.Invert(im.InvertConfig()),
        "AutoContrast": lambda: im.AutoContrast(im.AutoContrastConfig()),
        "Equalize": lambda: im.Equalize(im.EqualizeConfig()),
        "Rotate": lambda: im.Rotate(im.RotateConfig(angle=30.0)),
        "Affine": lambda: im.Affine(
            im.AffineConfig(rotation=10.0, translate_x=8.0, scale=0.8, shear_x=15.0)
        ),
        "RandomAffine": lambda: im.RandomAffine(
            im.RandomAffineConfig(degrees=30.0, translate=(0.1, 0.1), scale=(0.7, 1.1)),
            rngs=r(0),
        ),
        "Resize": lambda: im.Resize(im.ResizeConfig(size=24, interpolation="area")),
        "RandomCrop": lambda: im.RandomCrop(im.RandomCropConfig(size=72, padding=12), rngs=r(0)),
        "CenterCrop": lambda: im.CenterCrop(im.CenterCropConfig(size=56)),
        "Pad": lambda: im.Pad(im.PadConfig(padding=16, mode="reflect")),
        "Flip": lambda: im.Flip(im.FlipConfig(direction="vertical")),
        "RandomResizedCrop": lambda: im.RandomResizedCrop(
            im.RandomResizedCropConfig(size=CELL, scale=(0.1, 0.5)), rngs=r(0)
        ),
        "RandomFlip": lambda: im.RandomFlip(im.RandomFlipConfig(), rngs=r(1)),
        "GaussianNoise": lambda: im.GaussianNoise(im.GaussianNoiseConfig(sigma=0.15), rngs=r(0)),
        "SaltAndPepper": lambda: im.SaltAndPepper(im.SaltAndPepperConfig(amount=0.08), rngs=r(0)),
        "GaussianBlur": lambda: im.GaussianBlur(im.GaussianBlurConfig(kernel_size=9, sigma=2.5)),
        "PixelDropout": lambda: im.PixelDropout(im.PixelDropoutConfig(probability=0.2), rngs=r(0)),
        "ChannelDropout": lambda: im.ChannelDropout(im.ChannelDropoutConfig(), rngs=r(0)),
        "PatchDropout": lambda: im.PatchDropout(
            im.PatchDropoutConfig(patch_size=16, fraction=0.3), rngs=r(0)
        ),
        "Cutout": lambda: im.Cutout(im.CutoutConfig(size=40), rngs=r(0)),
        "RandomErasing": lambda: im.RandomErasing(
            im.RandomErasingConfig(probability=1.0, value=128), rngs=r(0)
        ),
        "RandAugment": lambda: po.RandAugment(po.RandAugmentConfig(magnitude=15), rngs=r(0)),
        "TrivialAugment": lambda: po.TrivialAugment(po.TrivialAugmentConfig(), rngs=r(0)),
    }


def photos() -> np.ndarray:
    """Three photographs scikit-image ships, as ``(3, CELL, CELL, 3)`` uint8."""
    import skimage.data
    from PIL import Image

    out = []
    for photo in (skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()):
        h, w = photo.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = Image.fromarray(photo[top : top + side, left : left + side])
        out.append(np.asarray(square.resize((CELL, CELL), Image.Resampling.LANCZOS)))
    return np.stack(out)


def apply(op: Any, images: np.ndarray) -> np.ndarray:
    """``op`` on the photos, as displayable uint8 cells."""
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from PIL import Image

    graphdef, state = nnx.split(op)

    @jax.jit
    def run(state, images):
        data, _ = nnx.merge(graphdef, state).apply_batch(
            {"image": images}, {}, jnp.arange(images.shape[0]), jnp.uint32(0), 0
        )
        return data["image"]

    out = np.asarray(run(state, jnp.asarray(images)))
    if out.dtype != np.uint8:
        out = np.clip(np.rint(out * (255.0 if out.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    if out.ndim == 3:
        out = out[..., None]
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.stack(
        [np.asarray(Image.fromarray(o).resize((CELL, CELL), Image.Resampling.NEAREST)) for o in out]
    )


def gallery(names: list[str], path: Path) -> None:
    """One PNG: a row per operator (its name, then the three photos through it)."""
    from PIL import Image, ImageDraw

    images = photos()
    label = 150
    rows = [("original", images)] + [(n, apply(demos()[n](), images)) for n in names]
    sheet = Image.new("RGB", (label + 3 * CELL, len(rows) * CELL), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, cells) in enumerate(rows):
        draw.text((6, i * CELL + CELL // 2 - 6), name, fill="black")
        for j, cell in enumerate(cells):
            sheet.paste(Image.fromarray(cell), (label + j * CELL, i * CELL))
    sheet.save(path, optimize=True)


def table() -> str:
    """The Markdown table of every library operator."""
    from datarax.operators.catalog import library

    lines = [
        "| operator | family | differentiable in | checked against |",
        "|---|---|---|---|",
    ]
    for e in library():
        grads = ", ".join(f"`{d}`" for d in e.differentiable_in) or "not differentiable"
        lines.append(f"| `{e.name}` | {e.family} | {grads} | {e.reference} |")
    return "\n".join(lines)


def galleries() -> dict[str, list[str]]:
    """Gallery file name -> the image operators it shows (every one with a demo)."""
    from datarax.operators.catalog import library

    shown = demos()
    files: dict[str, list[str]] = {}
    for e in library():
        if e.name in shown:
            key = {"image: colour": "colour", "image: geometry": "geometry"}.get(e.family, "noise")
            files.setdefault(f"operators-{key}.png", []).append(e.name)
    return files


def write_table(page: Path = PAGE) -> None:
    """Replace the table between the page's markers."""
    text = page.read_text()
    block = f"<!-- table: begin -->\n{table()}\n<!-- table: end -->"
    text = re.sub(r"<!-- table: begin -->.*?<!-- table: end -->", block, text, flags=re.S)
    page.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="write the table only")
    args = parser.parse_args()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    write_table()
    if not args.table:
        IMAGES.mkdir(exist_ok=True)
        for name, ops in galleries().items():
            gallery(ops, IMAGES / name)
            print(f"wrote {IMAGES / name}")
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
