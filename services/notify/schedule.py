"""Regional coordination calls: when they happen, and their iCalendar feed.

A region's call recurs by an iCalendar RRULE (every second week by default) at a
wall-clock time in the region's own time zone: 13:00 in Bangkok stays 13:00 in
Bangkok, whatever daylight saving does elsewhere. An occurrence is known by its
original start (its RECURRENCE-ID); it can be cancelled, or moved to another
time, one at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
from dateutil.rrule import rrule, rrulestr

from shared.regions import REGIONS

DEFAULT_RRULE = "FREQ=WEEKLY;INTERVAL=2"
ANCHOR = date(2026, 1, 5)  # a Monday: the first week of every default schedule
PRODID = "-//CMCoord Hub//Regional calls//EN"
# a moved occurrence stays attached to its series within this far of its original date
MOVE_REACH = timedelta(days=60)


class ScheduleError(ValueError):
    """A schedule that cannot be: an unknown time zone, a bad RRULE."""


@dataclass(frozen=True)
class Schedule:
    region: str
    rrule: str
    first_day: date  # DTSTART's date: where INTERVAL counts from
    local_time: time
    timezone: str
    duration: timedelta = timedelta(hours=1)
    link: str = ""
    chair_email: str = ""

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ScheduleError(f"unknown time zone {self.timezone!r}") from err
        try:
            self.dtstart  # noqa: B018 - parses the rule and finds its first call
        except (ValueError, TypeError) as err:
            raise ScheduleError(f"not an RRULE: {self.rrule!r} ({err})") from err
        except IndexError as err:
            raise ScheduleError(f"the RRULE {self.rrule!r} has no call on or after {self.first_day}") from err

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def anchor(self) -> datetime:
        """Where the rule counts from (its INTERVAL), as naive wall-clock time in the region's zone."""
        return datetime.combine(self.first_day, self.local_time)

    @property
    def dtstart(self) -> datetime:
        """The first call, in the region's zone: a feed's DTSTART must be an occurrence itself."""
        first = self._rule()[0]
        return first.replace(tzinfo=self.zone)

    def _rule(self) -> rrule:
        # expanded in naive wall-clock time, then placed in the zone: DST never moves the hour
        rule = rrulestr(self.rrule.removeprefix("RRULE:"), dtstart=self.anchor)
        if not isinstance(rule, rrule):
            raise TypeError("one RRULE only")
        return rule

    def starts(self, after: datetime, before: datetime) -> list[datetime]:
        """The series' own starts (UTC) in [after, before), before any change."""
        zone = self.zone
        lo = after.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
        hi = before.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
        found = (s.replace(tzinfo=zone).astimezone(UTC) for s in self._rule().between(lo, hi, inc=True))
        return [s for s in found if after <= s < before]


@dataclass(frozen=True)
class Change:
    """One occurrence cancelled (`moved_to` None) or moved."""

    original: datetime  # the occurrence's own start, UTC
    moved_to: datetime | None = None


@dataclass(frozen=True)
class Occurrence:
    region: str
    original: datetime  # UTC: the occurrence's identity, whatever happens to it
    start: datetime  # UTC
    end: datetime
    moved: bool = False

    @property
    def key(self) -> str:
        """A stable name for the occurrence (notifications, RSVPs and agendas hang on it)."""
        return stamp(self.original)


def stamp(at: datetime) -> str:
    """A call's time as it names things (its key, a reminder's occurrence): UTC to the minute."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def title(region: str) -> str:
    return f"{REGIONS[region].name} regional CMCoord call"


def occurrences(schedule: Schedule, changes: Iterable[Change], *, after: datetime, before: datetime
                ) -> list[Occurrence]:
    """The calls starting in [after, before), cancellations left out and moves applied, by start."""
    by_original = {c.original: c for c in changes}
    found: list[Occurrence] = []
    for original in schedule.starts(after - MOVE_REACH, before + MOVE_REACH):
        change = by_original.get(original)
        if change is not None and change.moved_to is None:
            continue
        start = change.moved_to if change is not None and change.moved_to is not None else original
        if after <= start < before:
            found.append(Occurrence(region=schedule.region, original=original, start=start,
                                    end=start + schedule.duration, moved=start != original))
    return sorted(found, key=lambda o: o.start)


def next_occurrence(schedule: Schedule, changes: Iterable[Change], *, now: datetime) -> Occurrence | None:
    upcoming = occurrences(schedule, changes, after=now, before=now + timedelta(days=400))
    return upcoming[0] if upcoming else None


def last_held(schedule: Schedule, changes: Iterable[Change], *, now: datetime) -> Occurrence | None:
    """The call that last took place (started before `now`, within two weeks): the one a summary is about."""
    held = occurrences(schedule, changes, after=now - timedelta(days=14), before=now)
    return held[-1] if held else None


def last_told(original: datetime, heard: Iterable[tuple[datetime, str, datetime | None]]) -> datetime | None:
    """The time those reminded of an occurrence last heard it had, before the change being told now.

    `heard`: what they were sent about it, as (when it was sent, the change it told: "" for a reminder,
    else a key that sorts changes in the order they were made, the call's time it gave: a reminder's
    start, a change's new start, None for a cancellation). The latest wins; a change told at the same
    moment as a reminder came after it (a pass tells changes before it reminds anew). Nothing heard:
    the occurrence's own start."""
    latest = max(heard, key=lambda h: (h[0], h[1]), default=None)
    return original if latest is None else latest[2]


def is_occurrence(schedule: Schedule, original: datetime) -> bool:
    """Whether the series has a call starting at `original` (UTC)."""
    return original in schedule.starts(original - timedelta(minutes=1), original + timedelta(minutes=1))


def default_schedules() -> list[Schedule]:
    """Each OCHA region's call: every second week, 13:00 in the regional office's time zone,
    on a weekday of its own so that one chair can sit in two."""
    weekdays = ("TU", "WE", "TH", "TU", "WE", "TH")
    return [
        Schedule(region=code, rrule=f"{DEFAULT_RRULE};BYDAY={day}", first_day=ANCHOR, local_time=time(13, 0),
                 timezone=region.timezone)
        for (code, region), day in zip(sorted(REGIONS.items()), weekdays, strict=False)
    ]


@dataclass
class Feed:
    """The iCalendar feed of one region's call."""

    schedule: Schedule
    changes: Sequence[Change] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return f"{self.schedule.region.lower()}-regional-call@cmcoord-hub"

    def to_ical(self, *, stamp: datetime, today: date | None = None) -> bytes:
        """`stamp` is each event's DTSTAMP; the time zones cover three years from `today` (default:
        the stamp's day). A stamp that changes only with the schedule keeps the bytes, and the
        served feed's ETag, the same from one poll to the next."""
        s = self.schedule
        zone = s.zone
        cal = icalendar.Calendar()
        cal.add("prodid", PRODID)
        cal.add("version", "2.0")
        cal.add("x-wr-calname", title(s.region))
        master = self._event(stamp, s.dtstart, s.dtstart + s.duration)
        master.add("rrule", icalendar.vRecur.from_ical(s.rrule.removeprefix("RRULE:")))
        cancelled = [c.original.astimezone(zone) for c in self.changes if c.moved_to is None]
        if cancelled:
            master.add("exdate", cancelled)
        cal.add_component(master)
        for change in self.changes:
            if change.moved_to is not None:
                start = change.moved_to.astimezone(zone)
                moved = self._event(stamp, start, start + s.duration)
                moved.add("recurrence-id", change.original.astimezone(zone))
                cal.add_component(moved)
        cal.add_missing_timezones(first_date=s.first_day - timedelta(days=366),
                                  last_date=max(s.first_day, today or stamp.date()) + timedelta(days=3 * 366))
        return cal.to_ical()

    def _event(self, stamp: datetime, start: datetime, end: datetime) -> icalendar.Event:
        s = self.schedule
        event = icalendar.Event()
        event.add("uid", self.uid)
        event.add("dtstamp", stamp.astimezone(UTC))
        event.add("dtstart", start)
        event.add("dtend", end)
        event.add("summary", title(s.region))
        if s.link:
            event.add("location", s.link)
            event.add("url", s.link)
        return event
