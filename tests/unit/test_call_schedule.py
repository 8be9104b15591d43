"""Regional call schedules: recurrence in the region's own time across DST, cancelled and moved
occurrences, and an iCalendar feed that calendar software expands to the same calls."""

from datetime import UTC, date, datetime, time, timedelta

import icalendar
import pytest
import recurring_ical_events

from services.notify.schedule import (
    Change,
    Feed,
    Schedule,
    ScheduleError,
    default_schedules,
    last_held,
    last_told,
    next_occurrence,
    occurrences,
)
from shared.regions import REGIONS

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


def every_second_tuesday(zone: str, at: time = time(13, 0)) -> Schedule:
    return Schedule(region="ROAP", rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", first_day=date(2026, 1, 6), local_time=at,
                    timezone=zone, link="https://meet.example/roap")


@pytest.mark.parametrize(("zone", "before_dst", "after_dst"), [
    ("Europe/Paris", 12, 11),  # CET (UTC+1) until 29 March 2026, then CEST (UTC+2)
    ("America/New_York", 18, 17),  # EST (UTC-5) until 8 March 2026, then EDT (UTC-4)
    ("Asia/Bangkok", 6, 6),  # no daylight saving
])
def test_the_call_keeps_its_local_hour_across_daylight_saving(zone: str, before_dst: int, after_dst: int) -> None:
    calls = occurrences(every_second_tuesday(zone), [], after=datetime(2026, 2, 1, tzinfo=UTC),
                        before=datetime(2026, 5, 1, tzinfo=UTC))
    assert [c.start.date() for c in calls] == [date(2026, 2, 3) + timedelta(weeks=2 * i) for i in range(7)]
    assert {c.start.astimezone(every_second_tuesday(zone).zone).time() for c in calls} == {time(13, 0)}
    assert calls[0].start.hour == before_dst and calls[-1].start.hour == after_dst


def test_autumn_change_in_new_york() -> None:
    calls = occurrences(every_second_tuesday("America/New_York"), [], after=datetime(2026, 10, 1, tzinfo=UTC),
                        before=datetime(2026, 12, 1, tzinfo=UTC))
    assert [(c.start.day, c.start.hour) for c in calls] == [(13, 17), (27, 17), (10, 18), (24, 18)]


def test_a_cancelled_occurrence_is_left_out_and_a_moved_one_keeps_its_identity() -> None:
    schedule = every_second_tuesday("Asia/Bangkok")
    first, second, third = occurrences(schedule, [], after=NOW, before=NOW + timedelta(days=42))
    moved_to = second.start + timedelta(days=1, hours=2)
    calls = occurrences(schedule, [Change(first.original), Change(second.original, moved_to=moved_to)],
                        after=NOW, before=NOW + timedelta(days=42))
    assert [(c.original, c.start, c.moved) for c in calls] == [(second.original, moved_to, True),
                                                               (third.original, third.start, False)]
    assert calls[0].key == second.key and calls[0].end == moved_to + timedelta(hours=1)
    assert next_occurrence(schedule, [Change(first.original)], now=NOW) == second


def test_a_call_moved_into_or_out_of_a_window_follows_its_new_time() -> None:
    schedule = every_second_tuesday("Asia/Bangkok")
    window = (datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC))  # no call of its own
    (outside,) = occurrences(schedule, [], after=datetime(2026, 3, 16, tzinfo=UTC), before=datetime(2026, 3, 23, tzinfo=UTC))
    moved = Change(outside.original, moved_to=datetime(2026, 3, 12, 6, 0, tzinfo=UTC))
    assert [c.start for c in occurrences(schedule, [moved], after=window[0], before=window[1])] == [moved.moved_to]
    assert occurrences(schedule, [moved], after=window[1], before=datetime(2026, 3, 23, tzinfo=UTC)) == []


def test_a_schedule_that_cannot_be_is_refused() -> None:
    with pytest.raises(ScheduleError, match="time zone"):
        every_second_tuesday("Mars/Olympus_Mons")
    with pytest.raises(ScheduleError, match="RRULE"):
        Schedule(region="ROAP", rrule="FREQ=SOMETIMES", first_day=date(2026, 1, 6), local_time=time(13, 0),
                 timezone="Asia/Bangkok")
    with pytest.raises(ScheduleError, match="no call"):
        Schedule(region="ROAP", rrule="FREQ=WEEKLY;UNTIL=20250101T000000", first_day=date(2026, 1, 6),
                 local_time=time(13, 0), timezone="Asia/Bangkok")


def test_every_region_has_a_call_by_default_on_its_own_office_time() -> None:
    schedules = {s.region: s for s in default_schedules()}
    assert set(schedules) == set(REGIONS)
    for code, schedule in schedules.items():
        assert schedule.timezone == REGIONS[code].timezone
        calls = occurrences(schedule, [], after=NOW, before=NOW + timedelta(days=28))
        assert len(calls) == 2 and calls[1].start - calls[0].start == timedelta(days=14)
        assert calls[0].start.astimezone(schedule.zone).time() == time(13, 0)


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Asia/Bangkok"])
def test_the_feed_expands_to_the_same_calls_for_twelve_months(zone: str) -> None:
    schedule = every_second_tuesday(zone)
    upcoming = occurrences(schedule, [], after=NOW, before=NOW + YEAR)
    changes = [Change(upcoming[2].original),  # cancelled
               Change(upcoming[5].original, moved_to=upcoming[5].start + timedelta(days=2, hours=-3)),
               Change(upcoming[-1].original, moved_to=NOW + YEAR + timedelta(days=3))]  # moved out of the year
    ours = [(c.start, c.end) for c in occurrences(schedule, changes, after=NOW, before=NOW + YEAR)]

    calendar = icalendar.Calendar.from_ical(Feed(schedule, changes).to_ical(stamp=NOW))
    assert {tz["TZID"] for tz in calendar.walk("VTIMEZONE")} == {zone}
    master = next(e for e in calendar.walk("VEVENT") if "RRULE" in e)
    assert master["DTSTART"].dt == datetime(2026, 1, 6, 13, 0, tzinfo=schedule.zone)  # the first call itself
    expanded = recurring_ical_events.of(calendar).between(NOW, NOW + YEAR)
    theirs = sorted((e["DTSTART"].dt.astimezone(UTC), e["DTEND"].dt.astimezone(UTC)) for e in expanded)
    assert theirs == ours
    assert len(ours) == len(upcoming) - 2


def test_the_call_a_summary_is_about_is_the_last_one_started_within_two_weeks() -> None:
    roap = every_second_tuesday("Asia/Bangkok")  # 13:00 Bangkok: 06:00 UTC, every second Tuesday from 6 January
    call = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    assert last_held(roap, [], now=call - timedelta(minutes=1)).start == call - timedelta(weeks=2)
    assert last_held(roap, [], now=call + timedelta(minutes=1)).start == call  # started: it has taken place
    assert last_held(roap, [Change(call)], now=call + timedelta(hours=2)) is None  # cancelled; the one before: too old
    moved = Change(call, moved_to=call + timedelta(days=1))
    assert last_held(roap, [moved], now=call + timedelta(hours=2)) is None  # not yet, at its new time
    assert last_held(roap, [moved], now=call + timedelta(days=1, hours=2)).start == call + timedelta(days=1)
    first = Schedule(region="ROAP", rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", first_day=date(2026, 3, 3),
                     local_time=time(13, 0), timezone="Asia/Bangkok")
    assert last_held(first, [], now=call - timedelta(hours=1)) is None  # no call has taken place yet
    assert last_held(roap, [Change(call - timedelta(weeks=2))], now=call - timedelta(minutes=1)) is None


def test_a_change_is_told_from_the_time_people_last_heard() -> None:
    original = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    a, b = original + timedelta(days=1), original + timedelta(days=2)
    t = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert last_told(original, []) == original  # nobody heard anything: the call's own time
    reminded = (t, "", original)
    assert last_told(original, [reminded]) == original
    first_move = (t + timedelta(hours=1), "20260301T100000000000", a)
    assert last_told(original, [reminded, first_move]) == a
    reminded_again = (t + timedelta(hours=3), "", a)
    second_move = (t + timedelta(hours=5), "20260301T140000000000", b)
    assert last_told(original, [second_move, reminded_again, first_move, reminded]) == b
    # told in the same pass as a reminder of the old time: the change came after it
    assert last_told(original, [(t, "", original), (t, "20260301T090000000000", a)]) == a
    # two changes told at the same moment (a clock that stood still): the later change wins
    assert last_told(original, [(t, "20260301T090000000002", b), (t, "20260301T090000000001", a)]) == b
