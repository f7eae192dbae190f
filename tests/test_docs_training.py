"""The complete examples of docs/training.md run and print what the page says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "training.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_fused_example_trains_to_a_small_loss():
    (block,) = [b for b in python_blocks() if "fuse_nnx(pipeline" in b]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(PAGE), "exec"), {})
    assert out.getvalue() == "True\n"


def test_the_page_lists_every_measured_scenario_between_the_markers():
    page = PAGE.read_text()
    table = re.search(r"<!-- datarax-bench:start -->\n(.*?)<!-- datarax-bench:end -->", page, re.S)
    assert table is not None, "docs/training.md has no generated table"
    rows = {line.split(" | ")[0].strip("| ") for line in table.group(1).splitlines()}
    assert {"T16", "T256", "TCNN"} <= rows
    for system in ("datarax", "datarax-fused", "grain", "torch", "tfdata"):
        assert f"| T16 | {system} |" in table.group(1), system
    assert "T16 datarax-fused steps/s >= 1.8x best peer" in table.group(1)
