"""Notify's answers over NATS request/reply: what a person still has to answer, and the
regional calls (next call, agenda, answers) as the bot shows them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.service import Service
from pydantic import BaseModel
from sqlmodel import col, select

from services.notify import calls
from services.notify.models import Notification
from services.notify.schedule import next_occurrence
from shared.bus import json_endpoint
from shared.clock import Clock
from shared.regions import REGIONS, resolve_region
from shared.store import Database

SUBJECT_PREFIX = "cmcoord.notify.svc"
AWAITING = ("sent", "escalated", "folded")  # delivered (one by one or in a summary), not answered


class PendingQuery(BaseModel):
    person_id: uuid.UUID
    limit: int = 20


class CallsQuery(BaseModel):
    person_id: uuid.UUID
    region: str | None = None  # None: every region's next call


class NotifyQueries:
    def __init__(self, *, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def calls(self, payload: dict[str, Any]) -> Any:
        """A region's next call with its agenda, the person's answer and everyone's; or every region's next call."""
        q = CallsQuery.model_validate(payload)
        now = self.clock.now()
        async with self.db.read() as session:
            if q.region is None:
                found = []
                for schedule in (await calls.schedules(session)).values():
                    o = next_occurrence(schedule, await calls.changes_of(session, schedule.region), now=now)
                    if o is not None:
                        found.append({"region": o.region, "name": REGIONS[o.region].name, "start": o.start.isoformat(),
                                      "link": schedule.link})
                return sorted(found, key=lambda c: c["start"])
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
            agenda = await calls.agenda(session, o)
            agenda_full = await calls.agenda_full(session, o, q.person_id)
        mine = next((reply for person, reply, _ in replies if person == q.person_id), None)
        return {"region": region, "name": REGIONS[region].name, "start": o.start.isoformat(), "end": o.end.isoformat(),
                "timezone": schedule.timezone, "link": schedule.link, "chair_email": schedule.chair_email,
                "moved": o.moved, "agenda": agenda, "my_answer": mine,
                # "person": this person's items reached AGENDA_PER_PERSON; "call": the call is full; None: room
                "agenda_full": agenda_full, "agenda_per_person": calls.AGENDA_PER_PERSON,
                "answers": {"join": sum(r == "join" for _, r, _ in replies),
                            "decline": sum(r == "decline" for _, r, _ in replies),
                            "none": sum(r is None for _, r, _ in replies)},
                # for the chair (the bot shows names to the call's chair only)
                "answers_by_name": sorted(([name, reply] for _, reply, name in replies), key=lambda a: a[0])}

    async def pending(self, payload: dict[str, Any]) -> Any:
        """A person's notifications delivered and still waiting for their answer, oldest first."""
        q = PendingQuery.model_validate(payload)
        async with self.db.read() as session:
            rows = (await session.exec(
                select(Notification).where(Notification.person_id == q.person_id,
                                           col(Notification.state).in_(AWAITING))
                .order_by(col(Notification.sent_at)).limit(max(1, min(q.limit, 50))))).all()
        return [{"notification_id": str(n.id), "kind": n.kind, "text": n.text, "state": n.state,
                 "sent_at": n.sent_at.isoformat() if n.sent_at else None, "buttons": json.loads(n.buttons)}
                for n in rows]

    async def serve(self, nc: NATS, *, version: str) -> Service:
        service = await add_service(nc, name="notify", version=version, description="CMCoord notifications",
                                    queue_group="notify")
        group = service.add_group(name=SUBJECT_PREFIX)
        await group.add_endpoint(name="pending", handler=json_endpoint(self.pending, name="pending"))
        await group.add_endpoint(name="calls", handler=json_endpoint(self.calls, name="calls"))
        return service
