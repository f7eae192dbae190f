"""`ProgressBar`: a dependency-free progress display on stderr.

On a terminal the bar redraws in place (``\\r``); written to a file or a pipe it
prints one line each time another tenth of the total is done, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from datarax.core.errors import ConfigError

_WIDTH = 24  # characters of the bar itself
_REDRAW_EVERY = 0.1  # seconds between two redraws on a terminal


class ProgressBar:
    """Counts finished items and shows the count, the rate and the elapsed time.

    Args:
        total: Items expected (``None`` when unknown: no bar and no percentage).
        desc: A label in front of the bar.
        unit: What is counted, shown in the rate (``"elements/s"``).
        stream: Where to write (default: ``sys.stderr``).
        enabled: ``False`` writes nothing (the counts are still kept).
        tty: Force terminal (``True``) or line (``False``) mode; default: ask ``stream``.
        clock: Seconds as a float (default: ``time.perf_counter``).

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with ProgressBar(4, desc="demo", stream=out, tty=False) as bar:
        ...     for _ in range(4):
        ...         bar.update(1)
        >>> bar.count, len(out.getvalue().splitlines())
        (4, 4)
    """

    def __init__(
        self,
        total: int | None,
        *,
        desc: str = "",
        unit: str = "elements",
        stream: TextIO | None = None,
        enabled: bool = True,
        tty: bool | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if total is not None and total < 0:
            raise ConfigError(
                "invalid total", where="ProgressBar", expected="an int >= 0 or None", found=total
            )
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = _isatty(self.stream) if tty is None else tty
        self.count = 0
        self._clock = clock
        self._start = clock()
        self._last_draw = -float("inf")
        self._next_tenth = 1
        self._printed_count: int | None = None
        self._drawn_width = 0
        self._closed = False

    # -- counts --------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Seconds since the bar was created."""
        return self._clock() - self._start

    @property
    def rate(self) -> float:
        """Items per second so far (0 before any time has passed)."""
        elapsed = self.elapsed
        return self.count / elapsed if elapsed > 0 else 0.0

    def update(self, n: int = 1) -> None:
        """Add ``n`` finished items and refresh the display when due."""
        self.count += n
        if not self.enabled or self._closed:
            return
        if self.tty:
            now = self._clock()
            if now - self._last_draw >= _REDRAW_EVERY or self._done():
                self._last_draw = now
                self._redraw()
        elif self.total:
            tenth = self.count * 10 // self.total
            if tenth >= self._next_tenth:
                self._next_tenth = tenth + 1
                self._print_line()

    def close(self) -> None:
        """Draw the final state and end the line (called on leaving a ``with`` block)."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self.tty:
            self._redraw()
            self._write("\n")
        elif self._printed_count != self.count:
            self._print_line()

    # -- display -------------------------------------------------------------------
    def render(self) -> str:
        """The current progress as one line (without line ends)."""
        parts = [self.desc] if self.desc else []
        if self.total:
            done = min(self.count / self.total, 1.0)
            filled = int(done * _WIDTH)
            parts.append("[" + "#" * filled + "." * (_WIDTH - filled) + "]")
            parts.append(f"{self.count}/{self.total} {done:4.0%}")
        else:
            parts.append(f"{self.count}" + (f"/{self.total}" if self.total is not None else ""))
        parts.append(f"| {self.rate:,.0f} {self.unit}/s | {self.elapsed:.1f}s elapsed")
        return " ".join(parts)

    def _done(self) -> bool:
        return self.total is not None and self.count >= self.total

    def _redraw(self) -> None:
        line = self.render()
        self._write("\r" + line.ljust(self._drawn_width))  # blank out a longer old line
        self._drawn_width = len(line)

    def _print_line(self) -> None:
        self._printed_count = self.count
        self._write(self.render() + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    # -- context manager -----------------------------------------------------------
    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
