"""The queries lessons answers (`cmcoord.lessons.svc.<verb>`): requests, replies, subjects.

A search says only who asks (`person_id`; none for the public); what that person may read
comes from the roster (its `rights` query), never from the request."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import ConfigDict, Field, RootModel

from shared.contracts.query import IsoDateTime, Query, Reply, Request


class SearchRequest(Request):
    # A `viewer` (rights claimed by the asker, as bots before this contract sent) is ignored
    # like any unknown field: rights come from the roster.
    person_id: uuid.UUID | None = Field(default=None, description="who asks; none: the public")
    query: str = Field(default="", max_length=300)
    theme: str | None = None
    country: str | None = None
    region: str | None = None
    period: str | None = None
    status: str | None = None
    kind: str | None = None
    limit: int = Field(default=5, ge=1, le=50)
    offset: int = Field(default=0, ge=0)


class ItemCard(Reply):
    """An item as a search shows it (`snippet`: the start of its text)."""

    item_id: uuid.UUID
    reference: str
    kind: str  # observation | aar
    title: str
    snippet: str
    country: str
    country_name: str
    region: str | None
    themes: list[str]
    classification: str
    status: str
    action: str
    created_at: IsoDateTime


class SearchPage(Reply):
    """A page of what the asker may read. `more_than`: the count stopped there (None: `total` is exact);
    `rights_unknown`: the roster did not answer in time, so this is what the public may read."""

    total: int
    more_than: int | None
    newest_first: bool
    offset: int
    items: list[ItemCard]
    rights_unknown: bool = False


class AarsRequest(Request):
    person_id: uuid.UUID


class OwedAar(Reply):
    aar_id: uuid.UUID
    country: str
    country_name: str
    operation: str
    due_on: date


class OwedAars(RootModel[list[OwedAar]]):
    model_config = ConfigDict(frozen=True)


SEARCH = Query("lessons", "search", SearchRequest, SearchPage,
               "A page of the observations and lessons the asker may read (400: a filter not understood).")
AARS = Query("lessons", "aars", AarsRequest, OwedAars, "The AARs a person owes, oldest due first.")

QUERIES = (SEARCH, AARS)
