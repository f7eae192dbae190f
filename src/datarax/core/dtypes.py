"""64-bit values narrowed to 32 bits, as JAX stores them unless ``jax_enable_x64``.

JAX computes in 32 bits by default: a float64 array becomes float32 and a 64-bit
integer array 32 bits when it reaches a device. Sources narrow their fields on the
host the same way, once, so that a field's dtype is the one the compiled pipeline
sees, and an integer that does not fit is an error naming where it is rather than
a silent wrap-around.

Example:
    >>> import numpy as np
    >>> narrow_dtype(np.dtype(np.float64))
    dtype('float32')
    >>> narrowed(np.array([1, 2**31]), where="MemorySource, field 'x'")
    Traceback (most recent call last):
    ...
    datarax.core.errors.SourceError: MemorySource, field 'x': 64-bit integers do not fit \
in 32 bits; expected values in [-2147483648, 2147483647] (or jax_enable_x64), found values \
in [1, 2147483648]
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from datarax.core.errors import SourceError

_NARROW = {"f": np.dtype(np.float32), "i": np.dtype(np.int32), "u": np.dtype(np.uint32)}


def jax_x64() -> bool:
    """Whether JAX keeps 64-bit values (``jax_enable_x64``)."""
    return bool(jax.config.read("jax_enable_x64"))


def narrow_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype JAX gives values of ``dtype``: 64-bit floats and integers become 32 bits.

    Every other dtype, and every dtype when ``jax_enable_x64`` is on, is returned as is.
    """
    dtype = np.dtype(dtype)
    if dtype.itemsize != 8 or jax_x64():
        return dtype
    return _NARROW.get(dtype.kind, dtype)


def narrowed(
    values: np.ndarray, *, where: str, records: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """``values`` in :func:`narrow_dtype` of their dtype; integers are checked to fit first.

    Args:
        values: The array to narrow (returned as is when its dtype stays).
        where: The source and field, as shown in the error.
        records: The record id of each row of ``values`` (axis 0). When given, the
            error names the record of the first value that does not fit.

    Raises:
        SourceError: when a 64-bit integer does not fit in 32 bits.
    """
    target = narrow_dtype(values.dtype)
    if target == values.dtype:
        return values
    if values.dtype.kind in "iu" and values.size:
        info = np.iinfo(target)
        low, high = values.min(), values.max()
        if low < info.min or high > info.max:
            expected = f"values in [{info.min}, {info.max}] (or jax_enable_x64)"
            if records is None:
                found, place = f"values in [{low}, {high}]", where
            else:
                outside = (values < info.min) | (values > info.max)
                row = int(np.argwhere(outside)[0][0])
                found = f"value {values[outside][0]}"
                place = f"{where}, record {records[row]}"
            raise SourceError(
                "64-bit integers do not fit in 32 bits", where=place, expected=expected, found=found
            )
    return values.astype(target)
