"""Regional call schedules as notify keeps them: each region's own settings over the
defaults, and the occurrences cancelled or moved one at a time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

import structlog
from nats.micro.service import Service
from nats.errors import Error as NatsError
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify.models import CallAgendaItem, CallChange, CallSchedule, CallSubscriber, Notification
from services.notify.policy import OPEN_STATES
from services.notify.recipients import Roster
from services.notify.schedule import (
    ANCHOR,
    Change,
    Feed,
    Occurrence,
    Schedule,
    default_schedules,
    is_occurrence,
    last_held,
    occurrences,
    stamp,
)
from shared.bus import QueryError
from shared.clock import Clock
from shared.contracts.notify import CALL_SUMMARY, CallSummaryAudience, CallSummaryRequest
from shared.contracts.query import answer
from shared.regions import REGIONS, resolve_region
from shared.store import Database

log = structlog.get_logger("notify")
REMINDED = ("call.reminder", "call.link")  # the kinds that tell who was invited to a call
AGENDA_PER_PERSON = 3  # items one officer adds to one call
AGENDA_PER_CALL = 25  # items on one call's agenda (the reminder lists what fits and counts the rest)
AUTHOR_NAMES_SECONDS = 1.0  # the roster's time to name an agenda's authors before the names notify had are shown


class CallsError(ValueError):
    """What a chair or the desk asked cannot be done (said in words they can act on)."""


def _schedule(row: CallSchedule) -> Schedule:
    return Schedule(region=row.region, rrule=row.rrule, first_day=row.first_day,
                    local_time=time.fromisoformat(row.local_time), timezone=row.timezone,
                    duration=timedelta(minutes=row.duration_minutes), link=row.link, chair_email=row.chair_email)


async def schedules(session: AsyncSession) -> dict[str, Schedule]:
    """Every region's schedule: its own where set, else the default."""
    found = {s.region: s for s in default_schedules()}
    for row in (await session.exec(select(CallSchedule))).all():
        found[row.region] = _schedule(row)
    return dict(sorted(found.items()))


async def schedule_of(session: AsyncSession, region: str) -> Schedule:
    if region not in REGIONS:
        raise CallsError(f"unknown region {region!r}")
    return (await schedules(session))[region]


async def changes_of(session: AsyncSession, region: str) -> list[Change]:
    rows = (await session.exec(select(CallChange).where(CallChange.region == region)
                               .order_by(col(CallChange.original)))).all()
    return [Change(original=r.original, moved_to=r.moved_to) for r in rows]


async def save_schedule(session: AsyncSession, schedule: Schedule, *, now: datetime) -> None:
    row = await session.get(CallSchedule, schedule.region) or CallSchedule(region=schedule.region)
    row.rrule, row.first_day, row.local_time = schedule.rrule, schedule.first_day, schedule.local_time.isoformat("minutes")
    row.timezone, row.duration_minutes = schedule.timezone, int(schedule.duration.total_seconds() // 60)
    row.link, row.chair_email, row.updated_at = schedule.link, schedule.chair_email, now
    session.add(row)


def updated(schedule: Schedule, **fields: object) -> Schedule:
    """The schedule with these fields changed (None: unchanged), checked."""
    return replace(schedule, **{k: v for k, v in fields.items() if v is not None})  # type: ignore[arg-type]


def occurrence_on(schedule: Schedule, changes: list[Change], day: date) -> Occurrence:
    """The series' call on this local day (by its own date, moved or not)."""
    zone = schedule.zone
    start = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    originals = schedule.starts(start, start + timedelta(days=1))
    if not originals:
        raise CallsError(f"no {schedule.region} call on {day}")
    original = originals[0]
    change = next((c for c in changes if c.original == original), None)
    if change is not None and change.moved_to is None:
        raise CallsError(f"the {schedule.region} call of {day} is already cancelled")
    moved_to = change.moved_to if change is not None else None
    start_at = moved_to or original
    return Occurrence(region=schedule.region, original=original, start=start_at, end=start_at + schedule.duration,
                      moved=moved_to is not None)


async def change(session: AsyncSession, schedule: Schedule, occurrence: Occurrence, *, moved_to: datetime | None,
                 now: datetime) -> None:
    """Cancel (moved_to None) or move one occurrence; a later change of it replaces this one, and is
    told in its turn to those already reminded."""
    assert is_occurrence(schedule, occurrence.original)
    row = await session.get(CallChange, (schedule.region, occurrence.original)) or CallChange(
        region=schedule.region, original=occurrence.original)
    row.moved_to, row.changed_at = moved_to, now
    row.told_at = None  # a second change (a move after a move, a cancel after a move) is told too
    session.add(row)


def upcoming(schedule: Schedule, changes: list[Change], *, now: datetime, days: int = 365) -> list[Occurrence]:
    return occurrences(schedule, changes, after=now, before=now + timedelta(days=days))


def feed(schedule: Schedule, changes: list[Change]) -> Feed:
    return Feed(schedule, changes)


async def revised_at(session: AsyncSession, region: str) -> datetime:
    """When the region's call was last changed (its schedule set, an occurrence cancelled or moved):
    the feed's DTSTAMP, as RFC 5545 has it for a published calendar. The defaults date from ANCHOR."""
    found = [(await session.exec(select(CallSchedule.updated_at).where(CallSchedule.region == region))).first(),
             (await session.exec(select(func.max(CallChange.changed_at)).where(CallChange.region == region))).first()]
    times = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in found if t is not None]  # SQLite: naive UTC
    return max(times, default=datetime.combine(ANCHOR, time.min, tzinfo=UTC))


# --- what officers send from the bot ----------------------------------------------------------------


@dataclass(frozen=True)
class AgendaEntry:
    """One item of a call's agenda: an officer's (with who added it) or notify's own (person_id None)."""

    text: str
    person_id: uuid.UUID | None = None


async def agenda_items(session: AsyncSession, occurrence: Occurrence) -> list[AgendaEntry]:
    """The officers' items, in the order they were added, each with its author's person id."""
    rows = (await session.exec(select(CallAgendaItem).where(
        CallAgendaItem.region == occurrence.region, CallAgendaItem.occurrence == occurrence.key)
        .order_by(col(CallAgendaItem.added_at), col(CallAgendaItem.id)))).all()
    return [AgendaEntry(text=r.text, person_id=r.person_id) for r in rows]


async def known_names(session: AsyncSession, person_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names notify last had from the roster for these people (on the notifications it made them):
    what an agenda shows where the roster is not asked."""
    if not person_ids:
        return {}
    rows = (await session.exec(select(Notification.person_id, Notification.person_name).where(
        col(Notification.person_id).in_(person_ids), Notification.person_name != "")
        .order_by(col(Notification.created_at)))).all()
    return {person: name for person, name in rows}  # the latest wins


def authors(entries: list[AgendaEntry]) -> set[uuid.UUID]:
    return {e.person_id for e in entries if e.person_id is not None}


async def author_names(roster: Roster, entries: list[AgendaEntry], known: Mapping[uuid.UUID, str], *,
                       timeout: float = AUTHOR_NAMES_SECONDS) -> dict[uuid.UUID, str]:
    """The names of the agenda's authors as the roster gives them now; a roster that does not answer in
    `timeout` leaves `known` (the names notify had: `known_names`), and the agenda is shown all the same.
    A network question: asked with no transaction open."""
    wanted = authors(entries)
    if not wanted:
        return dict(known)
    try:
        found = await asyncio.wait_for(roster.people(sorted(wanted)), timeout)
    except (QueryError, NatsError, TimeoutError) as err:
        log.warning("agenda_authors_not_resolved", error=str(err)[:200] or type(err).__name__)
        return dict(known)
    return {**known, **{p.person_id: p.name for p in found if p.name}}


def shown(entry: AgendaEntry, names: Mapping[uuid.UUID, str]) -> str:
    """An agenda line: who added the item, then the item (notify's own items and unknown authors: the item)."""
    name = names.get(entry.person_id) if entry.person_id is not None else None
    return f"{name}: {entry.text}" if name else entry.text


async def agenda_full(session: AsyncSession, o: Occurrence, person_id: uuid.UUID) -> str | None:
    """Why no more items fit on this call's agenda ("person" or "call"), or None when one does."""
    counts = dict((await session.exec(
        select(CallAgendaItem.person_id == person_id, func.count()).where(
            CallAgendaItem.region == o.region, CallAgendaItem.occurrence == o.key)
        .group_by(CallAgendaItem.person_id == person_id))).all())
    if counts.get(True, 0) >= AGENDA_PER_PERSON:
        return "person"
    if sum(counts.values()) >= AGENDA_PER_CALL:
        return "call"
    return None


async def subscribers(session: AsyncSession, region: str) -> list[uuid.UUID]:
    return list((await session.exec(select(CallSubscriber.person_id).where(CallSubscriber.region == region))).all())


def call_about(o: Occurrence) -> str:
    """The subject of a call's notifications: the call and the occurrence's identity."""
    return f"call:{o.region}:{o.key}"


def when(o: Occurrence) -> str:
    """A reminder's occurrence: the call's start (a moved call is reminded again)."""
    return stamp(o.start)


async def agenda_entries(session: AsyncSession, o: Occurrence) -> list[AgendaEntry]:
    """The officers' items, then what the region's state says needs talking about now (from notify's
    own notifications: gapped posts, handover notes not written, escalations of messages still
    unanswered, AARs overdue that the region's adviser was told of). The automatic items follow the
    state: an escalation whose message was acknowledged is no longer one."""
    region = o.region
    added = await agenda_items(session, o)
    rows = (await session.exec(select(Notification).where(
        Notification.region == region, col(Notification.state).in_(OPEN_STATES),
        col(Notification.kind).in_(["post.gapped", "handover.prompt", "handover.reminder", "escalation",
                                    "aar.overdue"]),
    ))).all()
    gapped = sorted({n.text.split(" has had nobody")[0].removeprefix("Post gapped: ") for n in rows
                     if n.kind == "post.gapped"})
    handovers = {n.subject for n in rows if n.kind.startswith("handover.")}
    escalated = await _unanswered(session, {n.subject for n in rows if n.kind == "escalation"})
    items = [*added, *(AgendaEntry(f"Gapped post: {g}") for g in gapped)]
    if handovers:
        items.append(AgendaEntry(f"Handover notes not yet written: {len(handovers)}"))
    if escalated:
        items.append(AgendaEntry(f"Messages escalated and still unanswered: {len(escalated)}"))
    overdue = {n.subject for n in rows if n.kind == "aar.overdue"}
    if overdue:
        items.append(AgendaEntry(f"After action reviews overdue: {len(overdue)}"))
    return items


async def _unanswered(session: AsyncSession, subjects: set[str]) -> set[str]:
    """Of the messages these escalations are about (their subject: the message's notification id),
    those not acknowledged: once the person answers, the escalation is settled, whatever became of
    the adviser's or the desk's copy of it."""
    ids = set()
    for subject in subjects:
        try:
            ids.add(uuid.UUID(subject))
        except ValueError:
            continue
    if not ids:
        return subjects
    answered = {str(i) for i in (await session.exec(select(Notification.id).where(
        col(Notification.id).in_(ids), col(Notification.acknowledged_at).is_not(None)))).all()}
    return subjects - answered


async def invited(session: AsyncSession, o: Occurrence) -> list[Notification]:
    """Those reminded of the call (its 24 h reminder or its link), a notification each."""
    return list((await session.exec(select(Notification).where(
        col(Notification.kind).in_(REMINDED), Notification.subject == call_about(o)))).all())


async def summary_audience(session: AsyncSession, region: str, *, person_id: uuid.UUID, now: datetime
                           ) -> dict[str, object]:
    """What a summary sent now would do: the call it is about (None: no call has taken place in the
    last two weeks) and how many people it would reach (those invited, the sender left out)."""
    schedule = await schedule_of(session, region)
    o = last_held(schedule, await changes_of(session, region), now=now)
    if o is None:
        return {"region": region, "call_start": None, "timezone": schedule.timezone, "audience": 0}
    people = {n.person_id for n in await invited(session, o)} - {person_id}
    return {"region": region, "call_start": o.start.isoformat(), "timezone": schedule.timezone,
            "audience": len(people)}


class CallQueries:
    """The `call_summary` query (shared/contracts/notify.py CALL_SUMMARY): what a chair's summary sent now
    would do (the call it is about, how many it would reach), asked by the bot before it says anything was sent."""

    def __init__(self, *, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def summary(self, q: CallSummaryRequest) -> CallSummaryAudience:
        region = resolve_region(q.region)
        if region is None:
            raise ValueError(f"unknown region {q.region!r}")
        async with self.db.read() as session:
            return CallSummaryAudience.model_validate(
                await summary_audience(session, region, person_id=q.person_id, now=self.clock.now()))

    async def serve_on(self, service: Service) -> None:
        await answer(service, CALL_SUMMARY, self.summary)

