"""What the roster consumes: subject -> handler, durable names, in one table."""

from __future__ import annotations

from functools import partial

from services.roster import handlers
from shared import events
from shared.bus import Bus, ConsumerRunner
from shared.clock import Clock
from shared.store import Database


def durable(handler_name: str) -> str:
    return f"roster--{handler_name}"


def build_consumers(*, bus: Bus, db: Database, clock: Clock, max_deliver: int, ack_wait: float) -> list[ConsumerRunner]:
    name = durable("on_handover_submitted")
    return [
        ConsumerRunner(
            bus=bus,
            stream="BOT",
            durable=name,
            handlers={
                events.HandoverNoteSubmitted: partial(handlers.on_handover_submitted, db=db, clock=clock, consumer=name)
            },
            max_deliver=max_deliver,
            ack_wait=ack_wait,
        )
    ]
