"""What lessons consumes: deployment ends (an AAR falls due) and the bot's reports and AARs,
in one table: durable name -> (stream, {event type: handler}). Each event is applied once, with
its idempotency record and outgoing events (outbox), by services/lessons/handlers.py."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from services.lessons import handlers
from services.lessons.duties import DutyPolicy
from shared import events
from shared.bus import Bus, ConsumerRunner
from shared.clock import Clock
from shared.events import Envelope
from shared.store import Apply, Database, Transactional


Table = dict[str, tuple[str, dict[type[events.Event], Apply]]]  # durable -> (stream, {event type: handler})


def consumers(*, policy: DutyPolicy, due_days: int, threshold: float) -> Table:
    """The table, with the settings each handler needs bound."""
    return {
        "lessons--on_roster": ("ROSTER", {
            events.DeploymentEnded: partial(handlers.on_deployment_ended, policy=policy, due_days=due_days)}),
        "lessons--on_bot": ("BOT", {
            events.ReportSubmitted: partial(handlers.on_report_submitted, threshold=threshold),
            events.AarSubmitted: partial(handlers.on_aar_submitted, threshold=threshold)}),
    }


def build_consumers(*, bus: Bus, db: Database, clock: Clock, policy: DutyPolicy, due_days: int, threshold: float,
                    wake: Callable[[], None], max_deliver: int) -> list[ConsumerRunner]:
    runners = []
    for durable, (stream, apply) in consumers(policy=policy, due_days=due_days, threshold=threshold).items():
        applied = Transactional(db=db, consumer=durable, apply=apply)

        async def one(envelope: Envelope, event: events.Event, applied: Transactional = applied) -> None:
            await applied.one(envelope, event)
            wake()  # a new AAR may have a step due already

        runners.append(ConsumerRunner(stream=stream, durable=durable, handlers={cls: one for cls in apply}, bus=bus,
                                      max_deliver=max_deliver))
    return runners
