"""The docs page's table is generated: only the lines between the marker lines change."""

from __future__ import annotations

import pytest

from datarax.benchmarking.docs import END, START, replace_between_markers
from datarax.benchmarking.errors import BenchmarkError


def test_only_the_lines_between_the_marker_lines_are_replaced():
    page = f"Prose naming `{START}` and `{END}`.\n\n{START}\nstale\n{END}\nafter\n"
    out = replace_between_markers(page, "| new | table |\n")
    assert out == f"Prose naming `{START}` and `{END}`.\n\n{START}\n| new | table |\n{END}\nafter\n"
    assert replace_between_markers(out, "| new | table |") == out


def test_a_page_without_marker_lines_is_an_error():
    with pytest.raises(BenchmarkError, match="page.md: no place for the generated table"):
        replace_between_markers(f"only `{START}` in prose\n", "x", "page.md")
