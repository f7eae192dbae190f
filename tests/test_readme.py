"""The README's promises: its Quick Start is the example, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quick_start_is_the_example_verbatim():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick Start\n\n```python\n(.*?)```", readme, re.S).group(1)
    example = (ROOT / "examples" / "quickstart.py").read_text()
    assert example.endswith(block)


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)[:2]
    assert blocks[0].splitlines()[1].endswith("datarax demo")
    assert blocks[1].splitlines()[0] == "# Set up and run the tests"
    assert "python -m pytest" in blocks[1]
    assert "# Set up and run the tests" in (ROOT / ".ci" / "run").read_text()
