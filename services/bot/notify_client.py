"""Notify's answers over NATS request/reply (the bot never reads its tables)."""

from __future__ import annotations

from typing import Any

from nats.errors import Error as NatsError

from shared.bus import Bus, QueryError


class NotifyUnavailable(Exception):
    pass


class NotifyClient:
    def __init__(self, bus: Bus, *, timeout: float) -> None:
        self.bus = bus
        self.timeout = timeout

    async def pending(self, person_id: str) -> list[dict[str, Any]]:
        """Notifications delivered to the person and still waiting for their answer."""
        try:
            return await self.bus.request("cmcoord.notify.svc.pending", {"person_id": person_id}, timeout=self.timeout)
        except (QueryError, NatsError, TimeoutError) as err:
            raise NotifyUnavailable(str(err)) from err
