"""Periods people name: 2026Q3, 2026, 2026-05, 2026-01-15..2026-03-31."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta


@dataclass(frozen=True)
class Period:
    start: date  # first day
    end: date  # last day
    label: str

    def previous(self) -> Period:
        length = relativedelta(self.end + timedelta(days=1), self.start)
        start = self.start - length
        return Period(start, self.start - timedelta(days=1), f"before {self.label}")


def quarter(year: int, q: int) -> Period:
    start = date(year, 3 * q - 2, 1)
    return Period(start, start + relativedelta(months=3) - timedelta(days=1), f"{year} Q{q}")


def parse_period(text: str) -> Period:
    """Raises ValueError with the forms understood."""
    t = text.strip().upper()
    if m := re.fullmatch(r"(\d{4})-?Q([1-4])", t):
        return quarter(int(m[1]), int(m[2]))
    if m := re.fullmatch(r"(\d{4})", t):
        return Period(date(int(m[1]), 1, 1), date(int(m[1]), 12, 31), m[1])
    if m := re.fullmatch(r"(\d{4})-(\d{2})", t):
        start = date(int(m[1]), int(m[2]), 1)
        return Period(start, start + relativedelta(months=1) - timedelta(days=1), t)
    if m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", t):
        start, end = date.fromisoformat(m[1]), date.fromisoformat(m[2])
        if end < start:
            raise ValueError(f"{text!r}: the period ends before it starts")
        return Period(start, end, t)
    raise ValueError(f"{text!r} is not a period: write 2026Q3, 2026, 2026-05 or 2026-01-15..2026-03-31")


def quarter_of(day: date) -> Period:
    return quarter(day.year, (day.month - 1) // 3 + 1)
