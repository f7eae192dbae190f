"""Keep a docs page's benchmark table generated: replace the text between two markers.

Example:
    >>> page = "intro\\n<!-- datarax-bench:start -->\\nold\\n<!-- datarax-bench:end -->\\n"
    >>> print(replace_between_markers(page, "new table\\n"), end="")
    intro
    <!-- datarax-bench:start -->
    new table
    <!-- datarax-bench:end -->
"""

from __future__ import annotations

from pathlib import Path

from datarax.benchmarking.errors import BenchmarkError

START = "<!-- datarax-bench:start -->"
END = "<!-- datarax-bench:end -->"


def replace_between_markers(page: str, generated: str, where: str = "docs page") -> str:
    """``page`` with the lines between the :data:`START` and :data:`END` lines set to ``generated``.

    Each marker must be a line of its own, so prose that mentions a marker is left alone.
    """
    lines = page.splitlines(keepends=True)
    stripped = [line.strip() for line in lines]
    start = stripped.index(START) if START in stripped else -1
    end = stripped.index(END, start + 1) if start >= 0 and END in stripped[start + 1 :] else -1
    if start < 0 or end < 0:
        raise BenchmarkError(
            "no place for the generated table",
            where=where,
            expected=f"a line {START} and, after it, a line {END}",
            found="neither" if START not in stripped and END not in stripped else "only one",
        )
    body = generated.rstrip("\n") + "\n"
    return "".join(lines[: start + 1]) + body + "".join(lines[end:])


def update_docs(path: str | Path, generated: str) -> Path:
    """Rewrite the page at ``path`` with ``generated`` between its markers."""
    path = Path(path)
    try:
        page = path.read_text()
    except OSError as exc:
        raise BenchmarkError(
            "cannot read the docs page",
            where=str(path),
            expected="an existing Markdown file",
            found=exc.strerror or type(exc).__name__,
        ) from exc
    path.write_text(replace_between_markers(page, generated, str(path)))
    return path
