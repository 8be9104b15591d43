"""Who to tell, from the roster (NATS request/reply; notify never reads roster tables)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.bus import Bus, QueryError


@dataclass(frozen=True)
class Recipient:
    person_id: uuid.UUID
    name: str
    telegram_user_id: int | None
    timezone: str
    regions: tuple[str, ...]
    organisation: str = ""
    phone: str = ""
    email: str = ""
    telegram_username: str = ""
    member: bool = True  # a member of the community today (an older roster does not say: as before)

    def contact_line(self) -> str:
        parts = [self.phone, self.email, f"@{self.telegram_username}" if self.telegram_username else ""]
        return " · ".join(p for p in parts if p)

    @property
    def region(self) -> str | None:
        return self.regions[0] if self.regions else None

    @classmethod
    def from_answer(cls, row: dict[str, Any]) -> Recipient:
        return cls(person_id=uuid.UUID(row["person_id"]), name=row["name"], telegram_user_id=row["telegram_user_id"],
                   timezone=row["timezone"] or "UTC", regions=tuple(row["regions"]),
                   organisation=row.get("organisation", ""), phone=row.get("phone", ""), email=row.get("email", ""),
                   telegram_username=row.get("telegram_username", ""), member=row.get("member", True))


class Roster:
    """Role holders are kept `cache_seconds` (an escalation wave asks the same question many times)."""

    def __init__(self, bus: Bus, *, timeout: float = 5.0, cache_seconds: float = 30.0) -> None:
        self.bus = bus
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._roles: dict[tuple[str, str | None], tuple[float, list[Recipient]]] = {}

    async def _ask(self, payload: dict[str, Any]) -> list[Recipient]:
        rows = await self.bus.request("cmcoord.roster.svc.recipients", payload, timeout=self.timeout)
        return [Recipient.from_answer(r) for r in rows]

    async def people(self, person_ids: Sequence[uuid.UUID]) -> list[Recipient]:
        if not person_ids:
            return []
        return await self._ask({"person_ids": [str(p) for p in person_ids]})

    async def everyone(self) -> list[Recipient]:
        """Every member with a linked Telegram account (a newsletter's audience): the roster leaves
        out those whose last deployment ended more than its grace period ago."""
        return await self._ask({"linked": True})

    async def deployed_in(self, region: str, on: date) -> list[Recipient]:
        """Everyone deployed in the region that day (a regional call's participants)."""
        return await self._ask({"region": region, "on": on.isoformat()})

    async def by_email(self, emails: Sequence[str]) -> list[Recipient]:
        return await self._ask({"emails": list(emails)}) if emails else []

    async def post_holders(self, post_id: uuid.UUID) -> list[dict[str, Any]]:
        """Who holds a post today: [{person: card, deployment: card}]."""
        answer = await self.bus.request("cmcoord.roster.svc.post_holder", {"post_id": str(post_id)},
                                        timeout=self.timeout)
        return list(answer["holders"])

    async def handover_note(self, deployment_id: uuid.UUID) -> dict[str, Any] | None:
        try:
            return await self.bus.request("cmcoord.roster.svc.handover_note", {"deployment_id": str(deployment_id)},
                                          timeout=self.timeout)
        except QueryError as err:
            if err.code == "404":
                return None
            raise

    async def holders(self, role: str, region: str | None = None) -> list[Recipient]:
        key = (role, region)
        now = time.monotonic()
        cached = self._roles.get(key)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        found = await self._ask({"role": role, "region": region})
        self._roles[key] = (now, found)
        return found
