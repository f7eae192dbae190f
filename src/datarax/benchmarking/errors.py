"""Errors of the benchmark tool: each is a :class:`~datarax.core.errors.DataraxError`."""

from __future__ import annotations

from datarax.core.errors import DataraxError


class BenchmarkError(DataraxError):
    """A benchmark run cannot be set up as asked (unknown name, missing GPU)."""


class MissingFrameworkError(BenchmarkError):
    """A framework asked for by name is not installed."""


class ResultsFileError(BenchmarkError):
    """A results file cannot be read or does not follow the results schema."""
