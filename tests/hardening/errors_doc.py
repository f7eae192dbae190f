"""Writes docs/errors.md from the table of bad inputs: ``python tests/hardening/errors_doc.py``.

Every entry of :mod:`bad_inputs` is run and its message recorded; the page lists
them by API. ``tests/hardening/test_errors_doc.py`` fails when the page differs
from what this script writes, so the page always shows the messages users get.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PAGE = ROOT / "docs" / "errors.md"

INTRO = """\
# Errors

Every error a user can cause is a `DataraxError` (from `datarax`), raised where the
mistake is made: a config when it is built, a pipeline when it is composed (every
device node is traced then), a record when it is read. Its message has four parts
in one order, and the error object keeps them as attributes:

    <where>: <what>; expected <expected>, found <found>[. <hint>]

`where` names the node, source, record or field; `expected` and `found` say what
datarax wanted and what it got. Subclasses say what kind of mistake it is:
`ConfigError` (a config value), `PipelineBuildError` (composing or tracing a
pipeline), `SchemaError` (fields, shapes and dtypes), `SourceError` and
`RecordError` (reading records), `OperatorError`, `StateError` (restoring an
iterator), `FileError` (a file the library reads or writes), `WorkerError` (a
worker process).

A bad input never changes a running stream: after any of the errors below, an
iterator that was running gives exactly the batches it would have given (the test
suite checks each entry against a control iterator), and a refused `set_state`
leaves the iterator where it was.

This page is generated from the test suite's table of bad inputs
(`tests/hardening/bad_inputs.py`, written by `python tests/hardening/errors_doc.py`):
each row is one input the suite runs, with the message it gets. Temporary paths
read `<tmp>`.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The page, from running every entry of the table."""
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    from bad_inputs import CASES, STATES, TMP
    from witness import normalised, witness_pipeline

    from datarax import DataraxError

    lines = [INTRO]
    api = None
    for case in CASES:
        if case.api != api:
            api = case.api
            lines += ["", f"## {api}", "", "| input | error | message |", "|---|---|---|"]
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                case.call()
        except DataraxError as error:
            message = normalised(str(error), str(TMP))
            lines.append(f"| {_cell(case.label)} | `{type(error).__name__}` | {_cell(message)} |")
        else:
            raise AssertionError(f"{case.api}: {case.label} raised nothing")
    lines += [
        "",
        "## set_state",
        "",
        "Each input is a valid state (that of a new iterator) with one entry changed.",
        "",
        "| input | error | message |",
        "|---|---|---|",
    ]
    state = iter(witness_pipeline()).get_state()
    for label, change in STATES:
        it = iter(witness_pipeline())
        try:
            it.set_state(change(state))
        except DataraxError as error:
            message = normalised(str(error), str(TMP))
            lines.append(f"| {_cell(label)} | `{type(error).__name__}` | {_cell(message)} |")
        else:
            raise AssertionError(f"set_state: {label} raised nothing")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    PAGE.write_text(render())
    print(f"wrote {PAGE}")
