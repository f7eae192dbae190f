"""A host operator that raises KeyboardInterrupt once, at one record (picklable)."""

from __future__ import annotations

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
