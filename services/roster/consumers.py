"""What the roster consumes, in one table: durable name -> the stream it reads and, by event type,
the handler applied in the consumer's transaction (services/roster/handlers.py), a batch at a time."""

from __future__ import annotations

from services.roster import handlers
from shared import events
from shared.store import Consumes

CONSUMERS: dict[str, Consumes] = {
    "roster--on_handover_submitted": Consumes(
        "BOT", {events.HandoverNoteSubmitted: handlers.on_handover_submitted},
        prefetch=handlers.prefetch_deployments, batched=True),
    "roster--on_departure_changed": Consumes(
        "BOT", {events.DepartureChanged: handlers.on_departure_changed}, batched=True),
    "roster--on_profile_updated": Consumes(
        "BOT", {events.ProfileUpdated: handlers.on_profile_updated}, batched=True),
}
