"""The roster's answers over NATS request/reply (the bot never reads its tables); the
requests and replies are the roster's query contracts (shared/contracts/roster.py)."""

from __future__ import annotations

import time
import uuid

from shared.bus import Bus, QueryError
from shared.contracts import roster as contract
from shared.contracts.query import ask
from shared.contracts.roster import (
    ContactsPage,
    CounterpartCard,
    PersonByTelegramRequest,
    PersonCard,
    Rights,
    RightsRequest,
)

REGISTER_REFUSALS = {"404": "unknown", "409": "used", "410": "expired"}


class RosterClient:
    """`person` answers are kept for `person_cache_seconds` (a conversation is a
    burst of updates from one person); a registration through this client
    replaces the answer at once, other changes show within that time."""

    def __init__(self, bus: Bus, *, timeout: float, person_cache_seconds: float = 0) -> None:
        self.bus = bus
        self.timeout = timeout
        self.person_cache_seconds = person_cache_seconds
        self._people: dict[int, tuple[float, PersonCard | None]] = {}

    async def person(self, telegram_user_id: int) -> PersonCard | None:
        """The linked roster person, or None for someone not registered."""
        now = time.monotonic()
        cached = self._people.get(telegram_user_id)
        if cached is not None and now - cached[0] < self.person_cache_seconds:
            return cached[1]
        found: PersonCard | None
        try:
            found = await ask(self.bus, contract.PERSON_BY_TELEGRAM,
                              PersonByTelegramRequest(telegram_user_id=telegram_user_id), timeout=self.timeout)
        except QueryError as err:
            if err.code != "404":
                raise
            found = None
        if self.person_cache_seconds > 0:
            if len(self._people) > 10_000:  # forget the expired answers now and then
                self._people = {k: v for k, v in self._people.items() if now - v[0] < self.person_cache_seconds}
            self._people[telegram_user_id] = (now, found)
        return found

    def forget(self, telegram_user_id: int) -> None:
        """The roster changed this user's link: the next update asks it again."""
        self._people.pop(telegram_user_id, None)

    async def register(self, token: str, telegram_user_id: int, username: str | None) -> PersonCard:
        """Links the Telegram user; the answer is their card (kept as `person` would). The roster
        compares `username` (None: the account has none) with the one it has for the person, and
        holds the link for the CMCS desk when they differ (QueryError 202)."""
        self._people.pop(telegram_user_id, None)
        # a token that cannot be one (too long) is refused as the roster would refuse it (400)
        request = contract.REGISTER.build(token=token, telegram_user_id=telegram_user_id,
                                          telegram_username=username or "")
        card = await ask(self.bus, contract.REGISTER, request, timeout=self.timeout)
        if self.person_cache_seconds > 0:
            self._people[telegram_user_id] = (time.monotonic(), card)
        return card

    async def contacts(self, query: str, *, offset: int, limit: int) -> ContactsPage:
        return await ask(self.bus, contract.CONTACTS, contract.CONTACTS.build(query=query, offset=offset, limit=limit),
                         timeout=self.timeout)

    async def counterparts(self, country: str, *, requester_person_id: uuid.UUID) -> list[CounterpartCard] | None:
        """Counterpart contacts of a country, or None when the requester may not see them."""
        try:
            request = contract.COUNTERPARTS.build(country=country, requester_person_id=requester_person_id)
            found = await ask(self.bus, contract.COUNTERPARTS, request, timeout=self.timeout)
        except QueryError as err:
            if err.code in ("403", "400"):
                return None
            raise
        return list(found.root)

    async def rights(self, person_id: uuid.UUID) -> Rights:
        """What the person may do beyond their own: `desk`, `adviser_regions` (the roster's tables, today)."""
        return await ask(self.bus, contract.RIGHTS, RightsRequest(person_id=person_id), timeout=self.timeout)
