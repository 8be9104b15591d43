"""Lessons' answers over NATS request/reply: search (as the asker may see it) and the AARs a person owes.

A search says only who asks (`person_id`; none for the public); what that person may
read comes from the roster (services/lessons/rights.py), never from the request."""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.service import Service

from services.lessons import search, store
from services.lessons.classification import Viewer
from services.lessons.models import Item
from services.lessons.periods import parse_period
from services.lessons.rights import RosterRights
from services.lessons.search import COUNT_CAP
from shared.contracts import lessons as contract
from shared.contracts.lessons import AarsRequest, ItemCard, OwedAar, OwedAars, SearchPage, SearchRequest
from shared.contracts.query import answer
from shared.regions import country_name, resolve_country, resolve_region
from shared.store import Database
from shared.themes import resolve_theme

SNIPPET = 200


def filters_from(*, query: str = "", theme: str | None = None, country: str | None = None,
                 region: str | None = None, period: str | None = None, status: str | None = None,
                 kind: str | None = None) -> search.Filters:
    """Filters as people write them; ValueError names what was not understood."""
    def resolved(value: str | None, resolve: Any, what: str) -> str | None:
        if not value:
            return None
        found = resolve(value)
        if found is None:
            raise ValueError(f"unknown {what} {value!r}")
        return str(found)

    span = parse_period(period) if period else None
    if status and status not in ("new", "identified", "learned", "merged"):
        raise ValueError(f"unknown status {status!r}: new, identified, learned or merged")
    if kind and kind not in ("observation", "aar"):
        raise ValueError(f"unknown kind {kind!r}: observation or aar")
    return search.Filters(query=query, theme=resolved(theme, resolve_theme, "theme"),
                         country=resolved(country, resolve_country, "country"),
                         region=resolved(region, resolve_region, "region"),
                         since=span.start if span else None, until=span.end if span else None, status=status,
                         kind=kind)


def card(item: Item) -> ItemCard:
    body = " ".join(item.body.split())
    return ItemCard(item_id=item.id, reference=item.reference, kind=item.kind, title=item.title,
                    snippet=body if len(body) <= SNIPPET else body[: SNIPPET - 1] + "…", country=item.country,
                    country_name=country_name(item.country), region=item.region, themes=item.theme_list,
                    classification=item.classification, status=item.status, action=item.action,
                    created_at=item.created_at)


class LessonsQueries:
    def __init__(self, *, db: Database, rights: RosterRights) -> None:
        self.db = db
        self.rights = rights

    async def search(self, q: SearchRequest) -> SearchPage:
        """The page of what the asker may read; `rights_unknown`: the roster did not answer
        in time, so this is what the public may read (the asker may be shown more later)."""
        filters = filters_from(query=q.query, theme=q.theme, country=q.country, region=q.region, period=q.period,
                               status=q.status, kind=q.kind)
        viewer = await self.rights.viewer(q.person_id)
        found = await search.find(self.db, viewer=viewer or Viewer(), filters=filters, limit=q.limit, offset=q.offset)
        return SearchPage(total=found.total, more_than=COUNT_CAP if found.more_than_counted else None,
                          newest_first=found.newest_first, offset=q.offset, items=[card(i) for i in found.items],
                          rights_unknown=viewer is None)

    async def aars(self, q: AarsRequest) -> OwedAars:
        async with self.db.read() as session:
            owed = await store.open_aars(session, q.person_id)
        return OwedAars([OwedAar(aar_id=a.id, country=a.country, country_name=country_name(a.country),
                                 operation=a.operation, due_on=a.due_on) for a in owed])

    async def serve(self, nc: NATS, *, version: str) -> Service:
        service = await add_service(nc, name="lessons", version=version, description="CMCoord lessons",
                                    queue_group="lessons")
        await answer(service, contract.SEARCH, self.search)
        await answer(service, contract.AARS, self.aars)
        return service
