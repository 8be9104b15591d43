"""Lessons' answers over NATS request/reply (the bot never reads its tables)."""

from __future__ import annotations

from typing import Any

from nats.errors import Error as NatsError

from shared.bus import Bus, QueryError


class LessonsUnavailable(Exception):
    pass


class LessonsClient:
    def __init__(self, bus: Bus, *, timeout: float) -> None:
        self.bus = bus
        self.timeout = timeout

    async def _ask(self, query: str, payload: dict[str, Any]) -> Any:
        try:
            return await self.bus.request(f"cmcoord.lessons.svc.{query}", payload, timeout=self.timeout)
        except QueryError as err:
            if err.code == "400":
                raise ValueError(err.description) from err
            raise LessonsUnavailable(str(err)) from err
        except (NatsError, TimeoutError) as err:
            raise LessonsUnavailable(str(err)) from err

    async def search(self, person_id: str | None, *, query: str, theme: str | None = None,
                     country: str | None = None, limit: int = 5) -> dict[str, Any]:
        """A page of what the asker (None: the public) may read. The bot says only who asks:
        lessons asks the roster what that person may read. `rights_unknown` in the answer:
        the roster did not answer, and the page is what the public may read."""
        return dict(await self._ask("search", {"person_id": person_id, "query": query, "theme": theme,
                                               "country": country, "limit": limit}))

    async def aars(self, person_id: str) -> list[dict[str, Any]]:
        """The AARs this person owes, oldest due first."""
        return list(await self._ask("aars", {"person_id": person_id}))
