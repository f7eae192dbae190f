"""Short, stable hashes of JSON-able values (pipeline and record fingerprints)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(value: Any) -> str:
    """A 16-hex-digit SHA-256 of ``value`` as sorted JSON (other objects by ``str``).

    Example:
        >>> digest({"b": 1, "a": [2, 3]}) == digest({"a": [2, 3], "b": 1})
        True
        >>> len(digest("x"))
        16
    """
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
