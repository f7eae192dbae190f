"""Shared memory between the main process and host-plane worker processes."""

from datarax.memory.shared import SharedArrays

__all__ = ["SharedArrays"]
