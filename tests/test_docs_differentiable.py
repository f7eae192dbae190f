"""docs/differentiable.md: its example runs and prints what the page says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "differentiable.md"


def test_the_example_trains_the_model_and_the_policy_through_the_transform():
    (block,) = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(block.strip().splitlines()) <= 32
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(PAGE), "exec"), {})
    assert out.getvalue() == "True True\n"
    assert "It prints `True True`" in PAGE.read_text()
