"""A host operator that raises KeyboardInterrupt once, at one record (picklable)."""

from __future__ import annotations

import dis
import os
from pathlib import Path


class InterruptOnce:
    """Raises ``KeyboardInterrupt`` at ``record`` the first time, as Ctrl-C would.

    The first time is marked by a file, so that worker processes share it.
    """

    def __init__(self, record: int, marker: Path) -> None:
        self.record, self.marker = record, str(marker)
        self.__name__ = "interrupt_once"

    def __call__(self, record):
        if int(record["x"]) == self.record and not os.path.exists(self.marker):
            Path(self.marker).touch()
            raise KeyboardInterrupt
        return record


class InterruptingDecoder:
    """A decoder (``{"x": ...}`` records as they are) that interrupts once at ``record``."""

    def __init__(self, record: int, marker: Path) -> None:
        self.record, self.marker = record, str(marker)
        self.__name__ = "interrupting_decoder"

    def __call__(self, raw):
        if int(raw["x"]) == self.record and not os.path.exists(self.marker):
            Path(self.marker).touch()
            raise KeyboardInterrupt
        return raw


class InterruptAtPoint:
    """A trace function raising ``KeyboardInterrupt`` at the ``k``-th point of datarax.

    The points are those where CPython delivers a Ctrl-C to the main thread: the start
    of a function, a loop's jump back, and the return from a call into C (blocking
    calls interrupted while they wait are tested apart). Installed with
    :func:`sys.settrace`, it counts these points in the calling thread's datarax frames,
    instruction by instruction, and raises at the ``k``-th, as a Ctrl-C landing there
    would. Raising ends the tracing (Python removes a trace function that raises);
    ``fired`` tells whether it did.
    """

    def __init__(self, k: int) -> None:
        import datarax

        self.package = os.path.dirname(datarax.__file__)
        self.k, self.count, self.fired = k, 0, False
        self._last: dict[int, tuple[str, int]] = {}  # frame -> its last instruction
        self._into_python: set[int] = set()  # frames whose last call ran Python code

    def __call__(self, frame, event, arg):
        caller = frame.f_back
        if caller is not None:
            self._into_python.add(id(caller))
        if not frame.f_code.co_filename.startswith(self.package):
            return None
        frame.f_trace_opcodes = True
        code, at = frame.f_code.co_code, frame.f_lasti
        if dis.opname[code[at]] == "RESUME" and code[at + 1] == 0:  # a call, not a resume
            self._point()
        return self._local

    def _local(self, frame, event, arg):
        key = id(frame)
        if event == "opcode":
            at = frame.f_lasti
            last = self._last.get(key)
            self._last[key] = (dis.opname[frame.f_code.co_code[at]], at)
            into_python = key in self._into_python
            self._into_python.discard(key)
            if last is not None:
                name, offset = last
                returned_from_c = name in ("CALL", "CALL_FUNCTION_EX") and not into_python
                looped = "JUMP_BACKWARD" in name and "NO_INTERRUPT" not in name and at < offset
                if returned_from_c or looped:
                    self._point()
        elif event == "return":
            self._last.pop(key, None)
        return self._local

    def _point(self) -> None:
        self.count += 1
        if self.count == self.k:
            self.fired = True
            raise KeyboardInterrupt
