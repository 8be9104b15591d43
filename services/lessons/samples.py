"""Generated lessons for tests, benchmarks and demos: plausible field observations from
many countries, every theme, classification and review status, loaded in bulk (the
full-text index follows: triggers on SQLite, a generated column on PostgreSQL)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from services.lessons.models import Item, ItemTheme
from services.lessons.search import fill_index
from shared.regions import region_for_country
from shared.store import Database
from shared.themes import THEMES, reference

COUNTRIES = ("ML", "NE", "BF", "TD", "NG", "CD", "SD", "SS", "ET", "SO", "MZ", "YE", "SY", "LY", "AF", "MM", "PH",
             "TH", "HT", "CO", "UA")
MARKERS = ("bridge", "airstrip", "ferry", "helipad", "warehouse", "roadblock")  # each item names one place
ACTORS = ("the armed forces", "a non-state armed group", "the peacekeeping mission", "the local police",
          "a militia", "the national disaster agency", "the air force", "a coalition liaison officer")
EVENTS = ("turned back a humanitarian convoy", "asked for the list of beneficiaries", "offered an armed escort",
          "delayed the acknowledgement of a notification", "requested a meeting with the cluster leads",
          "shared its patrol schedule", "used military helicopters for an evacuation", "closed the route for days",
          "distributed relief items itself", "trained staff on the guidelines")
EFFECTS = ("Deliveries were late by a week.", "Partners were confused about the principles.",
           "Access improved after the meeting.", "The acknowledgement came only after escalation.",
           "Civilians were put at risk.", "The civil-military coordination forum resolved it.",
           "The coordination cell had no record of the request.", "Nobody knew the focal point.")
WEIGHTS = {"classification": (("public", 30), ("community", 55), ("restricted", 15)),
           "status": (("new", 60), ("identified", 25), ("learned", 15)),
           "kind": (("observation", 80), ("aar", 20))}


def _pick(rng: random.Random, name: str) -> str:
    values, weights = zip(*WEIGHTS[name], strict=True)
    return rng.choices(values, weights=weights)[0]


def generate(n: int, *, seed: int = 7, start: datetime = datetime(2025, 1, 1, tzinfo=UTC), days: int = 730,
             authors: int = 200) -> list[Item]:
    rng = random.Random(seed)
    people = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(authors)]
    themes = list(THEMES)
    items = []
    days_in = sorted(rng.uniform(0, days) for _ in range(n))  # recorded in time order, as they arrive
    for i in range(n):
        item_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        country = rng.choice(COUNTRIES)
        place = rng.choice(MARKERS)
        body = (f"Near the {place}, {rng.choice(ACTORS)} {rng.choice(EVENTS)}. {rng.choice(EFFECTS)} "
                f"{rng.choice(EFFECTS)}")
        kind = _pick(rng, "kind")
        items.append(Item(
            seq=i + 1, id=item_id, reference=reference("A" if kind == "aar" else "R", item_id), kind=kind,
            author_id=rng.choice(people), country=country, region=region_for_country(country),
            themes=" ".join(rng.sample(themes, rng.choice((1, 1, 2, 3)))),
            classification=_pick(rng, "classification"), status=_pick(rng, "status"),
            title=body.split(".")[0][:120], body=body,
            created_at=start + timedelta(days=days_in[i])))
        fill_index(items[-1])
    return items


async def load(db: Database, items: Sequence[Item], *, chunk: int = 2000) -> None:
    """Insert generated items as they are (ids and row ids included), in large statements."""
    async with db.write() as session:
        for at in range(0, len(items), chunk):
            part = items[at: at + chunk]
            await session.exec(insert(Item.__table__), params=[i.model_dump() for i in part])  # type: ignore[attr-defined, call-overload]
            await session.exec(insert(ItemTheme.__table__),  # type: ignore[attr-defined, call-overload]
                               params=[{"theme": t, "item_seq": i.seq} for i in part for t in i.theme_list])
        if not db.is_sqlite:  # the row ids were given: the sequence moves past them
            await session.exec(text("SELECT setval(pg_get_serial_sequence('lesson_item', 'seq'), "  # type: ignore[call-overload]
                                    "(SELECT max(seq) FROM lesson_item))"))
