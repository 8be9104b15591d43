"""The roster's answers over NATS request/reply (the bot never reads its tables)."""

from __future__ import annotations

from typing import Any

from shared.bus import Bus, QueryError

REGISTER_REFUSALS = {"404": "unknown", "409": "used", "410": "expired"}


class RosterClient:
    def __init__(self, bus: Bus, *, timeout: float) -> None:
        self.bus = bus
        self.timeout = timeout

    async def _ask(self, verb: str, payload: dict[str, Any]) -> Any:
        return await self.bus.request(f"cmcoord.roster.svc.{verb}", payload, timeout=self.timeout)

    async def person(self, telegram_user_id: int) -> dict[str, Any] | None:
        """The linked roster person, or None for someone not registered."""
        try:
            return await self._ask("person_by_telegram", {"telegram_user_id": telegram_user_id})
        except QueryError as err:
            if err.code == "404":
                return None
            raise

    async def register(self, token: str, telegram_user_id: int) -> dict[str, Any]:
        return await self._ask("register", {"token": token, "telegram_user_id": telegram_user_id})

    async def contacts(self, query: str, *, offset: int, limit: int) -> dict[str, Any]:
        return await self._ask("contacts", {"query": query, "offset": offset, "limit": limit})

    async def counterparts(self, country: str, *, requester_person_id: str) -> list[dict[str, Any]] | None:
        """Counterpart contacts of a country, or None when the requester may not see them."""
        try:
            return await self._ask("counterparts", {"country": country, "requester_person_id": requester_person_id})
        except QueryError as err:
            if err.code in ("403", "400"):
                return None
            raise
