"""Roster import from CSV or HXL-tagged CSV.

Parsing and validation are pure (`parse_roster`); `plan_import` compares the
rows with the database; `apply_plan` writes them in one transaction. Any invalid
row means nothing is written.

Plain CSV columns (header names, any order, case-insensitive):
    name*, email*, phone, telegram, organisation, languages, timezone,
    country, duty_station, region, post_title, role, start, planned_end,
    actual_end, hats, trainings
HXL hashtags (a row of hashtags under, or instead of, the header):
    #contact+name, #contact+email, #contact+phone, #contact+telegram, #org,
    #meta+languages, #meta+timezone, #country+code, #loc, #region+code,
    #meta+post, #meta+role, #date+start, #date+end, #date+end+actual,
    #meta+hats, #meta+training
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from shared.events import ROLES
from shared.regions import (
    REGIONS,
    fold,
    region_for_country,
    resolve_country,
    resolve_region,
)

FIELDS = (
    "name",
    "email",
    "phone",
    "telegram",
    "organisation",
    "languages",
    "timezone",
    "country",
    "duty_station",
    "region",
    "post_title",
    "role",
    "start",
    "planned_end",
    "actual_end",
    "hats",
    "trainings",
)

_ALIASES = {"organization": "organisation", "org": "organisation", "telegram_username": "telegram", "title": "post_title"}

# (hashtag, attributes that must be present, attributes that must be absent) -> field;
# the first matching pattern wins, so the specific ones come first.
HXL_PATTERNS: tuple[tuple[str, frozenset[str], frozenset[str], str], ...] = tuple(
    (tag, frozenset(inc), frozenset(exc), name)
    for tag, inc, exc, name in (
        ("#contact", {"name"}, set(), "name"),
        ("#contact", {"email"}, set(), "email"),
        ("#contact", {"phone"}, set(), "phone"),
        ("#contact", {"telegram"}, set(), "telegram"),
        ("#org", set(), set(), "organisation"),
        ("#meta", {"languages"}, set(), "languages"),
        ("#meta", {"timezone"}, set(), "timezone"),
        ("#country", set(), set(), "country"),
        ("#loc", set(), set(), "duty_station"),
        ("#region", set(), set(), "region"),
        ("#meta", {"post"}, set(), "post_title"),
        ("#meta", {"role"}, set(), "role"),
        ("#date", {"start"}, set(), "start"),
        ("#date", {"end", "actual"}, set(), "actual_end"),
        ("#date", {"end"}, {"actual"}, "planned_end"),
        ("#meta", {"hats"}, set(), "hats"),
        ("#meta", {"training"}, set(), "trainings"),
    )
)

DEPLOYMENT_FIELDS = ("country", "duty_station", "post_title", "role", "start", "planned_end")


class RosterFileError(Exception):
    """The file cannot be read at all (not a per-row problem)."""


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class PersonData:
    email: str
    name: str
    phone: str
    telegram_username: str
    organisation: str
    languages: tuple[str, ...]
    timezone: str | None


@dataclass(frozen=True)
class DeploymentData:
    country: str
    duty_station: str
    region: str
    title: str
    role: str
    start: date
    planned_end: date
    actual_end: date | None
    hats: tuple[str, ...]

    @property
    def end(self) -> date:
        return self.actual_end or self.planned_end


@dataclass(frozen=True)
class RosterRow:
    line: int
    person: PersonData
    deployment: DeploymentData | None
    trainings: tuple[tuple[str, date | None], ...]


@dataclass
class ParsedRoster:
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    hxl: bool = False


def parse_roster(text: str) -> ParsedRoster:
    """Read and validate every row; errors carry the file's line numbers."""
    records = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not records:
        raise RosterFileError("the file is empty")
    columns, first_data, hxl = _columns(records)
    result = ParsedRoster(hxl=hxl)
    missing = [f for f in ("name", "email") if f not in columns.values()]
    if missing:
        raise RosterFileError(f"missing required column(s): {', '.join(missing)}")
    seen: dict[tuple[str, str, str, str, date], int] = {}
    for index in range(first_data, len(records)):
        line = index + 1
        raw = records[index]
        if not any(cell.strip() for cell in raw):
            continue
        values = {name: raw[i].strip() if i < len(raw) else "" for i, name in columns.items()}
        row, errors = _validate(line, values)
        result.errors.extend(errors)
        if row is None:
            continue
        if row.deployment is not None:
            key = (row.person.email, row.deployment.country, row.deployment.duty_station, row.deployment.title,
                   row.deployment.start)
            if key in seen:
                result.errors.append(RowError(line, f"same deployment as line {seen[key]}"))
                continue
            seen[key] = line
        result.rows.append(row)
    result.errors.extend(_overlaps_in_file(result.rows))
    result.errors.sort(key=lambda e: e.line)
    return result


def _columns(records: list[list[str]]) -> tuple[dict[int, str], int, bool]:
    for index, record in enumerate(records[:3]):
        cells = [c.strip() for c in record]
        if any(cells) and all(c.startswith("#") for c in cells if c):
            return _hxl_columns(cells), index + 1, True
    header = [fold(c).replace(" ", "_").replace("-", "_") for c in records[0]]
    columns: dict[int, str] = {}
    for i, name in enumerate(header):
        name = _ALIASES.get(name, name)
        if name in FIELDS:
            columns[i] = name
    return columns, 1, False


def _hxl_columns(cells: list[str]) -> dict[int, str]:
    columns: dict[int, str] = {}
    for i, cell in enumerate(cells):
        parts = cell.replace(" ", "").lower().split("+")
        tag, attrs = parts[0], set(parts[1:])
        for pattern_tag, include, exclude, name in HXL_PATTERNS:
            if tag == pattern_tag and include <= attrs and not (exclude & attrs):
                if name not in columns.values():
                    columns[i] = name
                break
    return columns


def _validate(line: int, v: dict[str, str]) -> tuple[RosterRow | None, list[RowError]]:
    errors: list[RowError] = []

    def err(message: str) -> None:
        errors.append(RowError(line, message))

    name = v.get("name", "")
    if not name:
        err("name is empty")
    email = ""
    try:
        email = validate_email(v.get("email", ""), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        err(f"bad email {v.get('email', '')!r}: {exc}")
    tz = v.get("timezone") or None
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            err(f"unknown time zone {tz!r} (use an IANA name such as Africa/Bamako)")
    person = PersonData(
        email=email,
        name=name,
        phone=v.get("phone", ""),
        telegram_username=v.get("telegram", "").lstrip("@"),
        organisation=v.get("organisation", ""),
        languages=tuple(_split(v.get("languages", ""))),
        timezone=tz,
    )

    trainings: list[tuple[str, date | None]] = []
    for item in _split(v.get("trainings", "")):
        course, _, when = item.partition("@")
        completed = _date(when, "training date", err) if when.strip() else None
        trainings.append((course.strip(), completed))

    deployment = None
    if any(v.get(f) for f in DEPLOYMENT_FIELDS):
        missing = [f for f in DEPLOYMENT_FIELDS if not v.get(f)]
        if missing:
            err(f"a deployment needs {', '.join(missing)}")
        country = resolve_country(v.get("country", "")) if v.get("country") else None
        if v.get("country") and country is None:
            err(f"unknown country {v['country']!r} (use ISO 3166 codes such as ML or MLI)")
        region = None
        if v.get("region"):
            region = resolve_region(v["region"])
            if region is None:
                err(f"unknown region {v['region']!r} (one of {', '.join(REGIONS)})")
        elif country:
            region = region_for_country(country)
            if region is None:
                err(f"no default region for {country}: add a region column")
        role = _role(v.get("role", ""))
        if v.get("role") and role is None:
            err(f"unknown role {v['role']!r} (one of {', '.join(ROLES)})")
        start = _date(v.get("start", ""), "start", err) if v.get("start") else None
        planned_end = _date(v.get("planned_end", ""), "planned_end", err) if v.get("planned_end") else None
        actual_end = _date(v.get("actual_end", ""), "actual_end", err) if v.get("actual_end") else None
        if start and planned_end and planned_end < start:
            err(f"end {planned_end} is before start {start}")
        if start and actual_end and actual_end < start:
            err(f"actual end {actual_end} is before start {start}")
        if not errors and country and region and role and start and planned_end:
            deployment = DeploymentData(
                country=country,
                duty_station=v["duty_station"],
                region=region,
                title=v["post_title"],
                role=role,
                start=start,
                planned_end=planned_end,
                actual_end=actual_end,
                hats=tuple(_split(v.get("hats", ""))),
            )
    if errors:
        return None, errors
    return RosterRow(line, person, deployment, tuple(trainings)), []


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(";") if p.strip()]


def _date(text: str, what: str, err: object) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        err(f"{what} {text!r} is not a date (YYYY-MM-DD)")  # type: ignore[operator]
        return None


def _role(text: str) -> str | None:
    key = fold(text).replace("-", " ").replace(" ", "_")
    key = {"cmcoord": "cmcoord_officer", "officer": "cmcoord_officer", "adviser": "regional_adviser",
           "advisor": "regional_adviser", "regional_advisor": "regional_adviser", "desk": "cmcs_desk",
           "surge_staff": "surge"}.get(key, key)
    return key if key in ROLES else None


def overlaps(a_start: date, a_end: date, b_start: date, b_end: date) -> bool:
    return a_start <= b_end and b_start <= a_end


def _overlaps_in_file(rows: list[RosterRow]) -> list[RowError]:
    errors: list[RowError] = []
    by_person: dict[str, list[RosterRow]] = {}
    for row in rows:
        if row.deployment is not None:
            by_person.setdefault(row.person.email, []).append(row)
    for person_rows in by_person.values():
        person_rows.sort(key=lambda r: r.deployment.start)  # type: ignore[union-attr]
        for earlier, later in zip(person_rows, person_rows[1:]):
            a, b = earlier.deployment, later.deployment
            assert a is not None and b is not None
            if overlaps(a.start, a.end, b.start, b.end):
                errors.append(
                    RowError(later.line, f"deployment {b.start}..{b.end} overlaps line {earlier.line} ({a.start}..{a.end})")
                )
    return errors


# --- planning against the database -------------------------------------------


@dataclass(frozen=True)
class Change:
    kind: str  # new_person | changed_person | new_deployment | changed_deployment | ended_deployment
    subject: str
    detail: str = ""

    def __str__(self) -> str:
        label = self.kind.replace("_", " ")
        return f"{label:<20} {self.subject}" + (f"  ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class ExistingDeployment(DeploymentData):
    """A deployment already in the store, with its id and its person's email."""

    id: uuid.UUID
    email: str


def plan_changes(
    rows: list[RosterRow],
    people: dict[str, PersonData],
    deployments: list[ExistingDeployment],
) -> tuple[list[Change], list[RowError]]:
    """What the rows would change, and rows that conflict with stored deployments."""
    changes: list[Change] = []
    errors: list[RowError] = []
    seen_people: set[str] = set()
    stored_by_key = {(d.email, d.country, d.duty_station, d.title, d.start): d for d in deployments}
    stored_by_person: dict[str, list[ExistingDeployment]] = {}
    for d in deployments:
        stored_by_person.setdefault(d.email, []).append(d)
    moved_by_file = _file_keys(rows)
    for row in rows:
        p = row.person
        if p.email not in seen_people:
            seen_people.add(p.email)
            old = people.get(p.email)
            if old is None:
                changes.append(Change("new_person", f"{p.email} {p.name}"))
            else:
                diff = [
                    name
                    for name, new, before in (
                        ("name", p.name, old.name),
                        ("phone", p.phone, old.phone),
                        ("telegram", p.telegram_username, old.telegram_username),
                        ("organisation", p.organisation, old.organisation),
                        ("languages", p.languages, old.languages),
                        ("timezone", p.timezone or old.timezone, old.timezone),
                    )
                    if new != before
                ]
                if diff:
                    changes.append(Change("changed_person", p.email, ", ".join(diff)))
        d = row.deployment
        if d is None:
            continue
        label = f"{p.email} {d.country} {d.duty_station} {d.title} from {d.start}"
        key = (p.email, d.country, d.duty_station, d.title, d.start)
        stored = stored_by_key.get(key)
        for other in stored_by_person.get(p.email, []):
            if other is not stored and overlaps(d.start, d.end, other.start, other.end):
                if (p.email, other.country, other.duty_station, other.title, other.start) in moved_by_file:
                    continue  # the file itself moves that deployment; checked in-file
                errors.append(
                    RowError(
                        row.line,
                        f"deployment {d.start}..{d.end} overlaps the stored deployment in {other.country} "
                        f"{other.duty_station} ({other.start}..{other.end})",
                    )
                )
        if stored is None:
            changes.append(Change("new_deployment", label, f"until {d.planned_end}"))
            continue
        diff = []
        if d.planned_end != stored.planned_end:
            diff.append(f"planned end {stored.planned_end} -> {d.planned_end}")
        if d.role != stored.role:
            diff.append(f"role {stored.role} -> {d.role}")
        if d.hats != stored.hats:
            diff.append("hats")
        if d.actual_end != stored.actual_end:
            if stored.actual_end is None:
                changes.append(Change("ended_deployment", label, f"ended {d.actual_end}"))
            else:
                diff.append(f"actual end {stored.actual_end} -> {d.actual_end}")
        if diff:
            changes.append(Change("changed_deployment", label, "; ".join(diff)))
    return changes, errors


def _file_keys(rows: list[RosterRow]) -> set[tuple[str, str, str, str, date]]:
    return {
        (r.person.email, r.deployment.country, r.deployment.duty_station, r.deployment.title, r.deployment.start)
        for r in rows
        if r.deployment is not None
    }
