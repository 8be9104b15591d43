"""Regional call reminders, as notifications.

- 24 h before: each participant (everyone deployed in the region on the call's day)
  gets the date and time in their own time zone, the agenda so far and "I'll join" /
  "Can't join"; the answer is the RSVP and the acknowledgement. The chair gets the
  agenda and the answers so far.
- 1 h before: the link.
- A call cancelled or moved: those already reminded (the chair too) are told,
  each change once (a move after a move, a cancellation after a move: told
  again, from the time they last heard); a moved call is reminded again at its
  new time.
- The agenda in the reminders names who added each item (the roster's name now).

Each reminder is a notification whose id derives from (kind, call, person, start):
planned again after a restart or by a second notify process, it changes nothing; a
marker row per (call, kind, start) spares the roster the question. A reminder missed
while notify was down goes out late only while still useful: the 24 h one until the
call starts (then open ones are closed), the 1 h one until it ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from services.notify import calls
from services.notify.handlers import notifications
from services.notify.calls import REMINDED, call_about, when
from services.notify.models import CallChange, CallPlanned, Notification
from services.notify.policy import OPEN_STATES, Rules, call_start, zone
from services.notify.recipients import Recipient, Roster
from services.notify.schedule import Change, Occurrence, Schedule, last_told, occurrences, stamp
from services.notify.texts import bullets
from services.notify.store import DEFAULT_RULES, Request
from shared import notices
from shared.clock import Clock
from shared.events import ReplyButton
from shared.periodic import Periodic
from shared.regions import REGIONS
from shared.store import Database

log = structlog.get_logger("notify")
DAY_BEFORE, HOUR_BEFORE = timedelta(hours=24), timedelta(hours=1)
JOIN, DECLINE = "join", "decline"
RSVP = (ReplyButton(label="I'll join", reply=JOIN), ReplyButton(label="Can't join", reply=DECLINE))
CLOSED_AT_START = ("call.reminder", "call.chair")
TOLD = (*REMINDED, "call.chair")  # those reminded of a call, the chair too, are told when it changes
CHANGED, CANCELLED = "call.changed", "cancelled"
AGENDA_BUDGET = 2500  # characters of agenda in a reminder: the rest of the text fits beside it
Ask = tuple[Request, list[Recipient]]


class CallPlanner(Periodic):
    name = "call_planning"

    def __init__(self, *, db: Database, clock: Clock, roster: Roster, due: Callable[[], None],
                 rules: Rules = DEFAULT_RULES, tick_seconds: float = 60.0) -> None:
        super().__init__(tick_seconds=tick_seconds)
        self.db, self.clock, self.roster, self.due = db, clock, roster, due  # due: wakes the sending of new ones
        self.rules = rules
        self.failures = 0

    async def run_pass(self) -> None:
        now = self.clock.now()
        async with self.db.read() as session:
            plans = [(s, await calls.changes_of(session, s.region)) for s in (await calls.schedules(session)).values()]
            untold = list((await session.exec(select(CallChange).where(col(CallChange.told_at).is_(None)))).all())
        for change in untold:
            async with self._alone(change.region, "tell"):
                await self._tell(change, next(s for s, _ in plans if s.region == change.region), now)
        for schedule, changes in plans:
            async with self._alone(schedule.region, "plan"):
                await self._plan_region(schedule, changes, now)

    async def _plan_region(self, schedule: Schedule, changes: list[Change], now: datetime) -> None:
        for o in occurrences(schedule, changes, after=now - DAY_BEFORE, before=now + DAY_BEFORE):
            if o.start - DAY_BEFORE <= now < o.start:
                await self._plan(o, "call.reminder", partial(self._day_before, schedule, o))
                if schedule.chair_email:
                    await self._plan(o, "call.chair", partial(self._chair, schedule, o))
            if o.start - HOUR_BEFORE <= now < o.end:
                await self._plan(o, "call.link", partial(self._hour_before, schedule, o))
            if now >= o.start:
                await self._close(o, now)

    @contextlib.asynccontextmanager
    async def _alone(self, region: str, what: str) -> AsyncIterator[None]:
        """One region's failure is logged and counted; the other regions are planned all the same."""
        try:
            yield
        except Exception:
            self.failures += 1
            log.exception("call_planning_failed", region=region, step=what)

    async def _planned(self, o: Occurrence, kind: str) -> bool:
        async with self.db.read() as session:
            return await session.get(CallPlanned, (call_about(o), kind, when(o))) is not None

    async def _plan(self, o: Occurrence, kind: str, make: Callable[[], Awaitable[list[Ask]]]) -> None:
        if await self._planned(o, kind):
            return
        asks = await make()
        try:
            async with self.db.unit_of_work(correlation_id=call_about(o)) as uow:
                uow.session.add(CallPlanned(about=call_about(o), kind=kind, occurrence=when(o), at=self.clock.now()))
                await notifications.create_all(uow, asks, now=self.clock.now(), rules=self.rules)
        except IntegrityError:  # another notify process planned it meanwhile
            return
        log.info("call_reminders_planned", call=call_about(o), kind=kind, people=sum(len(p) for _, p in asks))
        self.due()

    async def _participants(self, o: Occurrence) -> list[Recipient]:
        """Everyone deployed in the region on the call's day, and its subscribers who are still members
        of the community (one who left gets no more links and agendas; the chair counts them all)."""
        deployed = await self.roster.deployed_in(o.region, o.start.astimezone(zone(REGIONS[o.region].timezone)).date())
        async with self.db.read() as session:
            following = [p for p in await calls.subscribers(session, o.region) if p not in {d.person_id for d in deployed}]
        return deployed + [p for p in (await self.roster.people(following) if following else []) if p.member]

    async def _reachable(self, o: Occurrence) -> list[Recipient]:
        """Participants on Telegram: one not linked is not reported missing every two weeks."""
        return [p for p in await self._participants(o) if p.telegram_user_id is not None]

    async def _agenda(self, o: Occurrence) -> list[str]:
        """The agenda as it stands, each officer's item with the name the roster gives its author now."""
        async with self.db.read() as session:
            entries = await calls.agenda_entries(session, o)
            known = await calls.known_names(session, calls.authors(entries))
        names = await calls.author_names(self.roster, entries, known, timeout=self.roster.timeout)
        return [calls.shown(e, names) for e in entries]

    def _agenda_text(self, items: Sequence[str]) -> str:
        return bullets(items, budget=AGENDA_BUDGET)  # a call without items has a text of its own (notices)

    async def _day_before(self, schedule: Schedule, o: Occurrence) -> list[Ask]:
        items = await self._agenda(o)
        key = "call.reminder" if items else "call.reminder.empty"
        agenda = {"agenda": self._agenda_text(items)} if items else {}
        minutes = int(schedule.duration.total_seconds() // 60)
        notice, text = notices.english(key, call=o.region, start=o.start, minutes=minutes, **agenda)
        return [(Request(kind="call.reminder", about=call_about(o), occurrence=when(o), region=o.region, buttons=RSVP,
                         text=text, notice=notice), await self._reachable(o))]

    async def _hour_before(self, schedule: Schedule, o: Occurrence) -> list[Ask]:
        late = self.clock.now() >= o.start  # notify was down at the hour mark: still useful until the end
        key = ("call.started" if late else "call.link") + ("" if schedule.link else ".none")
        link = {"link": schedule.link} if schedule.link else {}
        notice, text = notices.english(key, call=o.region, start=o.start, **link)
        return [(Request(kind="call.link", about=call_about(o), occurrence=when(o), region=o.region, buttons=(),
                         text=text, notice=notice), await self._reachable(o))]

    async def _chair(self, schedule: Schedule, o: Occurrence) -> list[Ask]:
        chairs = await self.roster.by_email([schedule.chair_email])
        participants = await self._participants(o)
        items = await self._agenda(o)
        linked = sum(p.telegram_user_id is not None for p in participants)
        agenda = {"agenda": self._agenda_text(items)} if items else {}
        notice, text = notices.english("call.chair" if items else "call.chair.empty", call=o.region, start=o.start,
                                       n=len(participants), linked=linked, **agenda)
        return [(Request(kind="call.chair", about=call_about(o), occurrence=when(o), region=o.region,
                         text=text, notice=notice), chairs)]

    async def _close(self, o: Occurrence, now: datetime) -> None:
        """The call has started: a 24 h reminder or the chair's note still unanswered is no longer useful."""
        async with self.db.read() as session:
            open_ = (await session.exec(select(Notification.id).where(
                col(Notification.kind).in_(CLOSED_AT_START), Notification.subject == call_about(o),
                col(Notification.state).in_(OPEN_STATES)).limit(1))).first()
        if open_ is None:
            return
        async with self.db.unit_of_work(correlation_id=call_about(o)) as uow:
            await notifications.expire_open(uow, kinds=CLOSED_AT_START, about=call_about(o), reason="the call started",
                                            now=now)

    async def _tell(self, change: CallChange, schedule: Schedule, now: datetime) -> None:
        """Those reminded of a call that was then cancelled or moved hear of it, once per change: a move
        after a move, or a cancellation after a move, is told again, from the time they last heard."""
        original = Occurrence(region=change.region, original=change.original, start=change.original,
                              end=change.original + schedule.duration)
        about = call_about(original)
        async with self.db.read() as session:
            sent = list((await session.exec(select(Notification.person_id, Notification.kind, Notification.occurrence,
                                                   Notification.created_at).where(
                col(Notification.kind).in_((*TOLD, CHANGED)), Notification.subject == about))).all())
        reminded = list(dict.fromkeys(p for p, kind, _, _ in sent if kind in TOLD))
        was = last_told(change.original, [_heard(kind, occurrence, at) for _, kind, occurrence, at in sent])
        people = await self.roster.people(reminded) if reminded else []
        async with self.db.unit_of_work(correlation_id=about) as uow:
            moved = change.moved_to
            claimed = await uow.session.exec(update(CallChange)  # type: ignore[call-overload]
                                             .where(col(CallChange.region) == change.region,
                                                    col(CallChange.original) == change.original,
                                                    col(CallChange.changed_at) == change.changed_at,
                                                    col(CallChange.moved_to).is_(None) if moved is None
                                                    else col(CallChange.moved_to) == moved,
                                                    col(CallChange.told_at).is_(None))
                                             .values(told_at=now))
            if claimed.rowcount != 1:
                return  # told by another notify process, or changed again since read (told at the next pass)
            keep = stamp(moved) if moved is not None else None
            await notifications.expire_open(uow, kinds=TOLD, about=about, now=now, keep_occurrence=keep,
                                            reason="the call was moved" if moved else "the call was cancelled")
            # one per change and person: told twice (two processes, a retry) it is one notification
            occurrence = f"{change.changed_at:%Y%m%dT%H%M%S%f}>{stamp(moved) if moved is not None else CANCELLED}"
            if moved is not None:
                notice, text = notices.english("call.moved", call=change.region, was=was or change.original,
                                               start=moved)
            else:
                notice, text = notices.english("call.cancelled", call=change.region, was=was or change.original)
            told = Request(kind=CHANGED, about=about, occurrence=occurrence, region=change.region, text=text,
                           notice=notice)
            await notifications.create_all(uow, [(told, people)], now=now, rules=self.rules)
        log.info("call_change_told", call=about, moved=moved is not None, people=len(people))
        self.due()


def _heard(kind: str, occurrence: str, at: datetime) -> tuple[datetime, str, datetime | None]:
    """What one notification about a call told its reader: (when, the change it told or "", the call's time)."""
    if kind != CHANGED:  # a reminder, the link or the chair's note: its occurrence is the call's start
        return at, "", call_start(occurrence)
    key, _, target = occurrence.partition(">")
    # None too for an older change's occurrence (the time it was told): its time is not known
    return at, key, None if target == CANCELLED else call_start(target)
