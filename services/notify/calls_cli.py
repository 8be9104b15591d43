"""`cmcoord calls ...`: the regional coordination calls' schedules, one-off changes and
calendar feeds (notify's store: CMCOORD_NOTIFY_DATABASE_URL or the SQLite file under CMCOORD_HOME;
the feeds' URLs are keyed by CMCOORD_NOTIFY_CALENDAR_SECRET or the key notify keeps there)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from shared.logging import configure_command_logging

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from services.notify.schedule import Schedule

app = typer.Typer(no_args_is_help=True, help="Regional coordination calls: schedules, changes, calendars.")
T = TypeVar("T")


@app.callback()
def _logging() -> None:
    configure_command_logging("calls-cli")


def _run(work: Callable[[AsyncSession], Awaitable[T]], *, write: bool = False) -> T:
    import asyncio

    from services.notify import calls
    from services.notify.config import Settings
    from services.notify.models import NOTIFY_TABLES
    from services.notify.schedule import ScheduleError
    from services.notify.store import open_store
    from shared.clock import SystemClock

    async def run() -> T:
        db = open_store(Settings().db_url, clock=SystemClock())
        await db.create_tables(NOTIFY_TABLES)
        try:
            async with db.write() if write else db.read() as session:
                return await work(session)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except (calls.CallsError, ScheduleError) as err:
        typer.echo(f"cannot: {err}", err=True)
        raise typer.Exit(1) from err


def _region(value: str) -> str:
    from shared.regions import resolve_region

    code = resolve_region(value)
    if code is None:
        raise typer.BadParameter(f"unknown region {value!r} (ROAP, ROMENA, ROWCA, ROSEA, ROLAC, ...)")
    return code


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=name) from None


def _describe(s: Schedule, now: datetime) -> str:
    from services.notify import calls

    upcoming = calls.upcoming(s, [], now=now, days=60)
    nxt = f"next {upcoming[0].start.astimezone(s.zone):%a %d %b %Y %H:%M} local" if upcoming else "no call ahead"
    return (f"{s.region:<7} {s.rrule}  {s.local_time:%H:%M} {s.timezone}  {int(s.duration.total_seconds() // 60)} min  "
            f"chair {s.chair_email or '-'}  link {s.link or '-'}  ({nxt})")


@app.command("list")
def list_() -> None:
    """Every region's call: recurrence, local time, chair, link, next occurrence."""
    from services.notify import calls
    from shared.clock import SystemClock

    now = SystemClock().now()
    for schedule in _run(calls.schedules).values():
        typer.echo(_describe(schedule, now))


@app.command("set")
def set_(
    region: str = typer.Argument(..., help="an OCHA region, e.g. ROAP"),
    rrule: str = typer.Option(None, help='iCalendar RRULE, e.g. "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU"'),
    at: str = typer.Option(None, "--time", help="start, HH:MM in the call's time zone"),
    tz: str = typer.Option(None, "--tz", help="IANA time zone, e.g. Asia/Bangkok"),
    link: str = typer.Option(None, help="the bridge link"),
    chair: str = typer.Option(None, help="the chair's email (as in the roster)"),
    duration: int = typer.Option(None, help="minutes"),
    first_day: str = typer.Option(None, help="the first call's date (where an INTERVAL counts from)"),
) -> None:
    """Change a region's call; what is not given stays as it was."""
    from services.notify import calls
    from shared.clock import SystemClock

    code = _region(region)
    local_time = None
    if at is not None:
        try:
            local_time = time.fromisoformat(at)
        except ValueError:
            raise typer.BadParameter(f"{at!r} is not a time (HH:MM)", param_hint="--time") from None
    if duration is not None and not 5 <= duration <= 480:
        raise typer.BadParameter("between 5 and 480 minutes", param_hint="--duration")

    async def work(session: AsyncSession) -> Schedule:
        now = SystemClock().now()
        schedule = calls.updated(await calls.schedule_of(session, code), rrule=rrule, local_time=local_time,
                                 timezone=tz, link=link, chair_email=chair and chair.strip().lower(),
                                 duration=duration and timedelta(minutes=duration),
                                 first_day=first_day and _day(first_day, "--first-day"))
        await calls.save_schedule(session, schedule, now=now)
        return schedule

    typer.echo(_describe(_run(work, write=True), SystemClock().now()))


@app.command()
def cancel(region: str = typer.Argument(...), day: str = typer.Argument(..., help="the call's date, YYYY-MM-DD")) -> None:
    """Cancel one call (by its date in the region's time zone)."""
    from services.notify import calls
    from shared.clock import SystemClock

    code, on = _region(region), _day(day, "DAY")

    async def work(session: AsyncSession) -> str:
        schedule = await calls.schedule_of(session, code)
        occurrence = calls.occurrence_on(schedule, await calls.changes_of(session, code), on)
        await calls.change(session, schedule, occurrence, moved_to=None, now=SystemClock().now())
        return f"cancelled: {code} call of {occurrence.start.astimezone(schedule.zone):%a %d %b %Y %H:%M} local"

    typer.echo(_run(work, write=True))


@app.command()
def move(
    region: str = typer.Argument(...),
    day: str = typer.Argument(..., help="the call's date, YYYY-MM-DD"),
    new: str = typer.Argument(..., help="new start, YYYY-MM-DDTHH:MM (the region's time unless an offset is given)"),
) -> None:
    """Move one call to another time."""
    from services.notify import calls
    from shared.clock import SystemClock

    code, on = _region(region), _day(day, "DAY")
    try:
        to = datetime.fromisoformat(new)
    except ValueError:
        raise typer.BadParameter(f"{new!r} is not a date and time (YYYY-MM-DDTHH:MM)", param_hint="NEW") from None

    async def work(session: AsyncSession) -> str:
        schedule = await calls.schedule_of(session, code)
        start = (to if to.tzinfo else to.replace(tzinfo=schedule.zone)).astimezone(UTC)
        now = SystemClock().now()
        if start <= now:
            raise calls.CallsError(f"{new} has passed")
        occurrence = calls.occurrence_on(schedule, await calls.changes_of(session, code), on)
        await calls.change(session, schedule, occurrence, moved_to=start, now=now)
        return (f"moved: {code} call of {occurrence.original.astimezone(schedule.zone):%a %d %b %Y %H:%M} to "
                f"{start.astimezone(schedule.zone):%a %d %b %Y %H:%M} local")

    typer.echo(_run(work, write=True))


@app.command()
def ics(region: str = typer.Argument(...),
        out: Path = typer.Option(None, help="write to this file instead of the screen")) -> None:
    """The region's calendar feed (iCalendar): the series, cancellations and moves."""
    from services.notify import calls
    from shared.clock import SystemClock

    code = _region(region)

    async def work(session: AsyncSession) -> bytes:
        schedule = await calls.schedule_of(session, code)
        feed = calls.feed(schedule, await calls.changes_of(session, code))  # the bytes notify serves today
        return feed.to_ical(stamp=await calls.revised_at(session, code), today=SystemClock().now().date())

    data = _run(work)
    if out is not None:
        out.write_bytes(data)
        typer.echo(f"written: {out}")
    else:
        typer.echo(data.decode())


@app.command("feed-url")
def feed_url_(
    region: str = typer.Argument(..., help="an OCHA region, e.g. ROWCA, or all"),
    base_url: str = typer.Option(None, help="the feed's public address, e.g. https://calls.cmcoord.example "
                                 "(default: CMCOORD_NOTIFY_CALENDAR_BASE_URL, else the calendar host and port)"),
) -> None:
    """The URL of a region's calendar feed, to give its officers (anyone with it reads the calls' times and
    links). Run it with notify's CMCOORD_HOME or its CMCOORD_NOTIFY_CALENDAR_SECRET: the URLs hang on that key."""
    from services.notify.calendar_feed import feed_secret, feed_url
    from services.notify.config import Settings
    from shared.regions import REGIONS

    codes = sorted(REGIONS) if region.strip().lower() == "all" else [_region(region)]
    settings = Settings()
    base = base_url or settings.calendar_base_url
    if not base:
        if not settings.calendar_port:
            typer.echo("cannot: the calendar feed is off (CMCOORD_NOTIFY_CALENDAR_PORT); give --base-url for the "
                       "address it will have", err=True)
            raise typer.Exit(1)
        base = f"http://{settings.calendar_host}:{settings.calendar_port}"
    secret = feed_secret(settings)
    for code in codes:
        url = feed_url(base, secret, code)
        typer.echo(f"{code:<7} {url}" if len(codes) > 1 else url)
