"""Shared memory for NumPy arrays: worker processes write, the main process reads.

A :class:`SharedArrays` block is one file in shared memory (``/dev/shm`` where it
exists) mapped by every process that opens it, holding a dict of arrays laid out one
after another. The creator owns the file and removes it on :meth:`SharedArrays.close`
(or at exit); other processes :meth:`SharedArrays.attach` by the block's
:attr:`~SharedArrays.handle` and only unmap. Plain files are used instead of
``multiprocessing.shared_memory`` so that no resource tracker process is involved.

Example:
    >>> import numpy as np
    >>> block = SharedArrays.create({"x": ((2, 3), np.float32)})
    >>> other = SharedArrays.attach(block.handle)
    >>> other.arrays["x"][1] = 7.0
    >>> block.arrays["x"].tolist()
    [[0.0, 0.0, 0.0], [7.0, 7.0, 7.0]]
    >>> other.close(); block.close()
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from datarax.core.exit import FILES, at_exit

#: (path, [(field, shape, dtype string, offset)], total bytes): enough to attach.
Handle = tuple[str, list[tuple[str, tuple[int, ...], str, int]], int]
_ALIGN = 64
_OWNED: set[str] = set()
_OWNED_LOCK = threading.Lock()


def _shared_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


class SharedArrays:
    """A dict of NumPy arrays in one shared-memory file."""

    def __init__(self, path: str, layout, size: int, *, owner: bool) -> None:
        self.path, self._layout, self._size, self._owner = path, layout, size, owner
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), max(size, 1))
        self.arrays: dict[str, np.ndarray] = {
            name: np.ndarray(shape, np.dtype(dtype), buffer=self._map, offset=offset)
            for name, shape, dtype, offset in layout
        }

    @classmethod
    def create(cls, fields: Mapping[str, tuple[tuple[int, ...], Any]]) -> SharedArrays:
        """A new zeroed block with one array per ``name: (shape, dtype)``."""
        layout, offset = [], 0
        for name, (shape, dtype) in fields.items():
            dtype = np.dtype(dtype)
            layout.append((name, tuple(int(d) for d in shape), dtype.str, offset))
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            offset += -(-nbytes // _ALIGN) * _ALIGN
        fd, path = tempfile.mkstemp(prefix="datarax-", dir=_shared_dir())
        try:
            os.ftruncate(fd, max(offset, 1))
        finally:
            os.close(fd)
        with _OWNED_LOCK:
            _OWNED.add(path)
        return cls(path, layout, offset, owner=True)

    @classmethod
    def attach(cls, handle: Handle) -> SharedArrays:
        """The block created elsewhere, mapped into this process."""
        path, layout, size = handle
        return cls(path, layout, size, owner=False)

    @property
    def handle(self) -> Handle:
        """What another process needs to :meth:`attach` this block."""
        return (self.path, self._layout, self._size)

    def copy(self) -> dict[str, np.ndarray]:
        """Private copies of the arrays (valid after the block is closed)."""
        return {k: v.copy() for k, v in self.arrays.items()}

    def close(self) -> None:
        """Unmap; the creator also removes the file."""
        self.arrays = {}
        with contextlib.suppress(BufferError):  # a view still alive keeps the map open
            self._map.close()
        if self._owner:
            _remove(self.path)

    def __enter__(self) -> SharedArrays:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remove(path: str) -> None:
    with _OWNED_LOCK:
        _OWNED.discard(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _remove_all() -> None:
    for path in list(_OWNED):
        _remove(path)


at_exit(_remove_all, stage=FILES)
