"""An AAR's reminders and escalations, free of I/O.

Due-7 d and due: the officer is reminded. Due+7 d: the region's adviser is told;
due+14 d: the CMCS desk. Each step happens at `hour` UTC on its day (notify holds
messages in the recipient's quiet hours). A submitted AAR has no further steps.
When the service was away and several reminders are past, only the latest goes
(one "your AAR is due" rather than two); escalations all go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

Audience = Literal["officer", "regional_adviser", "cmcs_desk"]


@dataclass(frozen=True)
class Step:
    name: str  # the notification's occurrence
    offset_days: int  # from the due date
    audience: Audience


@dataclass(frozen=True)
class DutyPolicy:
    reminder_days_before: int = 7
    adviser_after_days: int = 7
    desk_after_days: int = 14
    hour: int = 8

    def steps(self) -> list[Step]:
        return [Step(f"due-{self.reminder_days_before}d", -self.reminder_days_before, "officer"),
                Step("due", 0, "officer"),
                Step(f"due+{self.adviser_after_days}d", self.adviser_after_days, "regional_adviser"),
                Step(f"due+{self.desk_after_days}d", self.desk_after_days, "cmcs_desk")]

    def at(self, due_on: date, index: int) -> datetime | None:
        steps = self.steps()
        if index >= len(steps):
            return None
        day = due_on + timedelta(days=steps[index].offset_days)
        return datetime.combine(day, time(self.hour), tzinfo=UTC)

    def due_now(self, due_on: date, next_step: int, now: datetime) -> tuple[list[Step], int]:
        """The steps to take now, from `next_step` on, and the index of the next one after them."""
        steps = self.steps()
        index = next_step
        past: list[Step] = []
        while index < len(steps) and (when := self.at(due_on, index)) is not None and when <= now:
            past.append(steps[index])
            index += 1
        reminders = [s for s in past if s.audience == "officer"]
        take = [s for s in past if s.audience != "officer" or s is (reminders[-1] if reminders else None)]
        return take, index
