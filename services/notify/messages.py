"""Ad-hoc messages of the CMCS desk and regional advisers (shared/adhoc.py): how many were sent,
acknowledged, still pending or could not reach their person, with names, counted from the
message's notifications (kind `adhoc.message`, subject its reference).

`cmcoord notify send-status` reads them from the store; the bot asks `message_status`
(shared/contracts/notify.py MESSAGE_STATUS) and decides itself who may see a message's figures
(the CMCS desk any, a regional adviser those of their region).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from nats.micro.service import Service
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notify.models import Notification
from shared.adhoc import KIND
from shared.contracts.notify import MESSAGE_STATUS, MessageStatus, MessageStatusRequest
from shared.contracts.query import answer
from shared.store import Database

UNREACHABLE = ("unlinked", "failed")  # no Telegram link, or Telegram refused it for good


@dataclass
class MessageFigures:
    reference: str
    region: str | None  # the message's region, as every copy holds it (handlers/notifications._region); None: to everyone
    urgent: bool
    created_at: datetime
    text: str
    total: int = 0
    sent: int = 0  # Telegram accepted it (not read: there is no read receipt)
    acknowledged: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # not acknowledged yet (waiting, held for quiet hours, sent)
    unreachable: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        answer = asdict(self)
        answer["created_at"] = self.created_at.isoformat()
        return answer


def count(rows: list[Notification], reference: str) -> MessageFigures | None:
    if not rows:
        return None
    regions = {n.region for n in rows}
    first = min(rows, key=lambda n: n.created_at)
    figures = MessageFigures(reference=reference, region=regions.pop() if len(regions) == 1 else None,
                             urgent=first.urgent, created_at=first.created_at, text=first.text)
    for n in sorted(rows, key=lambda n: (n.person_name.casefold(), str(n.person_id))):
        name = n.person_name or str(n.person_id)
        figures.total += 1
        figures.sent += n.sent_at is not None
        if n.state == "acknowledged":
            figures.acknowledged.append(name)
        elif n.state in UNREACHABLE:
            figures.unreachable.append(name)
        elif n.state == "expired":
            figures.expired.append(name)
        else:
            figures.pending.append(name)
    return figures


async def message_figures(session: AsyncSession, reference: str) -> MessageFigures | None:
    """The message's figures, or None when notify holds no message with that reference."""
    rows = (await session.exec(select(Notification).where(
        Notification.kind == KIND, Notification.subject == reference, col(Notification.depth) == 0))).all()
    return count(list(rows), reference)


class MessageQueries:
    def __init__(self, *, db: Database) -> None:
        self.db = db

    async def status(self, q: MessageStatusRequest) -> MessageStatus:
        async with self.db.read() as session:
            found = await message_figures(session, q.reference.strip().upper())
        if found is None:
            raise LookupError(f"no message {q.reference!r}")
        return MessageStatus.model_validate(asdict(found))

    async def serve_on(self, service: Service) -> None:
        await answer(service, MESSAGE_STATUS, self.status)
