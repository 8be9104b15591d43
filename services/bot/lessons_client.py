"""Lessons' answers over NATS request/reply (the bot never reads its tables)."""

from __future__ import annotations

from typing import Any

from nats.errors import Error as NatsError

from shared.bus import Bus, QueryError


class LessonsUnavailable(Exception):
    pass


def viewer_of(person: dict[str, Any]) -> dict[str, Any]:
    """Who asks, as lessons' classification rules need it: a member, the desk, a region's adviser."""
    deployments = person.get("deployments", [])
    return {"person_id": str(person["person_id"]), "member": True,
            "desk": any(d["role"] == "cmcs_desk" for d in deployments),
            "adviser_regions": sorted({d["region"] for d in deployments if d["role"] == "regional_adviser"})}


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

    async def search(self, person: dict[str, Any], *, query: str, theme: str | None = None,
                     country: str | None = None, limit: int = 5) -> dict[str, Any]:
        return dict(await self._ask("search", {"viewer": viewer_of(person), "query": query, "theme": theme,
                                               "country": country, "limit": limit}))

    async def aars(self, person_id: str) -> list[dict[str, Any]]:
        """The AARs this person owes, oldest due first."""
        return list(await self._ask("aars", {"person_id": person_id}))
