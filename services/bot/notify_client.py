"""Notify's answers over NATS request/reply (the bot never reads its tables); the requests and
replies are notify's query contracts (shared/contracts/notify.py)."""

from __future__ import annotations

import uuid
from typing import TypeVar

from nats.errors import Error as NatsError
from pydantic import BaseModel

from shared.bus import Bus, QueryError
from shared.contracts import notify as contract
from shared.contracts.notify import (
    CallBrief,
    CallsRequest,
    CallSummaryAudience,
    CallSummaryRequest,
    MessageStatus,
    NextCall,
    PendingNotification,
    PendingRequest,
)
from shared.contracts.query import Query, ask

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)


class NotifyUnavailable(Exception):
    pass


class NotifyClient:
    def __init__(self, bus: Bus, *, timeout: float) -> None:
        self.bus = bus
        self.timeout = timeout

    async def _ask(self, query: Query[Req, Rep], request: Req) -> Rep:
        try:
            return await ask(self.bus, query, request, timeout=self.timeout)
        except (QueryError, NatsError, TimeoutError) as err:
            raise NotifyUnavailable(str(err)) from err

    async def pending(self, person_id: uuid.UUID) -> list[PendingNotification]:
        """Notifications delivered to the person and still waiting for their answer."""
        return list((await self._ask(contract.PENDING, PendingRequest(person_id=person_id))).root)

    async def next_call(self, person_id: uuid.UUID, region: str) -> NextCall:
        """The region's next call: time, link, agenda, this person's answer and everyone's."""
        found = (await self._ask(contract.CALLS, CallsRequest(person_id=person_id, region=region))).root
        if not isinstance(found, NextCall):
            raise NotifyUnavailable("a list of calls for a region's next call")
        return found

    async def next_calls(self, person_id: uuid.UUID) -> list[CallBrief]:
        """Every region's next call."""
        found = (await self._ask(contract.CALLS, CallsRequest(person_id=person_id))).root
        if isinstance(found, NextCall):
            raise NotifyUnavailable("one call for every region's next calls")
        return list(found)

    async def summary_audience(self, person_id: uuid.UUID, region: str) -> CallSummaryAudience:
        """What a summary sent now would do: `call_start` (None: no call has taken place yet) and
        `audience` (how many of those invited it would reach)."""
        return await self._ask(contract.CALL_SUMMARY, CallSummaryRequest(person_id=person_id, region=region))

    async def message_status(self, reference: str) -> MessageStatus | None:
        """An ad-hoc message's figures (sent, acknowledged, pending, unreachable, with names); None: unknown."""
        try:
            return await ask(self.bus, contract.MESSAGE_STATUS, contract.MESSAGE_STATUS.build(reference=reference),
                             timeout=self.timeout)
        except QueryError as err:
            if err.code == "404":
                return None
            raise NotifyUnavailable(str(err)) from err
        except (NatsError, TimeoutError) as err:
            raise NotifyUnavailable(str(err)) from err
