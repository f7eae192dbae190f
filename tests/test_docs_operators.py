"""docs/operators.md: the table is the catalog, the gallery shows every image operator."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("operators_page", ROOT / "docs" / "operators_page.py")
page = importlib.util.module_from_spec(spec)
spec.loader.exec_module(page)


def test_the_table_is_generated_from_the_catalog():
    text = (ROOT / "docs" / "operators.md").read_text()
    block = re.search(r"<!-- table: begin -->\n(.*?)\n<!-- table: end -->", text, re.S)
    assert block is not None and block.group(1) == page.table(), (
        "run `python docs/operators_page.py --table`"
    )


def test_every_image_operator_is_in_a_gallery_that_exists():
    from datarax.operators.catalog import library

    image_ops = {e.name for e in library() if e.family.startswith("image")}
    files = page.galleries()
    shown = {name for names in files.values() for name in names}
    assert image_ops <= shown
    text = (ROOT / "docs" / "operators.md").read_text()
    for name, names in files.items():
        path = ROOT / "docs" / "images" / name
        assert f"images/{name}" in text
        with Image.open(path) as png:  # a row for the originals and one per operator
            assert png.height == (len(names) + 1) * page.CELL


def test_the_gallery_renders(tmp_path):
    page.gallery(["Brightness", "Rotate"], tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as png:
        assert png.size == (150 + 3 * page.CELL, 3 * page.CELL)
        levels = np.unique(np.asarray(png.convert("L")))
        assert levels.size > 50  # photographs, not a blank sheet
