"""Scheduled steps (send, re-notify, escalate, expire, tell the desk), kept in the
notifications themselves (`due_at`, `due_action`): a restart loses nothing, and
a step is claimed by bumping the row's version, so with two notify processes
each step happens once."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import update
from sqlmodel import col, select

from services.notify.models import Notification
from services.notify.policy import (
    OPEN_STATES,
    KindPolicy,
)
from services.notify.recipients import Recipient, Roster
from services.notify.store import (
    SOURCE,
    Request,
    create,
    schedule_next,
    send,
    transition,
)
from shared.clock import Clock
from shared.periodic import Periodic
from shared.store import Database, UnitOfWork

log = structlog.get_logger("notify")
ROLE_TOLD = {1: ("regional_adviser", "regional adviser told"), 2: ("cmcs_desk", "CMCS desk told")}


class DueWork(Periodic):
    name = "due_work"

    def __init__(self, *, db: Database, clock: Clock, roster: Roster, policies: dict[str, KindPolicy] | None = None,
                 tick_seconds: float = 1.0, batch: int = 500) -> None:
        super().__init__(tick_seconds=tick_seconds)
        self.db, self.clock, self.roster = db, clock, roster
        self.policies = policies
        self.batch = batch
        self.done = 0

    async def run_pass(self) -> None:
        while await self.run_due() >= self.batch and not self._stopping.is_set():
            pass  # a full batch: more may be due

    async def run_due(self) -> int:
        """Perform every step due now; returns how many rows were looked at."""
        now = self.clock.now()
        async with self.db.read() as session:
            rows = list((await session.exec(
                select(Notification).where(col(Notification.due_at) <= now).order_by(col(Notification.due_at))
                .limit(self.batch))).all())
        for n in rows:
            await self._step(n, now)
        return len(rows)

    async def _targets(self, n: Notification, level: int) -> tuple[int, list[Recipient]]:
        """Who hears of an escalation: the regional adviser, else (or next) the CMCS desk."""
        if level == 1 and n.region:
            advisers = [r for r in await self.roster.holders("regional_adviser", n.region) if r.person_id != n.person_id]
            if advisers:
                return 1, advisers
        return 2, [r for r in await self.roster.holders("cmcs_desk") if r.person_id != n.person_id]

    async def _step(self, n: Notification, now: datetime) -> None:
        action = n.due_action
        targets: tuple[int, list[Recipient]] | None = None
        if action == "escalate" and n.state in OPEN_STATES:
            targets = await self._targets(n, n.escalation_level + 1)
        elif action == "tell_desk":
            targets = (2, await self.roster.holders("cmcs_desk"))
        async with self.db.unit_of_work(source=SOURCE, clock=self.clock, correlation_id=str(n.id)) as uow:
            claimed = await uow.session.exec(update(Notification)  # type: ignore[call-overload]
                                             .where(col(Notification.id) == n.id, col(Notification.version) == n.version)
                                             .values(version=n.version + 1))
            if claimed.rowcount != 1:
                return  # another notify process took this step
            row = await uow.session.get(Notification, n.id)
            assert row is not None
            if row.due_action != action or row.due_at is None or row.due_at > now:
                return  # changed since it was read (the claim above makes this rare)
            await self._perform(uow, row, action, targets, now)
            uow.session.add(row)
        self.done += 1

    async def _perform(self, uow: UnitOfWork, n: Notification, action: str | None,
                       targets: tuple[int, list[Recipient]] | None, now: datetime) -> None:
        n.due_at, n.due_action = None, None
        if action == "tell_desk":
            assert targets is not None
            await create(uow, Request(
                kind="delivery.failed", about=str(n.id), occurrence="", region=n.region,
                text=f"Could not reach {n.person_name} on Telegram ({n.failed_reason}). The message was:\n{n.text[:3000]}",
            ), targets[1], now=now, policies=self.policies)
            return
        if n.state not in OPEN_STATES:
            return  # acknowledged, failed or expired meanwhile
        if action in ("send", "renotify"):
            send(uow, n, action, now, self.policies)
        elif action == "escalate":
            assert targets is not None
            level, people = targets
            await create(uow, Request(
                kind="escalation", about=str(n.id), occurrence=f"level-{level}", region=n.region,
                text=(f"Not acknowledged: {n.person_name} has not answered this message, first sent "
                      f"{n.first_sent_at:%d %b %H:%M} UTC:\n{n.text[:3000]}"),
            ), people, now=now, policies=self.policies)
            n.escalation_level = level
            transition(uow, n, "escalated", ROLE_TOLD[level][1], now)
            schedule_next(n, self.policies)
        elif action == "expire":
            transition(uow, n, "expired", "no answer in time", now)
