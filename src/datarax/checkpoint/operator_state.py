"""The operators' state: ``nnx.state(tuple(pipeline.operators))`` as an ``.npz`` file.

Learnable augmentation parameters (``nnx.Param``) and the operators' random keys
are arrays. They are copied to host memory when a save starts
(:func:`capture_operators`), written as numbered arrays of an ``.npz`` file, and
described by a JSON *manifest* (path, dtype, shape of each array and the file's
SHA-256) kept in the iterator state document. Random keys are stored as their key
data and re-wrapped with the same implementation on restore.

Example:
    >>> import numpy as np
    >>> from datarax import from_source
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> p = from_source(MemorySource(MemorySourceConfig(), data={"x": np.arange(4.0)}), 2)
    >>> snapshot = capture_operators(p)
    >>> data, manifest = encode_operators(snapshot)
    >>> manifest["leaves"]
    []
    >>> restored = decode_operators(manifest, data, "state.json", "operators.npz", p)
    >>> apply_operators(restored, p)
    >>> len(restored.values)
    0
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from datarax.core.errors import StateError

#: The file name of the arrays inside a checkpoint item directory.
OPERATORS_FILE = "operators.npz"

Path_ = tuple[int | str, ...]


@dataclass(frozen=True)
class Leaf:
    """One array of the operators' state: where it lives and what it holds."""

    path: Path_
    dtype: str  # a NumPy dtype name, or "key<impl>" for a typed random key
    shape: tuple[int, ...]


@dataclass(frozen=True)
class OperatorSnapshot:
    """Host copies of every operator array, taken when a save starts."""

    leaves: tuple[Leaf, ...]
    arrays: tuple[np.ndarray, ...]  # for keys: the key data (uint32)


@dataclass(frozen=True)
class RestoredOperators:
    """Checked operator arrays read from a file, ready for :func:`apply_operators`."""

    leaves: tuple[Leaf, ...]
    values: tuple[jax.Array, ...]


def _json_key(key: Any) -> int | str:
    return key if isinstance(key, (int, str)) and not isinstance(key, bool) else str(key)


def _describe(value: Any) -> tuple[str, tuple[int, ...]]:
    if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        return f"key<{jax.random.key_impl(value)}>", tuple(value.shape)
    return np.dtype(value.dtype).name, tuple(value.shape)


def _current(pipeline: Any) -> list[tuple[Path_, Any]]:
    """(path, value) of every array of the pipeline's operators, in a fixed order."""
    flat = nnx.to_flat_state(nnx.state(tuple(pipeline.operators)))
    return [(tuple(_json_key(k) for k in path), var.get_value()) for path, var in flat]


def current_leaves(pipeline: Any) -> tuple[Leaf, ...]:
    """What the pipeline's operator state holds now (paths, dtypes, shapes)."""
    return tuple(Leaf(path, *_describe(value)) for path, value in _current(pipeline))


def capture_operators(pipeline: Any) -> OperatorSnapshot:
    """Copy the operators' arrays to host memory (blocks until they are computed)."""
    leaves, arrays = [], []
    for path, value in _current(pipeline):
        dtype, shape = _describe(value)
        data = jax.random.key_data(value) if dtype.startswith("key<") else value
        leaves.append(Leaf(path, dtype, shape))
        arrays.append(np.array(jax.device_get(data), copy=True))
    return OperatorSnapshot(tuple(leaves), tuple(arrays))


def encode_operators(snapshot: OperatorSnapshot) -> tuple[bytes, dict[str, Any]]:
    """The ``.npz`` bytes of a snapshot and the manifest describing them."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {f"a{i}": a for i, a in enumerate(snapshot.arrays)}
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    manifest = {
        "file": OPERATORS_FILE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "leaves": [
            {"path": list(leaf.path), "dtype": leaf.dtype, "shape": list(leaf.shape)}
            for leaf in snapshot.leaves
        ],
    }
    return data, manifest


def _leaf_text(leaf: Leaf | None) -> str:
    if leaf is None:
        return "absent"
    return f"{'/'.join(map(str, leaf.path))} {leaf.dtype}{list(leaf.shape)}"


def parse_manifest(manifest: Any, where: str) -> tuple[str, tuple[Leaf, ...]]:
    """Check a manifest's types; returns (sha256, leaves)."""
    expected = "an object with 'file', 'sha256' and 'leaves' (path, dtype, shape per array)"
    try:
        if not isinstance(manifest, dict):
            raise TypeError
        sha, items = manifest["sha256"], manifest["leaves"]
        if not isinstance(sha, str) or not isinstance(items, list):
            raise TypeError
        leaves = []
        for item in items:
            path, dtype, shape = item["path"], item["dtype"], item["shape"]
            valid = (
                isinstance(path, list)
                and all(isinstance(k, (int, str)) and not isinstance(k, bool) for k in path)
                and isinstance(dtype, str)
                and isinstance(shape, list)
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            )
            if not valid:
                raise TypeError
            leaves.append(Leaf(tuple(path), dtype, tuple(shape)))
    except (TypeError, KeyError):
        raise StateError(
            "malformed state: field 'operators'",
            where=where,
            expected=expected,
            found=repr(manifest)[:200],
        ) from None
    return sha, tuple(leaves)


def check_structure(saved: tuple[Leaf, ...], pipeline: Any, where: str) -> None:
    """Raise unless the saved arrays match the pipeline's operator state one to one."""
    current = current_leaves(pipeline)
    if saved == current:
        return
    for i in range(max(len(saved), len(current))):
        s = saved[i] if i < len(saved) else None
        c = current[i] if i < len(current) else None
        if s != c:
            raise StateError(
                "the operator state does not match the pipeline's operators",
                where=where,
                expected=f"{len(current)} arrays, array {i}: {_leaf_text(c)}",
                found=f"{len(saved)} arrays, array {i}: {_leaf_text(s)}",
                hint="Build the pipeline with the same operators and parameter shapes",
            )


def decode_operators(
    manifest: Any, data: bytes | None, where: str, file_where: str, pipeline: Any
) -> RestoredOperators:
    """Check an operator state against its manifest and the pipeline; nothing is changed.

    Args:
        manifest: The ``"operators"`` entry of the state document.
        data: The ``.npz`` file's bytes (``None`` when the file is missing).
        where: The state document's path (named for manifest errors).
        file_where: The ``.npz`` file's path (named for errors in the file).
        pipeline: The pipeline whose operators will receive the arrays.

    Raises:
        StateError: The manifest is malformed, does not match the operators, or the
            file is missing, truncated or corrupted.
    """
    sha, leaves = parse_manifest(manifest, where)
    check_structure(leaves, pipeline, where)
    expected = f"the operator arrays listed in {where}"
    if data is None:
        raise StateError(
            "the operator state file is missing",
            where=file_where,
            expected=expected,
            found="nothing at that path",
        )
    if not data:
        raise StateError("the file is empty", where=file_where, expected=expected, found="0 bytes")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha:
        raise StateError(
            "the file is truncated or corrupted: checksum mismatch",
            where=file_where,
            expected=f"sha256 {sha}",
            found=f"sha256 {digest} ({len(data)} bytes)",
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise StateError(
            "the file is corrupted: not a NumPy .npz archive",
            where=file_where,
            expected=expected,
            found=str(exc)[:200],
        ) from None
    names = [f"a{i}" for i in range(len(leaves))]
    if sorted(arrays) != sorted(names):
        raise StateError(
            "the file is corrupted: wrong arrays",
            where=file_where,
            expected=f"arrays {names}",
            found=f"arrays {sorted(arrays)}",
        )
    out = []
    for leaf, name in zip(leaves, names, strict=True):
        array = arrays[name]
        dtype, shape = leaf.dtype, leaf.shape
        if dtype.startswith("key<"):
            dtype, shape = "uint32", array.shape  # key data; checked when wrapped
        if array.dtype.name != dtype or tuple(array.shape) != shape:
            raise StateError(
                "the file is corrupted: an array differs from its description",
                where=f"{file_where}, array {name} ({'/'.join(map(str, leaf.path))})",
                expected=f"{dtype}{list(shape)}",
                found=f"{array.dtype.name}{list(array.shape)}",
            )
        out.append(array)
    values = _restored_values(leaves, out, file_where)
    return RestoredOperators(leaves, tuple(values))


def _value(leaf: Leaf, array: np.ndarray) -> jax.Array:
    if leaf.dtype.startswith("key<"):
        return jax.random.wrap_key_data(jnp.asarray(array), impl=leaf.dtype[4:-1])
    return jnp.asarray(array)


def _restored_values(
    leaves: tuple[Leaf, ...], arrays: list[np.ndarray], where: str
) -> list[jax.Array]:
    """The arrays as JAX values (random keys re-wrapped)."""
    values = []
    for leaf, array in zip(leaves, arrays, strict=True):
        try:
            value = _value(leaf, array)
        except (TypeError, ValueError) as exc:
            raise StateError(
                "the file is corrupted: invalid random key data",
                where=f"{where}, {'/'.join(map(str, leaf.path))}",
                expected=leaf.dtype,
                found=str(exc)[:200],
            ) from None
        if tuple(value.shape) != leaf.shape:
            raise StateError(
                "the file is corrupted: invalid random key data",
                where=f"{where}, {'/'.join(map(str, leaf.path))}",
                expected=f"{leaf.dtype}{list(leaf.shape)}",
                found=f"{leaf.dtype}{list(value.shape)}",
            )
        values.append(value)
    return values


def apply_operators(restored: RestoredOperators, pipeline: Any) -> None:
    """Set the operators' arrays in place with ``nnx.update`` (checked values only)."""
    state = nnx.from_flat_state(
        [(leaf.path, value) for leaf, value in zip(restored.leaves, restored.values, strict=True)]
    )
    nnx.update(tuple(pipeline.operators), state)
