"""Notify's answers over NATS request/reply: what a person still has to answer."""

from __future__ import annotations

import json
import uuid
from typing import Any

from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.service import Service
from pydantic import BaseModel
from sqlmodel import col, select

from services.notify.models import Notification
from shared.bus import json_endpoint
from shared.store import Database

SUBJECT_PREFIX = "cmcoord.notify.svc"
AWAITING = ("sent", "escalated")  # delivered and not answered (queued ones were not seen yet)


class PendingQuery(BaseModel):
    person_id: uuid.UUID
    limit: int = 20


class NotifyQueries:
    def __init__(self, *, db: Database) -> None:
        self.db = db

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
        return service
