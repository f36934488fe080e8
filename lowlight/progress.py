"""A dependency-free progress bar for long jobs (training, many files, large images).

On a terminal it redraws one line: ``desc  42%|████▌     | 84/200 [1.3 it/s, ETA 1:28] info``.
Elsewhere (a log file, CI) it prints a plain line at most every ``interval`` seconds so
logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    """``1:02:03`` / ``2:03`` style duration."""
    if seconds != seconds or seconds == float("inf"):  # NaN or inf
        return "?"
    seconds = round(max(0.0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """Progress over ``total`` steps with rate and ETA.

    Args:
        total: number of steps (0 or less: unknown, no percentage).
        desc: short label in front of the bar.
        stream: where to draw; standard error by default.
        enabled: force on/off; by default on for terminals and throttled lines elsewhere.
        unit: name of a step (``it``, ``file``, ``tile``).
        interval: seconds between plain lines when the stream is not a terminal.
        initial: steps already done (a resumed run).
    """

    def __init__(
        self,
        total: int,
        desc: str = "",
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        unit: str = "it",
        interval: float = 30.0,
        initial: int = 0,
    ) -> None:
        self.total = total
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = True if enabled is None else enabled
        self.unit = unit
        self.interval = interval
        self.done = initial
        self._initial = initial
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._drawn: tuple[int, str] | None = None
        self.info = ""

    def update(self, n: int = 1, info: str | None = None) -> None:
        """Advance by ``n`` steps; ``info`` replaces the text shown after the bar."""
        self.done += n
        if info is not None:
            self.info = info
        now = time.monotonic()
        finished = self.total > 0 and self.done >= self.total
        if self.tty and (now - self._last_draw >= 0.1 or finished):
            self._draw(now)
        elif not self.tty and (now - self._last_draw >= self.interval or finished):
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The text of the bar as it would be drawn now."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = (self.done - self._initial) / elapsed
        parts = [self.desc] if self.desc else []
        if self.total > 0:
            frac = min(1.0, self.done / self.total)
            width = 20
            filled = frac * width
            full = int(filled)
            partial = " ▏▎▍▌▋▊▉"[int((filled - full) * 8)] if full < width else ""
            bar = ("█" * full + partial).ljust(width)
            remaining = (self.total - self.done) / rate if rate > 0 else float("inf")
            parts.append(f"{frac * 100:3.0f}%|{bar}| {self.done}/{self.total}")
            parts.append(f"[{rate:.3g} {self.unit}/s, ETA {format_duration(remaining)}]")
        else:
            parts.append(f"{self.done} {self.unit} [{rate:.3g} {self.unit}/s]")
        if self.info:
            parts.append(self.info)
        return " ".join(parts)

    def _draw(self, now: float) -> None:
        self._last_draw = now
        if not self.enabled:
            return
        self._drawn = (self.done, self.info)
        text = self.line(now)
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            if self._drawn != (self.done, self.info):
                self._draw(time.monotonic())
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
