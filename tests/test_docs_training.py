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
    assert "<!-- datarax-bench:start -->" in page and "<!-- datarax-bench:end -->" in page
