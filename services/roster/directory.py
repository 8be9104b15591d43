"""The directory of current deployments and the contacts search over it.

`DirectorySnapshot` is built from the store for one day and kept in memory by
the query endpoints until the roster revision or the day changes; a search is
then pure Python over at most a few thousand entries.
"""

from __future__ import annotations

import bisect
import heapq
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from sys import intern
from typing import NamedTuple

from rapidfuzz import fuzz, process
from sqlalchemy import Table, select
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from services.roster.models import Deployment, Person, Post, Training, split_list
from shared.contracts.roster import ContactCard, ContactsPage, DeploymentCard, GapCard, SearchMatch
from shared.countries import name_key, resolve_country
from shared.exports import csv_text
from shared.i18n import reader_locale
from shared.languages import language_key, resolve_language
from shared.regions import REGIONS, country_name, fold, resolve_region

REQUIRED_COURSE = "UN-CMCoord Course"
FLAG_MANY_HATS = "more_than_two_hats"
FLAG_NO_COURSE = "no_cmcoord_course"
MAX_HATS = 2
GAPS_SHOWN = 5  # gapped posts a contacts answer details (a region may have many)
CARDS_KEPT = 4096  # contact cards a snapshot keeps made (those shown last): ~2.6 KB each, ~10 MB in all

# What a reader may type for a role, in English, French and Arabic (keys as shared.countries.name_key makes them),
# among them each role's label as the bot shows it (its catalogues' translation of the role), as shown.
ROLE_FORMS: dict[str, tuple[str, ...]] = {
    "cmcoord_officer": ("cmcoord officer", "cmcoord officers", "humanitarian civil-military coordination officer",
                        "charge de coordination civilo-militaire", "chargee de coordination civilo-militaire",
                        "chargé(e) de coordination civilo-militaire", "مسؤول التنسيق المدني العسكري",
                        "spécialiste de la coordination civilo-militaire",
                        "spécialistes de la coordination civilo-militaire"),
    "focal_point": ("focal point", "focal points", "point focal", "points focaux", "جهة اتصال", "منسق اتصال",
                    "جهة تنسيق"),
    "surge": ("surge", "surge staff", "renfort", "renforts", "دعم طارئ"),
    "regional_adviser": ("regional adviser", "regional advisers", "regional advisor", "regional advisors", "adviser",
                         "advisor", "conseiller regional", "conseillere regionale", "conseillers regionaux",
                         "مستشار اقليمي", "المستشار الاقليمي"),
    "cmcs_desk": ("cmcs desk", "cmcs", "desk", "bureau cmcs", "bureau de la CMCS", "مكتب cmcs"),
}
_ROLE_KEYS = {name_key(form): role for role, forms in ROLE_FORMS.items() for form in (role, *forms)}


def resolve_role(text: str) -> str | None:
    """'surge', 'regional adviser', 'point focal', 'regional_adviser' -> the role's id."""
    return _ROLE_KEYS.get(name_key(text))


def flags_for(*, hats: list[str], courses: set[str], deployed: bool, required_course: str = REQUIRED_COURSE) -> list[str]:
    flags = []
    if len(hats) > MAX_HATS:
        flags.append(FLAG_MANY_HATS)
    if deployed and fold(required_course) not in {fold(c) for c in courses}:
        flags.append(FLAG_NO_COURSE)
    return flags


class Held(NamedTuple):
    """A deployment active on the snapshot's day, as the directory keeps it: plain values, made a
    `DeploymentCard` when an answer shows it."""

    deployment_id: uuid.UUID
    post_id: uuid.UUID
    country: str
    duty_station: str
    region: str
    title: str
    role: str
    start: date
    planned_end: date
    hats: tuple[str, ...]

    def card(self) -> DeploymentCard:
        return DeploymentCard(deployment_id=self.deployment_id, post_id=self.post_id, country=self.country,
                              country_name=country_name(self.country), duty_station=self.duty_station,
                              region=self.region, title=self.title, role=self.role, start=self.start,
                              planned_end=self.planned_end, hats=list(self.hats))


@dataclass(frozen=True, slots=True)
class Entry:
    """A person as the directory indexes them: plain values (the `ContactCard` is made when an answer
    shows it), the keys as tuples without repeats, not sets. The snapshot holds one entry per person
    on the roster: fifty thousand pydantic cards took 4.1 KB a person and left 805,000 objects for
    the garbage collector to walk (375,000 now); a frozenset of one takes four times a tuple's memory."""

    person_id: uuid.UUID
    name: str
    organisation: str
    email: str
    phone: str
    telegram_username: str
    languages: tuple[str, ...]  # as the roster has them
    timezone: str
    deployments: tuple[Held, ...]  # active on the snapshot's day, by start
    other_hats: tuple[str, ...]
    flags: tuple[str, ...]
    name_key: str
    org_key: str
    countries: tuple[str, ...]
    regions: tuple[str, ...]
    stations: tuple[str, ...]
    hats: tuple[str, ...] = ()  # name keys of the hats held on current deployments
    roles: tuple[str, ...] = ()  # roles of current deployments
    language_keys: tuple[str, ...] = ()  # shared.languages.language_key of each language spoken
    locale: str = "en"  # what notifications are written in (shared.i18n.reader_locale)

    @property
    def card(self) -> ContactCard:
        return ContactCard(person_id=self.person_id, name=self.name, organisation=self.organisation, email=self.email,
                           phone=self.phone, telegram_username=self.telegram_username, languages=list(self.languages),
                           timezone=self.timezone, deployments=[d.card() for d in self.deployments],
                           other_hats=list(self.other_hats), flags=list(self.flags))


@dataclass(frozen=True)
class Gap:
    """A post nobody holds on the snapshot's day, since `since` (the rotation scan's record)."""

    post_id: uuid.UUID
    country: str
    duty_station: str
    region: str
    title: str
    since: date


@dataclass
class DirectorySnapshot:
    """Everyone on the roster with their deployments active on `day`, indexed for search, and
    the posts gapped that day."""

    day: date
    revision: int
    entries: list[Entry]  # sorted by folded name
    gaps: list[Gap] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_person = {e.person_id: i for i, e in enumerate(self.entries)}
        self._cards: OrderedDict[int, ContactCard] = OrderedDict()  # the last CARDS_KEPT made, by entry
        self._by_region: dict[str, list[int]] = {}
        self._by_country: dict[str, list[int]] = {}
        self._by_org: dict[str, list[int]] = {}
        self._by_station: dict[str, list[int]] = {}
        self._by_token: dict[str, list[int]] = {}
        self._by_hat: dict[str, list[int]] = {}
        self._by_hat_token: dict[str, set[int]] = {}
        self._by_role: dict[str, list[int]] = {}
        self._by_language: dict[str, list[int]] = {}
        self._advisers: dict[str, list[int]] = {}  # region -> its regional advisers
        self._by_post: dict[uuid.UUID, list[int]] = {}  # who holds each post (notify asks at every handover)
        self._desk: list[int] = []
        for i, e in enumerate(self.entries):
            for region in e.regions:
                self._by_region.setdefault(region, []).append(i)
            for country in e.countries:
                self._by_country.setdefault(country, []).append(i)
            for station in e.stations:
                self._by_station.setdefault(station, []).append(i)
            if e.org_key:
                self._by_org.setdefault(e.org_key, []).append(i)
            for token in set(e.name_key.split()):
                self._by_token.setdefault(token, []).append(i)
            for hat in e.hats:
                self._by_hat.setdefault(hat, []).append(i)
                for token in hat.split():
                    self._by_hat_token.setdefault(token, set()).add(i)
            for role in e.roles:
                self._by_role.setdefault(role, []).append(i)
            for language in e.language_keys:
                self._by_language.setdefault(language, []).append(i)
            for dep in e.deployments:
                holders = self._by_post.setdefault(dep.post_id, [])
                if not holders or holders[-1] != i:
                    holders.append(i)
                if dep.role == "regional_adviser":
                    self._advisers.setdefault(dep.region, []).append(i)
                elif dep.role == "cmcs_desk" and (not self._desk or self._desk[-1] != i):
                    self._desk.append(i)
        self._tokens = sorted(self._by_token)
        self._gap_stations: dict[str, list[Gap]] = {}
        for gap in self.gaps:
            self._gap_stations.setdefault(fold(gap.duty_station), []).append(gap)

    @property
    def deployed(self) -> list[Entry]:
        return [e for e in self.entries if e.deployments]

    def holders(self, post_id: uuid.UUID) -> list[tuple[Entry, Held]]:
        """Who holds the post on the snapshot's day, with their deployment on it, in the entries' order."""
        return [(e, d) for e in (self.entries[i] for i in self._by_post.get(post_id, ())) for d in e.deployments
                if d.post_id == post_id]

    def card(self, person_id: uuid.UUID) -> ContactCard | None:
        i = self._by_person.get(person_id)
        return None if i is None else self._card(i)

    def _card(self, i: int) -> ContactCard:
        """The card of entries[i]: made when first shown, kept while it is among the CARDS_KEPT last
        shown (a card, ~2.6 KB, takes more than its entry and its share of the indexes together;
        validating one anew for every answer took a quarter of a contacts query's time)."""
        card = self._cards.get(i)
        if card is None:
            card = self._cards[i] = self.entries[i].card
            if len(self._cards) > CARDS_KEPT:
                self._cards.popitem(last=False)
        else:
            self._cards.move_to_end(i)
        return card

    def search(self, query: str, *, offset: int = 0, limit: int = 10) -> ContactsPage:
        ranked, matched, gaps = self._rank(query)
        # only the requested page is ordered: (best score, then name order)
        page = heapq.nsmallest(offset + limit, ranked.items(), key=lambda item: (-item[1], item[0]))[offset:]
        return ContactsPage(query=query, total=len(ranked), offset=offset, items=[self._card(i) for i, _ in page],
                            matched=matched, gaps=[self._gap_card(g) for g in gaps[:GAPS_SHOWN]],
                            gaps_total=len(gaps))

    def match(self, query: str) -> list[Entry]:
        ranked, _, _ = self._rank(query)
        return [self.entries[i] for i, _ in sorted(ranked.items(), key=lambda item: (-item[1], item[0]))]

    def _rank(self, query: str) -> tuple[dict[int, float], list[SearchMatch], list[Gap]]:
        """Country (English, French or Arabic name, ISO code), region, organisation, duty
        station, hat, role, language spoken or name; case- and accent-insensitive, names by
        word prefix and then fuzzily for misspellings. Places and organisations rank first,
        then hats and roles, languages, then names by closeness. Also: what the query was
        understood as, and the gapped posts it names (by duty station, country or region)."""
        key = fold(query)
        ranked: dict[int, float] = {}
        matched: list[SearchMatch] = []
        if not key:
            return ranked, matched, []

        def take(indexes: list[int] | set[int], score: float, kind: str = "", value: str = "") -> None:
            for i in indexes:
                if ranked.get(i, -1.0) < score:
                    ranked[i] = score
            if kind and indexes and all(m.kind != kind or m.value != value for m in matched):
                matched.append(SearchMatch(kind=kind, value=value))

        gaps = list(self._gap_stations.get(key, []))
        region = resolve_region(query)
        if region:
            take(self._by_region.get(region, []), 300, "region", region)
            gaps += [g for g in self.gaps if g.region == region]
        country = resolve_country(query)
        if country:
            take(self._by_country.get(country, []), 300, "country", country)
            gaps += [g for g in self.gaps if g.country == country]
        take(self._by_org.get(key, []), 250, "organisation", query.strip())
        for org, indexes in self._by_org.items():
            if org.startswith(key + " "):
                take(indexes, 240)
        take(self._by_station.get(key, []), 240, "station", query.strip())
        hat = name_key(query)
        take(self._by_hat.get(hat, []), 230, "hat", query.strip())
        hat_words = hat.split()
        if hat_words:
            by_words = set.intersection(*(self._by_hat_token.get(w, set()) for w in hat_words))
            take(by_words, 220, "hat", query.strip())
        role = resolve_role(query)
        if role:
            take(self._by_role.get(role, []), 230, "role", role)
        language = resolve_language(query)
        take(self._by_language.get(language or hat, []), 210, "language", language or query.strip())
        words = key.split()
        exact = self._name_hits(words, prefix=False)
        take(exact, 200)
        take(self._name_hits(words, prefix=True) - exact, 150)
        if not ranked and len(key) >= 4:
            take(self._fuzzy_name_hits(words), 100)
        if country and not ranked:  # "nobody in Chad" says more than "nobody found for Tchad"
            matched.append(SearchMatch(kind="country", value=country))
        unique = list({g.post_id: g for g in sorted(gaps, key=lambda g: (g.since, g.duty_station))}.values())
        return ranked, matched, unique

    def _gap_card(self, gap: Gap) -> GapCard:
        cover, role = self._advisers.get(gap.region, []), "regional_adviser"
        if not cover:
            cover, role = self._desk, "cmcs_desk" if self._desk else ""
        return GapCard(post_id=gap.post_id, country=gap.country, country_name=country_name(gap.country),
                       duty_station=gap.duty_station, region=gap.region, title=gap.title, gapped_since=gap.since,
                       covered_by=[self._card(i) for i in dict.fromkeys(cover)], cover_role=role)

    def _name_hits(self, words: list[str], *, prefix: bool) -> set[int]:
        """People whose name has every word of the query (as a word, or a word's start)."""
        hits: set[int] | None = None
        for word in words:
            if prefix:
                lo = bisect.bisect_left(self._tokens, word)
                found: set[int] = set()
                for token in self._tokens[lo:]:
                    if not token.startswith(word):
                        break
                    found.update(self._by_token[token])
            else:
                found = set(self._by_token.get(word, ()))
            hits = found if hits is None else hits & found
            if not hits:
                return set()
        return hits or set()

    def _fuzzy_name_hits(self, words: list[str]) -> set[int]:
        hits: set[int] | None = None
        for word in words:
            found: set[int] = set()
            for token, _, _ in process.extract(word, self._tokens, scorer=fuzz.ratio, score_cutoff=80, limit=20):
                found.update(self._by_token[token])
            hits = found if hits is None else hits & found
        return hits or set()

    def directory(self, *, region: str | None = None, country: str | None = None) -> list[tuple[Entry, Held]]:
        rows = [(entry, dep) for entry in self.deployed for dep in entry.deployments
                if (not region or dep.region == region) and (not country or dep.country == country)]
        rows.sort(key=lambda r: (r[1].region, r[1].country, r[1].duty_station, r[0].name))
        return rows


def _distinct(values: Iterable[str]) -> tuple[str, ...]:
    """Each value once, in order, as the one string object the snapshot keeps for it (sys.intern): a
    region's or a country's code read from fifty thousand rows is then held once, not fifty thousand times."""
    return tuple(dict.fromkeys(intern(v) for v in values))


async def load_snapshot(
    session: AsyncSession, *, day: date, revision: int, required_course: str = REQUIRED_COURSE
) -> DirectorySnapshot:
    """The directory on `day`, read as plain rows (no ORM objects: fifty thousand people in a few seconds)."""
    conn = await session.connection()
    person, post, deployment, training = (_table(m) for m in (Person, Post, Deployment, Training))
    courses: dict[uuid.UUID, set[str]] = {}
    for person_id, course in await conn.execute(select(training.c.person_id, training.c.course)):
        courses.setdefault(person_id, set()).add(course)
    active = await conn.execute(
        select(deployment.c.id, deployment.c.person_id, deployment.c.role, deployment.c.start, deployment.c.planned_end,
               deployment.c.hats, post.c.id, post.c.country, post.c.duty_station, post.c.region, post.c.title)
        .join(post, deployment.c.post_id == post.c.id).where(Deployment.on(day)))
    by_person: dict[uuid.UUID, list[Held]] = {}
    held: set[uuid.UUID] = set()
    for dep_id, person_id, role, start, planned_end, hats, post_id, country, station, region, title in active:
        held.add(post_id)
        by_person.setdefault(person_id, []).append(Held(  # the values many rows repeat are held once (sys.intern)
            deployment_id=dep_id, post_id=post_id, country=intern(country), duty_station=intern(station),
            region=intern(region), title=intern(title), role=intern(role), start=start, planned_end=planned_end,
            hats=tuple(intern(h) for h in split_list(hats))))
    entries = []
    # a party's liaison is on the roster to be told, not to be found: never in the directory nor in /contacts
    people = await conn.execute(select(person.c.id, person.c.name, person.c.organisation, person.c.email,
                                       person.c.phone, person.c.telegram_username, person.c.languages,
                                       person.c.timezone, person.c.locale).where(person.c.liaison.is_(False)))
    for person_id, name, organisation, email, phone, telegram_username, languages, timezone, chosen in people:
        deps = tuple(sorted(by_person.get(person_id, ()), key=lambda d: d.start))
        hats = sorted({h for d in deps for h in d.hats})
        spoken = tuple(intern(language) for language in split_list(languages))
        entries.append(Entry(
            person_id=person_id, name=name, organisation=intern(organisation), email=email, phone=phone,
            telegram_username=telegram_username, languages=spoken, timezone=intern(timezone), deployments=deps,
            other_hats=tuple(hats), flags=tuple(flags_for(hats=hats, courses=courses.get(person_id, set()),
                                                          deployed=bool(deps), required_course=required_course)),
            name_key=fold(name), org_key=intern(fold(organisation)),
            countries=_distinct(d.country for d in deps),
            regions=_distinct(d.region for d in deps),
            stations=_distinct(fold(d.duty_station) for d in deps),
            hats=_distinct(name_key(h) for h in hats),
            roles=_distinct(d.role for d in deps),
            language_keys=_distinct(language_key(language) for language in spoken),
            locale=reader_locale(chosen, spoken),
        ))
    entries.sort(key=lambda e: e.name_key)
    gapped = await conn.execute(
        select(post.c.id, post.c.country, post.c.duty_station, post.c.region, post.c.title, post.c.gapped_since)
        .where(post.c.gapped_since.is_not(None), post.c.gapped_since <= day))
    gaps = [Gap(post_id=post_id, country=country, duty_station=station, region=region, title=title, since=since)
            for post_id, country, station, region, title, since in gapped if post_id not in held]
    return DirectorySnapshot(day=day, revision=revision, entries=entries, gaps=gaps)


def _table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


def region_name(code: str) -> str:
    region = REGIONS.get(code)
    return region.name if region else code


# The published directory as a table: (column header, HXL hashtag), one row per current deployment.
# CSV: the country as ISO 3166 alpha-2. HXL: alpha-3 under `#country+code`, as HDX tools expect, and
# alpha-2 in a last column of its own (`+v_iso2`); it comes after, so a tool asking for
# `#country+code` (which matches any column with more attributes) finds the alpha-3 one first.
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "#contact+name"), ("email", "#contact+email"), ("phone", "#contact+phone"),
    ("telegram", "#contact+telegram"), ("organisation", "#org"), ("country", "#country+code+v_iso2"),
    ("country_name", "#country+name"), ("duty_station", "#loc"), ("region", "#region+code"),
    ("post_title", "#meta+post"), ("role", "#meta+role"), ("start", "#date+start"), ("planned_end", "#date+end"),
    ("hats", "#meta+hats"), ("flags", "#meta+flags"),
)
HXL_COLUMNS: tuple[tuple[str, str], ...] = (
    *CSV_COLUMNS[:5], ("country_iso3", "#country+code"), *CSV_COLUMNS[6:], CSV_COLUMNS[5],
)
PHONE = "phone"


def directory_table(rows: Sequence[Mapping[str, object]], *, hxl: bool) -> str:
    """The directory as CSV, or as HXL-tagged CSV (the hashtag row under the header),
    every cell neutralised against formula injection (shared/exports.py)."""
    columns = HXL_COLUMNS if hxl else CSV_COLUMNS
    names = [name for name, _ in columns]
    head: list[list[object]] = [list(names)] + ([[tag for _, tag in columns]] if hxl else [])
    return csv_text([*head, *([row[name] for name in names] for row in rows)],
                    phone_columns={names.index(PHONE)})
