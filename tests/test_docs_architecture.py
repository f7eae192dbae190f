"""docs/architecture.md draws the layers that pyproject.toml's import contract checks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_layer_drawing_is_the_import_contract():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = config["tool"]["importlinter"]["contracts"]
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"<!-- layers: begin.*?```\n(.*?)```\n<!-- layers: end -->", text, re.S)
    assert block is not None, "docs/architecture.md has no layers block"
    drawn = []
    for line in block.group(1).splitlines():
        if line and not line.startswith(" "):
            names = re.split(r"\s{2,}", line.strip())[0]
            drawn.append(" | ".join(n.strip() for n in names.split("|")))
    assert drawn == contract["layers"]


def test_every_file_the_walkthrough_names_exists():
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:[a-z_]+/)+[a-z_]+\.py)`", text))
    assert len(named) >= 15
    missing = [
        p for p in named if not (ROOT / "src" / "datarax" / p).exists() and not (ROOT / p).exists()
    ]
    assert missing == []
