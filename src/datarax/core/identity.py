"""`function_identity`: a stable name for a user function, equal in every process.

Fingerprints of operators, nodes and host operators name the functions they run by
this identity, so a saved state is never restored into a pipeline whose functions
changed.

Example:
    >>> function_identity(len)
    'len'
    >>> function_identity(lambda x: x + 1) == function_identity(lambda x: x + 1)
    True
    >>> function_identity(lambda x: x + 1) == function_identity(lambda x: x + 2)
    False
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any


def function_identity(fn: Callable) -> str:
    """A name and a digest of the code of ``fn``, equal in every process.

    Two pipelines whose functions differ in code (two lambdas, say) get different
    fingerprints, so a saved state is never restored into the wrong pipeline.
    """
    name = getattr(fn, "__qualname__", type(fn).__name__)
    code = getattr(fn, "__code__", None)
    if code is None:
        return name
    return f"{name}:{_code_digest(code)}"


def _code_digest(code: Any) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        # Nested code objects repr with their address; hash their contents instead.
        h.update(_code_digest(const).encode() if inspect.iscode(const) else repr(const).encode())
    return h.hexdigest()
