"""Notify's answers over NATS request/reply: what a person still has to answer, and the
regional calls (next call, agenda, answers) as the bot shows them.

Who answered what to a call's invitation is for the call's chair only, and notify
decides who that is (the schedule's chair e-mail, as the roster knows it), not the
asker: any service allowed to send the query gets names only for the chair's own
person id. The CMCS desk is not shown them either: it sees the counts like everyone,
and a desk officer standing in for a chair is made the chair (`cmcoord calls set
--chair`).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import structlog
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.micro import add_service
from nats.micro.service import Service
from sqlalchemy import and_, func, or_
from sqlmodel import col, select

from services.notify import calls
from services.notify.models import Notification
from services.notify.recipients import Roster
from services.notify.schedule import Schedule, next_occurrence
from shared.bus import QueryError
from shared.clock import Clock
from shared.contracts import notify as contract
from shared.contracts.notify import (
    CallAnswers,
    CallBrief,
    Calls,
    CallsRequest,
    NextCall,
    Pending,
    PendingNotification,
    PendingRequest,
)
from shared.contracts.query import answer
from shared.regions import REGIONS, resolve_region
from shared.store import Database

log = structlog.get_logger("notify")
AWAITING = ("sent", "escalated", "folded")  # delivered (one by one or in a summary), not answered


CHAIR_CHECK_SECONDS = 2.0


class NotifyQueries:
    def __init__(self, *, db: Database, clock: Clock, roster: Roster) -> None:
        self.db = db
        self.clock = clock
        self.roster = roster

    async def _chair(self, schedule: Schedule, person_id: uuid.UUID) -> tuple[bool, str, bool]:
        """Whether the person chairs the region's call (the roster's person with the schedule's chair
        e-mail), the chair's name as the roster has it ("" when it does not say), and whether the
        roster left that unknown.

        A roster that does not answer means "no", said as unknown (the names are left out, the rest
        of the answer still goes, and the bot asks the chair to try again): failing closed costs the
        chair a retry, failing open would show every invitee's answer to whoever asked."""
        if not schedule.chair_email:
            return False, "", False
        try:
            # well within the asker's own wait (the bot's 5 s): a slow roster costs the names, not the call
            chairs = await asyncio.wait_for(self.roster.by_email([schedule.chair_email]), CHAIR_CHECK_SECONDS)
        except (QueryError, NatsError, TimeoutError) as err:
            log.warning("call_chair_not_resolved", region=schedule.region, error=str(err)[:200] or type(err).__name__)
            return False, "", True
        return any(c.person_id == person_id for c in chairs), next((c.name for c in chairs), ""), False

    async def calls(self, q: CallsRequest) -> Calls:
        """A region's next call with its agenda, the person's answer and the counts; or every region's next call.

        The reply's `you_chair` says whether the asker chairs the call; only then does it carry
        `answers_by_name`. A reply without them (an older notify, or not the chair) shows no names."""
        now = self.clock.now()
        async with self.db.read() as session:
            if q.region is None:
                found = []
                for schedule in (await calls.schedules(session)).values():
                    o = next_occurrence(schedule, await calls.changes_of(session, schedule.region), now=now)
                    if o is not None:
                        found.append(CallBrief(region=o.region, name=REGIONS[o.region].name, start=o.start,
                                               link=schedule.link))
                return Calls(sorted(found, key=lambda c: c.start.isoformat()))
            region = resolve_region(q.region)
            if region is None:
                raise ValueError(f"unknown region {q.region!r}")
            schedule = await calls.schedule_of(session, region)
            o = next_occurrence(schedule, await calls.changes_of(session, region), now=now)
            if o is None:
                raise LookupError(f"no {region} call ahead")
            replies = (await session.exec(select(Notification.person_id, Notification.reply, Notification.person_name).where(
                Notification.kind == "call.reminder", Notification.subject == calls.call_about(o),
                Notification.occurrence == calls.when(o)))).all()
            entries = await calls.agenda_entries(session, o)
            known = await calls.known_names(session, calls.authors(entries))
            agenda_full = await calls.agenda_full(session, o, q.person_id)
        mine = next((reply for person, reply, _ in replies if person == q.person_id), None)
        # roster questions, outside the read above and side by side: who chairs, and the authors' names now
        (chair, chair_name, chair_unknown), names = await asyncio.gather(self._chair(schedule, q.person_id),
                                                                         calls.author_names(self.roster, entries, known))
        agenda = [calls.shown(e, names) for e in entries]
        return Calls(NextCall(
            region=region, name=REGIONS[region].name, start=o.start, end=o.end,
            timezone=schedule.timezone, link=schedule.link, chair_email=schedule.chair_email, chair_name=chair_name,
            moved=o.moved, agenda=agenda, my_answer=mine,
            # "person": this person's items reached AGENDA_PER_PERSON; "call": the call is full; None: room
            agenda_full=agenda_full, agenda_per_person=calls.AGENDA_PER_PERSON,
            answers=CallAnswers(join=sum(r == "join" for _, r, _ in replies),
                                decline=sum(r == "decline" for _, r, _ in replies),
                                none=sum(r is None for _, r, _ in replies)),
            you_chair=chair, chair_unknown=chair_unknown,
            # the chair's only: who answered what
            answers_by_name=sorted(((name, reply) for _, reply, name in replies), key=lambda a: a[0]) if chair else None,
        ))

    async def pending(self, q: PendingRequest) -> Pending:
        """A person's notifications delivered and still waiting for their answer, oldest first; with
        them what was kept while they had no Telegram link and is owed now, even if quiet hours or
        the daily cap still hold its message (`caught_up`: kept for them before they linked)."""
        now = self.clock.now()
        async with self.db.read() as session:
            rows = (await session.exec(
                select(Notification).where(Notification.person_id == q.person_id, or_(
                    col(Notification.state).in_(AWAITING),
                    and_(Notification.state == "queued", col(Notification.owed_at).is_not(None),
                         col(Notification.owed_at) <= now)))
                .order_by(func.coalesce(col(Notification.sent_at), col(Notification.owed_at)))
                .limit(max(1, min(q.limit, 50))))).all()
        return Pending([PendingNotification(notification_id=n.id, kind=n.kind, text=n.text, state=n.state,
                                            sent_at=n.sent_at, buttons=json.loads(n.buttons),
                                            caught_up=n.owed_at is not None)
                        for n in rows])

    async def serve(self, nc: NATS, *, version: str) -> Service:
        service = await add_service(nc, name="notify", version=version, description="CMCoord notifications",
                                    queue_group="notify")
        await answer(service, contract.PENDING, self.pending)
        await answer(service, contract.CALLS, self.calls)
        return service
