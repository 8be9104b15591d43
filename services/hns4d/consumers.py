"""What HNS4D consumes: notify's transitions, for a party's liaison acknowledging receipt (the
button in Telegram, the link in a mail), applied in the consumer's transaction
(services/hns4d/records.py)."""

from __future__ import annotations

from services.hns4d import records
from shared import events
from shared.store import Consumes


def consumers() -> dict[str, Consumes]:
    return {"hns4d--on_notify": Consumes("NOTIFY", {events.NotificationTransitioned: records.on_transitioned},
                                         batched=True, wakes=False)}
