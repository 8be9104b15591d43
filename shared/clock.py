"""Injectable clocks: the system clock in production, a settable one in tests, and
a clock shared by several processes through a file (`CMCOORD_CLOCK_FILE`), which a
simulation or a training session moves forward for every service at once."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = _as_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = _as_utc(instant)

    def advance(self, delta: timedelta) -> None:
        self._now += delta


class SharedClock:
    """The system clock plus an offset kept in a file: every process reading the same file
    sees the same time, and time goes on between changes. The file is read again only when
    it changed (a stat per reading); `shift_shared_clock` changes it atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            info = None
        stamp = None if info is None else (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            text = self.path.read_text().strip() if info is not None else ""
            self._offset = timedelta(seconds=float(text or 0))
        return datetime.now(UTC) + self._offset


def shift_shared_clock(path: Path, offset: timedelta) -> None:
    """Set the shared clock `offset` ahead of the system clock, for every process at once."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{offset.total_seconds():.6f}\n")
    os.replace(tmp, path)


def clock_for(clock_file: Path | None) -> Clock:
    """The system clock, or the shared one when a clock file is configured."""
    return SharedClock(clock_file) if clock_file else SystemClock()


def today(clock: Clock) -> date:
    return clock.now().date()


def _as_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("a clock needs a timezone-aware datetime")
    return instant.astimezone(UTC)
