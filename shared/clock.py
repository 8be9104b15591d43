"""Injectable clocks: the system clock in production, a settable one in tests, and
a clock shared by several processes through a file (`CMCOORD_CLOCK_FILE`), which a
simulation or a training session moves forward for every service at once."""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ClockSetting:
    """What a clock file holds: simulated time = real time + `offset`, plus `(speed - 1)` times
    the real time elapsed since `since` (a POSIX time). Speed 1 is the system clock's pace."""

    offset: timedelta = timedelta(0)
    speed: float = 1.0
    since: float = 0.0

    def at(self, real: datetime) -> datetime:
        return real + self.offset + timedelta(seconds=(self.speed - 1) * (real.timestamp() - self.since))

    def text(self) -> str:
        if self.speed == 1:
            return f"{self.offset.total_seconds():.6f}\n"  # the format every reader has always known
        return f"{self.offset.total_seconds():.6f} speed={self.speed:g} since={self.since:.6f}\n"

    @classmethod
    def parse(cls, text: str) -> ClockSetting:
        """`<offset seconds> [speed=<x> since=<POSIX time>]`; an empty file is the system clock."""
        words = text.split()
        if not words:
            return cls()
        fields = dict(word.split("=", 1) for word in words[1:] if "=" in word)
        speed = float(fields.get("speed", 1))
        if not 0 < speed <= MAX_SPEED:
            raise ValueError(f"clock speed {speed} is outside (0, {MAX_SPEED}]")
        return cls(offset=timedelta(seconds=float(words[0])), speed=speed, since=float(fields.get("since", 0)))


MAX_SPEED = 10_000.0


class SharedClock:
    """The system clock moved by the setting kept in a file: every process reading the same file
    sees the same time, and time goes on between changes (faster than real time when the file
    sets a speed, for training). The file is read again only when it changed (a stat per
    reading); `shift_shared_clock` and `set_shared_clock` change it atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._setting = ClockSetting()

    def now(self) -> datetime:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            info = None
        stamp = None if info is None else (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            self._setting = ClockSetting.parse(self.path.read_text()) if info is not None else ClockSetting()
        return self._setting.at(datetime.now(UTC))


def read_shared_clock(path: Path) -> ClockSetting:
    return ClockSetting.parse(path.read_text()) if path.exists() else ClockSetting()


def _write(path: Path, setting: ClockSetting) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(setting.text())
    os.replace(tmp, path)


def shift_shared_clock(path: Path, offset: timedelta) -> None:
    """Set the shared clock `offset` ahead of the system clock, at its pace, for every process at once."""
    _write(path, ClockSetting(offset=offset))


def set_shared_clock(path: Path, *, advance: timedelta = timedelta(0), speed: float | None = None,
                     real: datetime | None = None) -> datetime:
    """Move the shared clock `advance` forward from where it is now and/or change its speed from
    now on (training: `speed` 60 makes a real minute a simulated hour). Returns the new time."""
    real = real or datetime.now(UTC)
    current = read_shared_clock(path)
    speed = current.speed if speed is None else speed
    if not 0 < speed <= MAX_SPEED:
        raise ValueError(f"the speed must be above 0 and at most {MAX_SPEED:g}")
    simulated = current.at(real) + advance
    _write(path, ClockSetting(offset=simulated - real, speed=speed, since=real.timestamp()))
    return simulated


def clock_for(clock_file: Path | None) -> Clock:
    """The system clock, or the shared one when a clock file is configured."""
    return SharedClock(clock_file) if clock_file else SystemClock()


def today(clock: Clock) -> date:
    return clock.now().date()


def _as_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("a clock needs a timezone-aware datetime")
    return instant.astimezone(UTC)
