"""Injectable clocks: the system clock in production, a settable one in tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
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


def today(clock: Clock) -> date:
    return clock.now().date()


def _as_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("a clock needs a timezone-aware datetime")
    return instant.astimezone(UTC)
