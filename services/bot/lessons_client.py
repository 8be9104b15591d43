"""Lessons' answers over NATS request/reply (the bot never reads its tables); the requests and
replies are lessons' query contracts (shared/contracts/lessons.py)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from nats.errors import Error as NatsError
from pydantic import BaseModel

from shared.bus import Bus, QueryError
from shared.contracts import lessons as contract
from shared.contracts.lessons import OwedAar, SearchPage
from shared.contracts.query import Query, ask

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)


class LessonsUnavailable(Exception):
    pass


class LessonsClient:
    def __init__(self, bus: Bus, *, timeout: float) -> None:
        self.bus = bus
        self.timeout = timeout

    async def _ask(self, asked: Query[Req, Rep], /, **fields: Any) -> Rep:
        try:  # what a person typed, refused before it is sent when it cannot fit (400: ValueError)
            return await ask(self.bus, asked, asked.build(**fields), timeout=self.timeout)
        except QueryError as err:
            if err.code == "400":
                raise ValueError(err.description) from err
            raise LessonsUnavailable(str(err)) from err
        except (NatsError, TimeoutError) as err:
            raise LessonsUnavailable(str(err)) from err

    async def search(self, person_id: uuid.UUID | None, *, query: str, theme: str | None = None,
                     country: str | None = None, limit: int = 5) -> SearchPage:
        """A page of what the asker (None: the public) may read. The bot says only who asks:
        lessons asks the roster what that person may read. `rights_unknown` in the answer:
        the roster did not answer, and the page is what the public may read."""
        return await self._ask(contract.SEARCH, person_id=person_id, query=query, theme=theme, country=country,
                               limit=limit)

    async def aars(self, person_id: uuid.UUID) -> list[OwedAar]:
        """The AARs this person owes, oldest due first."""
        return list((await self._ask(contract.AARS, person_id=person_id)).root)
