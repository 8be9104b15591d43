"""Ad-hoc messages from the CMCS desk and regional advisers to a region (or a role in it), or to
everyone: `cmcoord notify send` and the bot's /send build the same notification requests here.

A message is known by its reference ("M-7KQ2M9XA"): notify keeps one notification per recipient
of kind `KIND` about that reference, under its usual policies (quiet hours unless urgent, the daily
cap, re-sent up to three times while unacknowledged, never escalated: it may come from the adviser
escalation would go to), and the figures (`cmcoord notify send-status`,
`/send status`) are counted from those notifications.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from shared.bus import Bus
from shared.contracts.query import ask
from shared.contracts.roster import RECIPIENTS, RecipientsRequest
from shared.events import ROLES, TEXT_MAX, NotificationRequested, ReplyButton, deterministic_id
from shared.themes import reference

KIND = "adhoc.message"
TEXT_LIMIT = 3000  # what the sender may write (the header takes the rest of a notification's text)
REFERENCE = re.compile(r"^M-[0-9A-Z]{8}$")
ACKNOWLEDGE = ReplyButton(label="Acknowledge", reply="ack")
PER_REQUEST = 1000  # person ids in one request (NotificationRequested's bound)


def new_reference() -> str:
    return reference("M", uuid.uuid4())


def clean_reference(text: str) -> str | None:
    ref = text.strip().upper()
    return ref if REFERENCE.match(ref) else None


def message_text(*, sender: str, audience: str, text: str, ref: str) -> str:
    header = f"Message from {sender} to {audience} (ref. {ref}). Please acknowledge it.\n\n"
    return (header + text.strip())[:TEXT_MAX]


async def region_members(bus: Bus, region: str, *, timeout: float = 5.0) -> list[uuid.UUID]:
    """Everyone deployed in the region today as the roster sees it (its own clock): the holders
    of each role there, linked to Telegram or not (those who are not are counted unreachable)."""
    found: dict[uuid.UUID, None] = {}
    for role in ROLES:
        rows = await ask(bus, RECIPIENTS, RecipientsRequest(role=role, region=region), timeout=timeout)
        found.update((r.person_id, None) for r in rows.root)
    return list(found)


Requests = list[tuple[uuid.UUID, NotificationRequested]]


def requests(*, ref: str, text: str, urgent: bool, region: str | None, role: str | None = None,
             everyone: bool = False, person_ids: Sequence[uuid.UUID] = ()) -> Requests:
    """The notification requests for one message, each with its event id (the same message asked
    again is the same events: JetStream and notify drop the copy)."""
    common: dict[str, Any] = {"kind": KIND, "about": ref, "occurrence": "", "text": text, "urgent": urgent,
                              "region": region, "buttons": [ACKNOWLEDGE]}
    if everyone or role is not None:
        return [(deterministic_id("adhoc", ref, 0), NotificationRequested(**common, role=role, everyone=everyone))]
    ids = list(person_ids)
    return [(deterministic_id("adhoc", ref, i), NotificationRequested(**common, person_ids=ids[i:i + PER_REQUEST]))
            for i in range(0, len(ids), PER_REQUEST)]
