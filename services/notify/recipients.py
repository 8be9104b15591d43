"""Who to tell, from the roster (NATS request/reply; notify never reads roster tables)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from shared.bus import Bus, QueryError
from shared.contracts import roster as contract
from shared.contracts.query import ask
from shared.contracts.roster import HandoverNoteCard, HandoverNoteRequest, Placement, PostHolderRequest, RecipientsRequest


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
    locale: str = "en"  # the language to write to them in

    def contact_line(self) -> str:
        parts = [self.phone, self.email, f"@{self.telegram_username}" if self.telegram_username else ""]
        return " · ".join(p for p in parts if p)

    @property
    def region(self) -> str | None:
        return self.regions[0] if self.regions else None

    @classmethod
    def from_answer(cls, row: contract.Recipient) -> Recipient:
        return cls(person_id=row.person_id, name=row.name, telegram_user_id=row.telegram_user_id,
                   timezone=row.timezone or "UTC", regions=tuple(row.regions), organisation=row.organisation,
                   phone=row.phone, email=row.email, telegram_username=row.telegram_username, member=row.member,
                   locale=row.locale)


# The reader a text notify composes itself (a summary, a handover note) is written for as its request's
# English text: the one a reader gets when it cannot be written in theirs.
ENGLISH_READER = Recipient(person_id=uuid.UUID(int=0), name="", telegram_user_id=None, timezone="UTC", regions=())


class Roster:
    """Role holders are kept `cache_seconds` (an escalation wave asks the same question many times)."""

    def __init__(self, bus: Bus, *, timeout: float = 5.0, cache_seconds: float = 30.0) -> None:
        self.bus = bus
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._roles: dict[tuple[str, str | None, str | None], tuple[float, list[Recipient]]] = {}

    async def _ask(self, request: RecipientsRequest) -> list[Recipient]:
        rows = await ask(self.bus, contract.RECIPIENTS, request, timeout=self.timeout)
        return [Recipient.from_answer(r) for r in rows.root]

    async def people(self, person_ids: Sequence[uuid.UUID]) -> list[Recipient]:
        if not person_ids:
            return []
        return await self._ask(RecipientsRequest(person_ids=list(person_ids)))

    async def everyone(self) -> list[Recipient]:
        """Every member with a linked Telegram account (a newsletter's audience): the roster leaves
        out those whose last deployment ended more than its grace period ago."""
        return await self._ask(RecipientsRequest(linked=True))

    async def deployed_in(self, region: str, on: date) -> list[Recipient]:
        """Everyone deployed in the region that day (a regional call's participants)."""
        return await self._ask(RecipientsRequest(region=region, on=on))

    async def by_email(self, emails: Sequence[str]) -> list[Recipient]:
        return await self._ask(RecipientsRequest(emails=list(emails))) if emails else []

    async def post_holders(self, post_id: uuid.UUID) -> list[Placement]:
        """Who holds a post today: a person's card and the deployment each."""
        answer = await ask(self.bus, contract.POST_HOLDER, PostHolderRequest(post_id=post_id), timeout=self.timeout)
        return list(answer.holders)

    async def handover_note(self, deployment_id: uuid.UUID) -> HandoverNoteCard | None:
        try:
            return await ask(self.bus, contract.HANDOVER_NOTE, HandoverNoteRequest(deployment_id=deployment_id),
                             timeout=self.timeout)
        except QueryError as err:
            if err.code == "404":
                return None
            raise

    async def holders(self, role: str, region: str | None = None, country: str | None = None) -> list[Recipient]:
        key = (role, region, country)
        now = time.monotonic()
        cached = self._roles.get(key)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        found = await self._ask(RecipientsRequest(role=role, region=region,  # type: ignore[arg-type]  # validated there
                                                  country=country))
        self._roles[key] = (now, found)
        return found
