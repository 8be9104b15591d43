"""What lessons consumes: deployment ends (an AAR falls due) and the bot's reports and AARs.
Each event is applied once with its idempotency record and outgoing events (outbox)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from services.lessons import store
from services.lessons.duties import DutyPolicy
from shared import events
from shared.bus import Bus, ConsumerRunner
from shared.clock import Clock
from shared.events import Envelope
from shared.store import Database, Transactional, UnitOfWork


def build_consumers(*, bus: Bus, db: Database, clock: Clock, policy: DutyPolicy, due_days: int, threshold: float,
                    wake: Callable[[], None], max_deliver: int) -> list[ConsumerRunner]:
    async def deployment_ended(uow: UnitOfWork, envelope: Envelope, e: events.DeploymentEnded) -> None:
        await store.expect_aar(uow, aar_id=events.deterministic_id("aar", e.deployment_id), person_id=e.person_id,
                               deployment_id=e.deployment_id, country=e.country,
                               due_on=e.ended_on + timedelta(days=due_days), policy=policy)

    async def report(uow: UnitOfWork, envelope: Envelope, e: events.ReportSubmitted) -> None:
        await store.record_report(uow, e, threshold=threshold)

    async def aar(uow: UnitOfWork, envelope: Envelope, e: events.AarSubmitted) -> None:
        await store.record_aar(uow, e, threshold=threshold)

    roster: dict[type[events.Event], Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]] = {
        events.DeploymentEnded: deployment_ended}
    bot: dict[type[events.Event], Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]] = {
        events.ReportSubmitted: report, events.AarSubmitted: aar}
    common: dict[str, Any] = {"bus": bus, "max_deliver": max_deliver}
    runners = []
    for stream, durable, apply in (("ROSTER", "lessons--on_roster", roster), ("BOT", "lessons--on_bot", bot)):
        applied = Transactional(db=db, clock=clock, source=store.SOURCE, consumer=durable, apply=apply)

        async def one(envelope: Envelope, event: events.Event, applied: Transactional = applied) -> None:
            await applied.one(envelope, event)
            wake()  # a new AAR may have a step due already

        runners.append(ConsumerRunner(stream=stream, durable=durable, handlers={cls: one for cls in apply}, **common))
    return runners
