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

    async def _ask(self, query: str, payload: dict[str, Any]) -> Any:
        try:
            return await self.bus.request(f"cmcoord.notify.svc.{query}", payload, timeout=self.timeout)
        except (QueryError, NatsError, TimeoutError) as err:
            raise NotifyUnavailable(str(err)) from err

    async def pending(self, person_id: str) -> list[dict[str, Any]]:
        """Notifications delivered to the person and still waiting for their answer."""
        return list(await self._ask("pending", {"person_id": person_id}))

    async def next_call(self, person_id: str, region: str) -> dict[str, Any]:
        """The region's next call: time, link, agenda, this person's answer and everyone's."""
        return dict(await self._ask("calls", {"person_id": person_id, "region": region}))

    async def next_calls(self, person_id: str) -> list[dict[str, Any]]:
        """Every region's next call."""
        return list(await self._ask("calls", {"person_id": person_id}))

    async def summary_audience(self, person_id: str, region: str) -> dict[str, Any]:
        """What a summary sent now would do: `call_start` (None: no call has taken place yet) and
        `audience` (how many of those invited it would reach)."""
        return dict(await self._ask("call_summary", {"person_id": person_id, "region": region}))

    async def message_status(self, reference: str) -> dict[str, Any] | None:
        """An ad-hoc message's figures (sent, acknowledged, pending, unreachable, with names); None: unknown."""
        try:
            return dict(await self.bus.request("cmcoord.notify.svc.message_status", {"reference": reference},
                                               timeout=self.timeout))
        except QueryError as err:
            if err.code == "404":
                return None
            raise NotifyUnavailable(str(err)) from err
        except (NatsError, TimeoutError) as err:
            raise NotifyUnavailable(str(err)) from err
