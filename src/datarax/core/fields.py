"""Field checks: values as field arrays, records against a spec of fields, batches as rows.

A record is a dict of field name to array; a *spec* gives each field's shape and
dtype (``jax.ShapeDtypeStruct``, or anything with ``shape`` and ``dtype``). Sources
convert the values they are given with :func:`field_array` and check each record
against their spec with :func:`check_fields`, so every mismatch is reported the
same way: the source, the record, the field, expected and found.

Example:
    >>> import jax, numpy as np
    >>> spec = {"x": jax.ShapeDtypeStruct((2,), np.int32)}
    >>> check_fields({"x": np.zeros(3, np.int32)}, spec, where="src, record 4")
    Traceback (most recent call last):
    ...
    datarax.core.errors.SchemaError: src, record 4, field 'x': record field differs from \
the source's spec; expected int32(2,), found int32(3,)
    >>> fields_match({"x": np.zeros((5, 2), np.int32)}, spec, leading=(5,))
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from datarax.core.dtypes import narrowed
from datarax.core.errors import DataraxError, SchemaError, SourceError


def is_numeric(dtype: np.dtype) -> bool:
    """Whether arrays of ``dtype`` can be a field of a batch: bool, integer or floating.

    Floating includes the types JAX adds to NumPy (``bfloat16``, the ``float8`` types).
    """
    return dtype.kind in "biuf" or (dtype.kind == "V" and jnp.issubdtype(dtype, jnp.floating))


def is_text(value: Any) -> bool:
    """Whether ``value`` is text: a ``str`` or ``bytes``, or an array of them."""
    if isinstance(value, (str, bytes)):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "USO" and _all_text(value)


def _all_text(array: np.ndarray) -> bool:
    if array.dtype.kind in "US":
        return True
    return all(isinstance(v, (str, bytes)) for v in array.reshape(-1))


def field_array(
    value: Any, *, source: str, field: str, record: int | None = None, text: bool = False
) -> np.ndarray:
    """``value`` as a numeric NumPy array, 64-bit values narrowed as JAX narrows them.

    Args:
        value: An array, a number or nested lists of numbers.
        source: The source, as shown in errors.
        field: The field's name.
        record: The record the value belongs to; ``None`` for a whole column, which
            then needs a record axis.
        text: Also accept text (``str``, ``bytes`` or arrays of them), returned as an
            array of dtype ``object`` holding the Python strings. Records decoded on
            the host plane may carry text for host operators (a tokeniser) to turn
            into numbers; batches never hold text.

    Raises:
        SourceError: naming the source, field and record, when the value is ragged,
            not numeric (nor text when accepted), a scalar column, or holds 64-bit
            integers that do not fit in 32 bits.
    """
    place = f"{source}, field '{field}'" + (f", record {record}" if record is not None else "")
    if text and is_text(value):
        array = np.empty(np.shape(value), dtype=object)
        array[...] = value.tolist() if isinstance(value, np.ndarray) else value
        return array
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise SourceError(
            "value is not a rectangular array",
            where=place,
            expected="an array or nested lists of equal lengths",
            found=type(value).__name__,
        ) from exc
    if not is_numeric(array.dtype) or (record is None and array.ndim == 0):
        raise SourceError(
            "field is not a numeric array",
            where=place,
            expected="a bool, integer or floating array"
            + (" with a record axis" if record is None else "")
            + (", or text" if text else ""),
            found=f"{type(value).__name__} of dtype {array.dtype} and shape {array.shape}",
        )
    return narrowed(array, where=place)


def record_fields(
    values: Mapping[Any, Any], *, source: str, record: int | None = None, text: bool = False
) -> dict[str, np.ndarray]:
    """Every value of a record (or every column, when ``record`` is ``None``) as a field array.

    Field names become ``str``; each value goes through :func:`field_array`.
    """
    return {
        str(k): field_array(v, source=source, field=str(k), record=record, text=text)
        for k, v in values.items()
    }


def check_fields(
    fields: Mapping[str, Any],
    spec: Mapping[str, Any],
    *,
    where: str,
    subject: str = "record",
    reference: str = "the source's spec",
    error: type[DataraxError] = SchemaError,
    leading: tuple[int, ...] = (),
) -> None:
    """Raise unless ``fields`` has exactly the fields of ``spec``, each of its shape and dtype.

    Args:
        fields: What was found: field name to an array (or a spec entry).
        spec: What is expected: field name to something with ``shape`` and ``dtype``.
        where: The source and record (or component), as shown in the error; a field
            that differs is added to it.
        subject: What ``fields`` is, as the error says it ("record", "component").
        reference: What ``spec`` is, as the error says it ("record 0").
        error: The :class:`DataraxError` subclass raised.
        leading: Axes every field has before the spec's shape (a batch axis).

    Raises:
        DataraxError: of class ``error``, when a field is missing or extra, or has
            another shape or dtype than ``spec`` gives it.
    """
    mismatch = _mismatch(fields, spec, leading)
    if mismatch is None:
        return
    if mismatch == "":
        raise error(
            f"{subject} has other fields than {reference}",
            where=where,
            expected=sorted(spec),
            found=sorted(fields),
        )
    s, value = spec[mismatch], fields[mismatch]
    raise error(
        f"{subject} field differs from {reference}",
        where=f"{where}, field '{mismatch}'",
        expected=f"{np.dtype(s.dtype)}{(*leading, *s.shape)}",
        found=f"{np.dtype(value.dtype)}{tuple(value.shape)}",
    )


def fields_match(
    fields: Mapping[str, Any], spec: Mapping[str, Any], *, leading: tuple[int, ...] = ()
) -> bool:
    """Whether :func:`check_fields` accepts ``fields`` (without building an error)."""
    return _mismatch(fields, spec, leading) is None


def record_rows(arrays: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Stacked fields (a batch) as one dict per record, each holding views of its row.

    Example:
        >>> record_rows({"x": np.array([1, 2]), "y": np.zeros((2, 3))})[1]["x"]
        np.int64(2)
    """
    n = len(next(iter(arrays.values()))) if arrays else 0
    return [{k: v[i] for k, v in arrays.items()} for i in range(n)]


def _mismatch(
    fields: Mapping[str, Any], spec: Mapping[str, Any], leading: tuple[int, ...]
) -> str | None:
    """``None`` when ``fields`` matches ``spec``; ``""`` when the names differ; else the field."""
    if fields.keys() != spec.keys():
        return ""
    for name, s in spec.items():
        value = fields[name]
        if tuple(value.shape) != (*leading, *s.shape) or value.dtype != s.dtype:
            return name
    return None
