"""The directory of current deployments and the contacts search over it.

`DirectorySnapshot` is built from the store for one day and kept in memory by
the query endpoints until the roster revision or the day changes; a search is
then pure Python over at most a few thousand entries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from rapidfuzz import fuzz, process
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.roster.models import (
    ContactCard,
    ContactsPage,
    Deployment,
    DeploymentCard,
    Person,
    Post,
    Training,
    split_list,
)
from shared.regions import REGIONS, country_name, fold, resolve_country, resolve_region

REQUIRED_COURSE = "UN-CMCoord Course"
FLAG_MANY_HATS = "more_than_two_hats"
FLAG_NO_COURSE = "no_cmcoord_course"
MAX_HATS = 2


def flags_for(*, hats: list[str], courses: set[str], deployed: bool, required_course: str = REQUIRED_COURSE) -> list[str]:
    flags = []
    if len(hats) > MAX_HATS:
        flags.append(FLAG_MANY_HATS)
    if deployed and fold(required_course) not in {fold(c) for c in courses}:
        flags.append(FLAG_NO_COURSE)
    return flags


@dataclass(frozen=True)
class Entry:
    card: ContactCard
    name_key: str
    org_key: str
    countries: frozenset[str]
    regions: frozenset[str]
    stations: frozenset[str]


@dataclass
class DirectorySnapshot:
    day: date
    revision: int
    entries: list[Entry]

    @property
    def deployed(self) -> list[Entry]:
        return [e for e in self.entries if e.card.deployments]

    def search(self, query: str, *, offset: int = 0, limit: int = 10) -> ContactsPage:
        matches = self.match(query)
        return ContactsPage(query=query, total=len(matches), offset=offset,
                            items=[e.card for e in matches[offset : offset + limit]])

    def match(self, query: str) -> list[Entry]:
        """Country, region, organisation, duty station or name; case- and accent-insensitive,
        names fuzzily. Place and organisation matches come first, then names by score."""
        key = fold(query)
        if not key:
            return []
        region = resolve_region(query)
        country = resolve_country(query)
        ranked: dict[uuid.UUID, tuple[float, Entry]] = {}

        def take(entry: Entry, score: float) -> None:
            best = ranked.get(entry.card.person_id)
            if best is None or score > best[0]:
                ranked[entry.card.person_id] = (score, entry)

        for entry in self.entries:
            if region and region in entry.regions:
                take(entry, 300)
            if country and country in entry.countries:
                take(entry, 300)
            if entry.org_key and (entry.org_key == key or entry.org_key.startswith(key + " ")):
                take(entry, 250)
            if key in entry.stations:
                take(entry, 240)
            if key in entry.name_key:
                take(entry, 200 if _word_start(entry.name_key, key) else 150)
        if len(key) >= 4:
            names = [e.name_key for e in self.entries]
            for _, score, index in process.extract(
                key, names, scorer=fuzz.partial_ratio, score_cutoff=85, limit=50
            ):
                take(self.entries[index], score)
        ordered = sorted(ranked.values(), key=lambda item: (-item[0], item[1].card.name))
        return [entry for _, entry in ordered]

    def directory(self, *, region: str | None = None, country: str | None = None) -> list[tuple[ContactCard, DeploymentCard]]:
        rows = []
        for entry in self.deployed:
            for dep in entry.card.deployments:
                if region and dep.region != region:
                    continue
                if country and dep.country != country:
                    continue
                rows.append((entry.card, dep))
        rows.sort(key=lambda r: (r[1].region, r[1].country, r[1].duty_station, r[0].name))
        return rows


def _word_start(text: str, key: str) -> bool:
    return text.startswith(key) or f" {key}" in text


async def load_snapshot(
    session: AsyncSession, *, day: date, revision: int, required_course: str = REQUIRED_COURSE
) -> DirectorySnapshot:
    people = {p.id: p for p in (await session.exec(select(Person))).all()}
    courses: dict[uuid.UUID, set[str]] = {}
    for training in (await session.exec(select(Training))).all():
        courses.setdefault(training.person_id, set()).add(training.course)
    active = await session.exec(
        select(Deployment, Post)
        .join(Post)
        .where(col(Deployment.start) <= day)
        .where((col(Deployment.actual_end).is_(None) & (col(Deployment.planned_end) >= day))
               | (col(Deployment.actual_end) >= day))
    )
    by_person: dict[uuid.UUID, list[DeploymentCard]] = {}
    for dep, post in active.all():
        by_person.setdefault(dep.person_id, []).append(
            DeploymentCard(
                deployment_id=dep.id, post_id=post.id, country=post.country, country_name=country_name(post.country),
                duty_station=post.duty_station, region=post.region, title=post.title, role=dep.role, start=dep.start,
                planned_end=dep.planned_end, hats=split_list(dep.hats),
            )
        )
    entries = []
    for person in people.values():
        deps = sorted(by_person.get(person.id, []), key=lambda d: d.start)
        hats = sorted({h for d in deps for h in d.hats})
        card = ContactCard(
            person_id=person.id, name=person.name, organisation=person.organisation, email=person.email,
            phone=person.phone, telegram_username=person.telegram_username, languages=split_list(person.languages),
            timezone=person.timezone, deployments=deps, other_hats=hats,
            flags=flags_for(hats=hats, courses=courses.get(person.id, set()), deployed=bool(deps),
                            required_course=required_course),
        )
        entries.append(
            Entry(
                card=card,
                name_key=fold(person.name),
                org_key=fold(person.organisation),
                countries=frozenset(d.country for d in deps),
                regions=frozenset(d.region for d in deps),
                stations=frozenset(fold(d.duty_station) for d in deps),
            )
        )
    entries.sort(key=lambda e: e.name_key)
    return DirectorySnapshot(day=day, revision=revision, entries=entries)


def region_name(code: str) -> str:
    region = REGIONS.get(code)
    return region.name if region else code
