"""Optional dependencies: imported when a feature first needs them, never at package import.

A feature that needs another package calls :func:`require` where it starts to work.
When the package is missing, the user learns which feature needs it and which
datarax extra installs it.

Example:
    >>> try:
    ...     require("no_such_module_xyz", "array-record", "ArrayRecordSource")
    ... except MissingDependencyError as err:
    ...     print(err.hint)
    To use it, install datarax[array-record]: pip install "datarax[array-record]"
"""

from __future__ import annotations

import importlib
from types import ModuleType

from datarax.core.errors import DataraxError


class MissingDependencyError(DataraxError, ImportError):
    """A feature needs a package that is not installed; the message names the extra."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise an error naming ``feature`` and the extra that installs it.

    Args:
        module: The dotted module name to import.
        extra: The datarax extra that installs it (``pip install "datarax[extra]"``).
        feature: What needs the module, shown as the error's location.

    Raises:
        MissingDependencyError: when the module (or a package it imports) is missing.

    Example:
        >>> require("array_record.python.array_record_module", "array-record",
        ...         "ArrayRecordSource").__name__
        'array_record.python.array_record_module'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            "a package it needs is not installed",
            where=feature,
            expected=f"the module '{module}'",
            found=str(exc),
            hint=f'To use it, install datarax[{extra}]: pip install "datarax[{extra}]"',
        ) from exc
