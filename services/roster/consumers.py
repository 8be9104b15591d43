"""What the roster consumes: subject -> handler, durable names, in one table."""

from __future__ import annotations

from services.roster import handlers
from shared import events
from shared.bus import Bus, ConsumerRunner
from shared.clock import Clock
from shared.store import Apply, Database, Prefetch, Transactional

# durable name -> (stream, {event class: handler applied in the consumer's transaction}, batch prefetch)
CONSUMERS: dict[str, tuple[str, dict[type[events.Event], Apply], Prefetch | None]] = {
    "roster--on_handover_submitted": (
        "BOT",
        {events.HandoverNoteSubmitted: handlers.on_handover_submitted},
        handlers.prefetch_deployments,
    ),
    "roster--on_departure_changed": ("BOT", {events.DepartureChanged: handlers.on_departure_changed}, None),
    "roster--on_profile_updated": ("BOT", {events.ProfileUpdated: handlers.on_profile_updated}, None),
}


def build_consumers(*, bus: Bus, db: Database, clock: Clock, max_deliver: int) -> list[ConsumerRunner]:
    runners = []
    for durable, (stream, apply, prefetch) in CONSUMERS.items():
        tx = Transactional(db=db, consumer=durable, apply=apply, prefetch=prefetch)
        runners.append(
            ConsumerRunner(
                bus=bus,
                stream=stream,
                durable=durable,
                handlers={cls: tx.one for cls in apply},
                batch_handler=tx.many,
                max_deliver=max_deliver,
            )
        )
    return runners
