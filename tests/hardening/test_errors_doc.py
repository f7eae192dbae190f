"""docs/errors.md is the table of bad inputs with the messages they get."""

from __future__ import annotations

import difflib

from errors_doc import PAGE, render


def test_the_errors_page_is_generated_from_the_table():
    page = render()
    current = PAGE.read_text() if PAGE.exists() else ""
    diff = "\n".join(
        difflib.unified_diff(
            current.splitlines(), page.splitlines(), "docs/errors.md", "table", lineterm=""
        )
    )
    assert page == current, f"run `python tests/hardening/errors_doc.py`:\n{diff[:3000]}"
