"""Roster import: reading a file, validating its rows, planning what they change.

Everything here is pure (no I/O but the bytes handed in):
- `read_table` turns the bytes of a CSV (UTF-8 with or without BOM, cp1252 as
  Excel on Windows writes it, UTF-16 with a BOM; `,`, `;` or tab between cells)
  or an .xlsx workbook into numbered rows of cells;
- `parse_roster` finds the header (a plain header, or an HXL hashtag row
  anywhere in the first 25 rows, as libhxl looks for it) and validates every
  row; each error names its line, column and value;
- `plan_import` compares the rows with a `Snapshot` of the store and says
  exactly what to write: rows to insert and update, the rotation decisions the
  new state calls for, and the events. services/roster/store.py reads the
  snapshot and writes the plan without holding the write lock for long.

Plain CSV columns (header names, any order, case-insensitive):
    name*, email*, phone, telegram, organisation, languages, timezone,
    country, duty_station, region, post_title, role, start, planned_end,
    actual_end, hats, trainings
HXL hashtags (a row of hashtags under, or instead of, the header):
    #contact+name, #contact+email, #contact+phone, #contact+telegram, #org,
    #meta+languages, #meta+timezone, #country+code, #loc, #region+code,
    #meta+post, #meta+role, #date+start, #date+end, #date+end+actual,
    #meta+hats, #meta+training

A column the file does not have leaves that field as it is for people and
deployments already stored (a file of deployment dates must not blank
everyone's phone); an empty cell in a column the file has clears the field.
One e-mail is one person: rows sharing an e-mail (case-insensitive) must agree
on the person's details, else both rows are named in an error — two people are
never merged into one.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from services.roster import rotation
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

_ALIASES = {"organization": "organisation", "org": "organisation", "telegram_username": "telegram", "title": "post_title",
            "e_mail": "email", "mail": "email"}

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

# libhxl looks for the hashtag row in the first 25 rows, and takes a row where at
# least half of the non-empty cells are hashtags; a plain header is looked for there too
HEADER_SEARCH_ROWS = 25
_HASHTAG = re.compile(r"#[A-Za-z][A-Za-z0-9_]*(\s*\+\s*[A-Za-z][A-Za-z0-9_]*)*\s*\Z")
DELIMITERS = (",", ";", "\t")
_DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab"}

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class RosterFileError(Exception):
    """The file cannot be read at all (not a per-row problem)."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str
    column: str = ""  # e.g. "B, email" (its letter, its header); empty when the problem is the whole row

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" + (f" (column {self.column})" if self.column else "")


class PersonData(NamedTuple):
    """A person's details from a row. None: the file has no such column (the stored value stays).
    (Named tuples, not dataclasses: 50,000 rows are built and compared in a second or two.)"""

    email: str
    name: str
    phone: str | None = None
    telegram_username: str | None = None
    organisation: str | None = None
    languages: tuple[str, ...] | None = None
    timezone: str | None = None  # "" (an empty cell): the default zone, the region's or UTC


class DeploymentData(NamedTuple):
    country: str
    duty_station: str
    region: str
    title: str
    role: str
    start: date
    planned_end: date
    actual_end: date | None
    hats: tuple[str, ...] | None  # None: no hats column
    region_given: bool = True  # False: no region column (a stored post keeps its region)
    actual_end_given: bool = True  # False: no actual_end column (a stored end stays)

    @property
    def end(self) -> date:
        return self.actual_end or self.planned_end


class RosterRow(NamedTuple):
    line: int
    person: PersonData
    deployment: DeploymentData | None
    trainings: tuple[tuple[str, date | None], ...]


@dataclass
class ParsedRoster:
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    hxl: bool = False
    encoding: str = ""
    delimiter: str = ""
    columns: tuple[str, ...] = ()  # the fields the file has


# --- reading -------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, str]:
    """The text and the name of its encoding: a BOM decides; else UTF-8 if it decodes, else cp1252."""
    if data.startswith(codecs.BOM_UTF8):
        return _decode(data[len(codecs.BOM_UTF8):], "utf-8", offset=len(codecs.BOM_UTF8)), "UTF-8 with BOM"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode(data, "utf-16"), "UTF-16"
    head = data[:4096]
    if head.count(b"\x00") > len(head) // 4:  # UTF-16 saved without a BOM: every other byte is zero
        return _decode(data, "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be"), "UTF-16"
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    return _decode(data, "cp1252"), "cp1252"


def _decode(data: bytes, encoding: str, *, offset: int = 0) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start:exc.start + 4]
        raise RosterFileError(
            f"line {line}: bytes {bad.hex(' ')} (at byte {exc.start + offset}) are not valid {encoding}: "
            "save the file as CSV UTF-8, or as an Excel workbook (.xlsx)") from exc


@dataclass
class Table:
    """A file's rows: (line number, cells), lazily; `label` names a column for error messages."""

    rows: Iterator[tuple[int, list[str]]]
    kind: str  # csv | xlsx
    encoding: str = ""
    delimiter: str = ""
    lines: int = 0  # about how many rows there are (for progress)


def read_table(data: bytes, *, filename: str = "") -> Table:
    """Rows of a CSV or .xlsx file (a workbook is known by its zip signature or its name).

    A UTF-8 or cp1252 file is decoded a line at a time as it is read (a newline byte is
    never part of another character in either), so a large file is not held twice."""
    if data.startswith(b"PK\x03\x04") or filename.lower().endswith((".xlsx", ".xlsm")):
        return _read_xlsx(data)
    text, encoding = decode(data)  # checks the whole file decodes; the text itself is let go
    if encoding.startswith("UTF-16"):
        return table_from_text(text, encoding=encoding)
    del text
    codec = "cp1252" if encoding == "cp1252" else "utf-8"
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    head = data[start:start + 65536]
    delimiter = sniff_delimiter(head[:head.rfind(b"\n") + 1 or None].decode(codec, errors="replace"))
    return Table(rows=_csv_rows(_byte_lines(data, start, codec), delimiter,
                                lambda: data[start:].decode(codec)),
                 kind="csv", encoding=encoding, delimiter=delimiter, lines=data.count(b"\n") + 1)


def table_from_text(text: str, *, encoding: str = "text") -> Table:
    text = text.lstrip("\ufeff")
    delimiter = sniff_delimiter(text[:65536])
    return Table(rows=_csv_rows(_lines(text), delimiter, lambda: text), kind="csv", encoding=encoding,
                 delimiter=delimiter, lines=text.count("\n") + 1)


def _byte_lines(data: bytes, start: int, codec: str) -> Iterator[str]:
    position, size = start, len(data)
    while position < size:
        end = data.find(b"\n", position)
        if end < 0:
            yield data[position:].decode(codec)
            return
        yield data[position:end + 1].decode(codec)
        position = end + 1


def sniff_delimiter(text: str) -> str:
    """`,`, `;` or tab: the one under which some row of the first 25 has the most columns
    this import knows (names or hashtags); if none has any, the one most frequent in the
    first non-empty line. Excel in French or Arabic writes `;`."""
    head = text[:65536]
    lines = head.split("\n")[:HEADER_SEARCH_ROWS]
    best, best_score = ",", 0
    for delimiter in DELIMITERS:
        records = list(csv.reader(lines, delimiter=delimiter))
        score = max((len(_known_columns(r)) for r in records), default=0)
        if score > best_score:
            best, best_score = delimiter, score
    if best_score:
        return best
    first = next((line for line in lines if line.strip()), "")
    counts = {d: first.count(d) for d in DELIMITERS}
    return max(DELIMITERS, key=lambda d: counts[d]) if any(counts.values()) else ","


def _known_columns(cells: list[str]) -> set[str]:
    if _is_hashtag_row(cells):
        return set(_hxl_columns(cells).values())
    return set(_plain_columns(cells).values())


def _lines(text: str) -> Iterator[str]:
    """Lines split at '\\n' only, so a line count is the count an editor shows (str.splitlines
    would also split at characters such as U+2028 that may sit inside a cell)."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end + 1]
        start = end + 1


def _csv_rows(lines: Iterator[str], delimiter: str, text: Callable[[], str]) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each record; `text` gives the whole text, to say where a record went wrong."""
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    first_line = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RosterFileError(_csv_problem(text(), delimiter, first_line, str(exc))) from exc
        yield first_line, record
        first_line = reader.line_num + 1


def _csv_problem(text: str, delimiter: str, line: int, message: str) -> str:
    """Where a row that cannot be read went wrong, named by line, column and value."""
    found = quote_problem(text, delimiter, line)
    if found is None:
        return f"line {line}: the row cannot be read as CSV ({message})"
    kind, at_line, column, value = found
    shown = value if len(value) <= 40 else value[:40] + "…"
    if kind == "unclosed":
        return (f"line {at_line}: the quoted field {shown!r} begins here and is never closed (a missing closing "
                f"quote \"): nothing after it can be read (column {column_letter(column)})")
    return (f"line {at_line}: text after the closing quote in {shown!r} (a quote inside a quoted field is "
            f"written twice: \"\") (column {column_letter(column)})")


def quote_problem(text: str, delimiter: str, line: int) -> tuple[str, int, int, str] | None:
    """The first quoting mistake at or after `line`, as csv's strict mode sees them:
    ("unclosed", line and column where the quote opened, the field's start) or
    ("after_quote", line and column of the field, the field up to the stray text)."""
    position = 0
    for _ in range(line - 1):
        position = text.find("\n", position) + 1
        if position == 0:
            return None
    size, column, field_start = len(text), 0, True
    while position < size:
        ch = text[position]
        if ch == '"' and field_start:
            opened_at, opened_line = position, line
            while True:  # inside quotes: only a quote (or the end of the text) matters
                close = text.find('"', position + 1)
                if close < 0:
                    end = text.find("\n", opened_at)
                    return "unclosed", opened_line, column, text[opened_at:end if end >= 0 else size].rstrip("\r")
                line += text.count("\n", position + 1, close)
                if text.startswith('""', close):
                    position = close + 1
                    continue
                position, field_start = close + 1, False
                break
            if position < size and text[position] not in (delimiter, "\n", "\r"):
                end = text.find("\n", position)
                return "after_quote", opened_line, column, text[opened_at:end if end >= 0 else size].rstrip("\r")
            continue
        if ch == delimiter:
            column, field_start = column + 1, True
        elif ch == "\n":
            line, column, field_start = line + 1, 0, True
        else:
            field_start = False
        position += 1
    return None


def _read_xlsx(data: bytes) -> Table:
    import openpyxl  # imported here: only a workbook needs it

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise RosterFileError(f"not a readable Excel workbook (.xlsx): {exc}") from exc
    sheet = workbook.active
    if sheet is None:
        raise RosterFileError("the workbook has no sheet")

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            first = sheet.min_row or 1
            for offset, values in enumerate(sheet.iter_rows(values_only=True)):
                yield first + offset, [_cell_text(v) for v in values]
        finally:
            workbook.close()

    return Table(rows=rows(), kind="xlsx", encoding="xlsx", lines=sheet.max_row or 0)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone number typed as a number
    return str(value)


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how a spreadsheet names the column."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


# --- the header ------------------------------------------------------------------


@dataclass
class Header:
    columns: dict[int, str]  # cell index -> field
    labels: dict[str, str]  # field -> "B, email"
    line: int  # the header's (or hashtag row's) line
    hxl: bool


def _is_hashtag_row(cells: list[str]) -> bool:
    filled = [c.strip() for c in cells if c.strip()]
    return bool(filled) and sum(bool(_HASHTAG.match(c)) for c in filled) * 2 >= len(filled)


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


def _plain_columns(cells: list[str]) -> dict[int, str]:
    columns: dict[int, str] = {}
    for i, cell in enumerate(cells):
        name = fold(cell).replace(" ", "_").replace("-", "_")
        name = _ALIASES.get(name, name)
        if name in FIELDS:
            columns[i] = name
    return columns


def find_header(first: list[tuple[int, list[str]]], *, delimiter: str = "") -> tuple[Header, int]:
    """The header among the first rows, and the index in `first` of the first data row.

    A hashtag row anywhere in the first 25 rows wins (title rows and a plain header may
    stand above it); else the first row naming both name and email."""
    for index, (line, cells) in enumerate(first[:HEADER_SEARCH_ROWS]):
        if _is_hashtag_row(cells):
            columns = _hxl_columns(cells)  # a text header above it is for people: the hashtags decide
            labels = {name: f"{column_letter(i)}, {cells[i].strip()}" for i, name in columns.items()}
            return Header(columns, labels, line, hxl=True), index + 1
    for index, (line, cells) in enumerate(first[:HEADER_SEARCH_ROWS]):
        columns = _plain_columns(cells)
        if {"name", "email"} <= set(columns.values()):
            _no_twice(columns, cells, line)
            labels = {name: f"{column_letter(i)}, {cells[i].strip()}" for i, name in columns.items()}
            return Header(columns, labels, line, hxl=False), index + 1
    filled = next(((line, cells) for line, cells in first if any(c.strip() for c in cells)), None)
    if filled is None:
        raise RosterFileError("the file is empty")
    line, cells = filled
    found = set(_plain_columns(cells).values())
    missing = [f for f in ("name", "email") if f not in found]
    shown = delimiter.join(cells) if delimiter else " | ".join(cells)
    shown = shown if len(shown) <= 80 else shown[:80] + "…"
    how = f", cells separated by {_DELIMITER_NAMES[delimiter]}" if delimiter else ""
    raise RosterFileError(
        f"missing required column(s): {', '.join(missing)} — no row of the first {HEADER_SEARCH_ROWS} names both "
        f"name and email, nor is an HXL hashtag row (line {line}{how}: {shown!r})")


def _no_twice(columns: dict[int, str], cells: list[str], line: int) -> None:
    seen: dict[str, int] = {}
    for i, name in columns.items():
        if name in seen:
            raise RosterFileError(
                f"line {line}: columns {column_letter(seen[name])} ({cells[seen[name]].strip()!r}) and "
                f"{column_letter(i)} ({cells[i].strip()!r}) are both {name!r}: keep one")
        seen[name] = i


# --- validating rows -------------------------------------------------------------

_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


@functools.lru_cache(maxsize=4096)
def _domain(domain: str) -> str | None:
    """The normalised domain as email_validator gives it, or None when it refuses it."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def normalise_email(raw: str) -> str:
    """email_validator's normalised, lowercased address; raises EmailNotValidError.

    A plain ASCII address (dot-atom local part) is checked here and its domain once per
    domain — the same verdict as email_validator's, at a fraction of the cost on 50,000
    rows; anything else goes through email_validator itself."""
    local, at, domain = raw.rpartition("@")
    if at and len(local) <= 64 and len(raw) <= 254 and domain.isascii() and _LOCAL_PART.match(local):
        normalised = _domain(domain)
        if normalised is not None:
            return f"{local}@{normalised}".lower()
    return validate_email(raw, check_deliverability=False).normalized.lower()


@functools.lru_cache(maxsize=1024)
def _zone_known(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


_country = functools.lru_cache(maxsize=4096)(resolve_country)
_region = functools.lru_cache(maxsize=256)(resolve_region)


@functools.lru_cache(maxsize=256)
def _role(text: str) -> str | None:
    key = fold(text).replace("-", " ").replace(" ", "_")
    key = {"cmcoord": "cmcoord_officer", "officer": "cmcoord_officer", "adviser": "regional_adviser",
           "advisor": "regional_adviser", "regional_advisor": "regional_adviser", "desk": "cmcs_desk",
           "surge_staff": "surge"}.get(key, key)
    return key if key in ROLES else None


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(";") if p.strip()]


class _Rows:
    """Validates rows one by one. Values repeated across rows (countries, stations,
    titles, dates, lists) are kept once: 50,000 rows hold few distinct ones."""

    def __init__(self, header: Header) -> None:
        self.header = header
        self.present = frozenset(header.columns.values())
        self._same: dict[object, object] = {}
        self._dates: dict[str, date | None] = {}
        self._places: dict[tuple[str, str], tuple[str, str]] = {}  # (country, region) as written -> codes
        self._roles: dict[str, str] = {}

    def _once(self, value: object) -> object:
        return self._same.setdefault(value, value)

    def label(self, name: str) -> str:
        return self.header.labels.get(name, "")

    def _date(self, text: str) -> date | None:
        if text in self._dates:
            return self._dates[text]
        try:
            value: date | None = date.fromisoformat(text)
        except ValueError:
            value = None
        self._dates[text] = value
        return value

    def validate(self, line: int, v: dict[str, str]) -> tuple[RosterRow | None, list[RowError]]:
        """The row, or its errors. The common case (every value valid, the lookups seen on an
        earlier row) takes a short path; anything else the detailed one, which names each problem."""
        errors: list[RowError] = []
        present = self.present

        def err(name: str, message: str) -> None:
            errors.append(RowError(line, message, self.label(name)))

        if "\n" in "\x00".join(v.values()):
            for name, value in v.items():
                if "\n" in value:
                    err(name, f"the cell {value[:40]!r} runs over several lines: is a closing quote (\") missing "
                              "where this row begins?")
            return None, errors
        get = v.get
        name = get("name", "")
        if not name:
            err("name", "name is empty")
        email = ""
        raw_email = get("email", "")
        try:
            email = normalise_email(raw_email)
        except EmailNotValidError as exc:
            err("email", f"bad email {raw_email!r}: {exc}")
        tz = get("timezone") if "timezone" in present else None
        if tz and not _zone_known(tz):
            err("timezone", f"unknown time zone {tz!r} (use an IANA name such as Africa/Bamako)")
        once = self._once
        person = PersonData(
            email,
            name,
            v["phone"] if "phone" in present else None,
            v["telegram"].lstrip("@") if "telegram" in present else None,
            once(v["organisation"]) if "organisation" in present else None,  # type: ignore[arg-type]
            self._list(v["languages"]) if "languages" in present else None,
            once(tz) if tz is not None else None,  # type: ignore[arg-type]
        )
        trainings = self._trainings(get("trainings", ""), err)
        deployment = None
        if get("country") or get("duty_station") or get("post_title") or get("role") or get("start") or \
                get("planned_end"):
            deployment = self._quick_deployment(v) or self._deployment(v, err)
        if errors:
            return None, errors
        return RosterRow(line, person, deployment, trainings), []

    def _list(self, text: str) -> tuple[str, ...]:
        found = self._same.get(("list", text))
        if found is None:
            found = self._same[("list", text)] = self._once(tuple(_split(text)))
        return found  # type: ignore[return-value]

    def _trainings(self, text: str, err: Callable[[str, str], None]) -> tuple[tuple[str, date | None], ...]:
        if not text:
            return ()
        known = self._same.get(("trainings", text))
        if known is not None:
            return known  # type: ignore[return-value]
        trainings: list[tuple[str, date | None]] = []
        valid = True
        for item in _split(text):
            course, _, when = item.partition("@")
            completed = None
            if when.strip():
                completed = self._date(when.strip())
                if completed is None:
                    valid = False
                    err("trainings", f"training date {when!r} is not a date (YYYY-MM-DD)")
            trainings.append((self._once(course.strip()), completed))  # type: ignore[arg-type]
        result = tuple(trainings)
        if valid:
            self._same[("trainings", text)] = result
        return result

    def _quick_deployment(self, v: dict[str, str]) -> DeploymentData | None:
        """The deployment when everything is there and valid, from values already seen; else None."""
        get, present = v.get, self.present
        station, title, role_text = get("duty_station"), get("post_title"), get("role")
        if not (station and title and role_text):
            return None
        place = self._places.get((get("country", ""), get("region", "")))
        role = self._roles.get(role_text)
        dates = self._dates
        start, planned_end = dates.get(get("start", "")), dates.get(get("planned_end", ""))
        actual_text = get("actual_end", "")
        actual_end = dates.get(actual_text) if actual_text else None
        if (place is None or role is None or start is None or planned_end is None or planned_end < start
                or (actual_text and (actual_end is None or actual_end < start))):
            return None
        once = self._once
        return DeploymentData(
            place[0], once(station), place[1], once(title), role, start, planned_end, actual_end,  # type: ignore[arg-type]
            self._list(v["hats"]) if "hats" in present else None,
            "region" in present, "actual_end" in present,
        )

    def _deployment(self, v: dict[str, str], err: Callable[[str, str], None]) -> DeploymentData | None:
        present = self.present
        missing = [f for f in DEPLOYMENT_FIELDS if not v.get(f)]
        if missing:
            absent = [f for f in missing if f not in present]
            where = "; the file has no column for " + ", ".join(absent) if absent else ""
            first = next((f for f in missing if f in present), "")
            err(first, f"a deployment needs {', '.join(missing)}{where}")
        country = _country(v["country"]) if v.get("country") else None
        if v.get("country") and country is None:
            err("country", f"unknown country {v['country']!r} (use ISO 3166 codes such as ML or MLI)")
        region = None
        if v.get("region"):
            region = _region(v["region"])
            if region is None:
                err("region", f"unknown region {v['region']!r} (one of {', '.join(REGIONS)})")
        elif country:
            region = region_for_country(country)
            if region is None:
                err("region" if "region" in present else "country",
                    f"no default region for {country}: add a region column")
        role = _role(v["role"]) if v.get("role") else None
        if v.get("role") and role is None:
            err("role", f"unknown role {v['role']!r} (one of {', '.join(ROLES)})")
        dates: dict[str, date | None] = {}
        for what in ("start", "planned_end", "actual_end"):
            text = v.get(what, "")
            dates[what] = self._date(text) if text else None
            if text and dates[what] is None:
                err(what, f"{what} {text!r} is not a date (YYYY-MM-DD)")
        start, planned_end, actual_end = dates["start"], dates["planned_end"], dates["actual_end"]
        if start and planned_end and planned_end < start:
            err("planned_end", f"end {planned_end} is before start {start}")
        if start and actual_end and actual_end < start:
            err("actual_end", f"actual end {actual_end} is before start {start}")
        if country and region:
            self._places[(v.get("country", ""), v.get("region", ""))] = (country, region)
        if role:
            self._roles[v["role"]] = role
        if missing or not (country and region and role and start and planned_end):
            return None
        return DeploymentData(
            country=country,
            duty_station=self._once(v["duty_station"]),  # type: ignore[arg-type]
            region=region,
            title=self._once(v["post_title"]),  # type: ignore[arg-type]
            role=role,
            start=start,
            planned_end=planned_end,
            actual_end=actual_end,
            hats=self._once(tuple(_split(v["hats"]))) if "hats" in present else None,  # type: ignore[arg-type]
            region_given="region" in present,
            actual_end_given="actual_end" in present,
        )


def parse_roster(source: str | bytes, *, filename: str = "", progress: Progress | None = None) -> ParsedRoster:
    """Read and validate every row; errors carry the file's line, column and value.

    `source` is the file's bytes (encoding and format detected) or text already decoded."""
    table = read_table(source, filename=filename) if isinstance(source, bytes) else table_from_text(source)
    first: list[tuple[int, list[str]]] = []
    for record in table.rows:
        first.append(record)
        if len(first) >= HEADER_SEARCH_ROWS:
            break
    if not any(any(c.strip() for c in cells) for _, cells in first):
        raise RosterFileError("the file is empty")
    header, data_start = find_header(first, delimiter=table.delimiter)
    result = ParsedRoster(hxl=header.hxl, encoding=table.encoding, delimiter=table.delimiter,
                          columns=tuple(f for f in FIELDS if f in header.columns.values()))
    rows = _Rows(header)
    columns = list(header.columns.items())
    seen: dict[tuple[str, str, str, str, date], int] = {}
    people: dict[str, tuple[int, PersonData, str]] = {}
    count = 0

    def records() -> Iterator[tuple[int, list[str]]]:
        yield from first[data_start:]
        yield from table.rows

    for line, raw in records():
        count += 1
        if progress is not None and count % 2000 == 0:
            progress("reading", line, table.lines)
        if not "".join(raw).strip():
            continue
        size = len(raw)
        values = {name: raw[i].strip() if i < size else "" for i, name in columns}
        row, errors = rows.validate(line, values)
        result.errors.extend(errors)
        if row is None:
            continue
        known = people.get(row.person.email)
        if known is None:
            people[row.person.email] = (line, row.person, values["email"])
        elif known[1] != row.person:
            result.errors.append(RowError(line, _another_person(values["email"], known, row.person),
                                          rows.label("email")))
            continue
        if row.deployment is not None:
            d = row.deployment
            key = (row.person.email, d.country, d.duty_station, d.title, d.start)
            if key in seen:
                result.errors.append(RowError(line, f"same deployment as line {seen[key]} (same person, post and "
                                                    f"start {d.start})", rows.label("start")))
                continue
            seen[key] = line
        result.rows.append(row)
    if progress is not None:
        progress("reading", table.lines, table.lines)
    result.errors.extend(_overlaps_in_file(result.rows, rows.label("start")))
    result.errors.sort(key=lambda e: e.line)
    return result


def _another_person(raw_email: str, first: tuple[int, PersonData, str], here: PersonData) -> str:
    line, there, _ = first
    differences = [
        f"{label} {a!r} there, {b!r} here"
        for label, a, b in (
            ("name", there.name, here.name),
            ("phone", there.phone, here.phone),
            ("telegram", there.telegram_username, here.telegram_username),
            ("organisation", there.organisation, here.organisation),
            ("languages", ";".join(there.languages or ()), ";".join(here.languages or ())),
            ("timezone", there.timezone, here.timezone),
        )
        if a != b
    ]
    return (f"e-mail {raw_email!r} is also on line {line}, for another person ({'; '.join(differences)}): "
            "one e-mail is one person — correct one of the two rows")


def overlaps(a_start: date, a_end: date, b_start: date, b_end: date) -> bool:
    return a_start <= b_end and b_start <= a_end


def _overlaps_in_file(rows: list[RosterRow], column: str = "") -> list[RowError]:
    errors: list[RowError] = []
    by_person: dict[str, list[RosterRow]] = {}
    for row in rows:
        if row.deployment is not None:
            by_person.setdefault(row.person.email, []).append(row)
    for person_rows in by_person.values():
        if len(person_rows) < 2:
            continue
        person_rows.sort(key=lambda r: r.deployment.start)  # type: ignore[union-attr]
        for earlier, later in zip(person_rows, person_rows[1:]):
            a, b = earlier.deployment, later.deployment
            assert a is not None and b is not None
            if overlaps(a.start, a.end, b.start, b.end):
                errors.append(RowError(
                    later.line, f"deployment {b.start}..{b.end} overlaps line {earlier.line} ({a.start}..{a.end})",
                    column))
    return errors


# --- planning against the store --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # new_person | changed_person | new_deployment | changed_deployment | ended_deployment
    subject: str
    detail: str = ""

    def __str__(self) -> str:
        label = self.kind.replace("_", " ")
        return f"{label:<20} {self.subject}" + (f"  ({self.detail})" if self.detail else "")


CHANGE_KINDS = ("new_person", "changed_person", "new_deployment", "changed_deployment", "ended_deployment")


class StoredPerson(NamedTuple):
    id: uuid.UUID
    email: str
    name: str
    phone: str
    telegram_username: str
    organisation: str
    languages: str  # ';'-separated, as stored
    timezone: str


class StoredPost(NamedTuple):
    id: uuid.UUID
    country: str
    duty_station: str
    region: str
    title: str
    gapped_since: date | None
    gap_alerts_sent: int


class StoredDeployment(NamedTuple):
    id: uuid.UUID
    person_id: uuid.UUID
    post_id: uuid.UUID
    role: str
    start: date
    planned_end: date
    actual_end: date | None
    hats: str  # ';'-separated, as stored
    started_announced: bool
    ending_soon_announced_for: date | None
    ended_announced: bool


@dataclass
class Snapshot:
    """What the store holds that an import may touch: the file's people (by e-mail), the
    posts it names, the deployments of those people and on those posts, the posts those
    deployments are on, their trainings, and the rotation scan's epoch and pending jump."""

    people: dict[str, StoredPerson] = field(default_factory=dict)
    posts: dict[uuid.UUID, StoredPost] = field(default_factory=dict)
    deployments: dict[uuid.UUID, StoredDeployment] = field(default_factory=dict)
    trainings: dict[tuple[uuid.UUID, str], tuple[int, date | None]] = field(default_factory=dict)
    epoch: int = 0
    jump_from: date | None = None
    liaisons: set[str] = field(default_factory=set)  # the file's e-mails that are parties' liaisons


@dataclass(slots=True, eq=False)
class PlannedPerson:
    id: uuid.UUID
    email: str
    name: str
    phone: str
    telegram_username: str
    organisation: str
    languages: str
    timezone: str
    new: bool
    changed: bool = False  # a stored person whose details change


@dataclass(slots=True, eq=False)
class PlannedPost:
    id: uuid.UUID
    country: str
    duty_station: str
    region: str
    title: str
    gapped_since: date | None
    gap_alerts_sent: int
    new: bool
    dirty: bool = False
    named: bool = False  # the file names it: the rotation rules run on it
    deployments: list[PlannedDeployment] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class PlannedDeployment:
    id: uuid.UUID
    person_id: uuid.UUID
    post: PlannedPost
    role: str
    start: date
    planned_end: date
    actual_end: date | None
    hats: str
    started_announced: bool
    ending_soon_announced_for: date | None
    ended_announced: bool
    new: bool
    dirty: bool = False  # anything to write (its rotation marks included)
    changed: bool = False  # its facts changed (updated_at moves)

    @property
    def end(self) -> date:
        return self.actual_end or self.planned_end

    def view(self) -> rotation.DeploymentView:
        return rotation.DeploymentView(
            id=self.id, person_id=self.person_id, post_id=self.post.id, start=self.start,
            planned_end=self.planned_end, actual_end=self.actual_end, started_announced=self.started_announced,
            ending_soon_announced_for=self.ending_soon_announced_for, ended_announced=self.ended_announced)


# What the outbox gets, in order: a PlannedPerson (roster.person.changed), a new
# PlannedDeployment (roster.deployment.assigned), or (decision, post) from the rotation
# rules. Payloads are built when written (staged, a batch at a time, for a large plan).
PlannedEvent = PlannedPerson | PlannedDeployment | tuple[rotation.Decision, PlannedPost]


@dataclass
class ImportPlan:
    changes: list[Change] = field(default_factory=list)  # filled only when asked for (the CLI's --verbose)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGE_KINDS, 0))
    conflicts: list[RowError] = field(default_factory=list)
    people: list[PlannedPerson] = field(default_factory=list)  # new or changed
    posts: list[PlannedPost] = field(default_factory=list)  # new or changed
    deployments: list[PlannedDeployment] = field(default_factory=list)  # new or changed
    new_trainings: dict[tuple[uuid.UUID, str], date | None] = field(default_factory=dict)
    changed_trainings: dict[int, date | None] = field(default_factory=dict)  # training id -> completed on
    events: list[PlannedEvent] = field(default_factory=list)
    epoch: int = 0
    taken_back: list[rotation.Reopened] = field(default_factory=list)  # a confirmed clock jump proved wrong
    list_changes: bool = True

    def release(self) -> None:
        """Let go of the rows to write (once staged), keeping what is reported."""
        self.people, self.posts, self.deployments, self.events = [], [], [], []
        self.new_trainings, self.changed_trainings = {}, {}

    def change(self, kind: str, subject: Callable[[], str], detail: str = "") -> None:
        self.counts[kind] += 1
        if self.list_changes:
            self.changes.append(Change(kind, subject(), detail))


def _default_zone(row: RosterRow) -> str:
    return REGIONS[row.deployment.region].timezone if row.deployment else "UTC"


def plan_import(rows: list[RosterRow], snapshot: Snapshot, *, today: date,
                policy: rotation.RotationPolicy = rotation.RotationPolicy(), list_changes: bool = True,
                consume: bool = False) -> ImportPlan:
    """What the rows change against the snapshot, what to write, and the events to announce.

    The rotation rules run here on the posts the file names, on the state the import
    leaves (the same rules the scan applies), so writing the plan needs no Python work
    under the store's write lock. Lookups hold stored things only: a file of 50,000 new
    rows builds one record per person, post and deployment and little else. With
    `consume`, the list is emptied as its rows are planned, so a large file's rows and
    its plan are not both held at once."""
    plan = ImportPlan(epoch=snapshot.epoch, list_changes=list_changes)
    people: dict[str, PlannedPerson] = {}
    posts: dict[tuple[str, str, str], PlannedPost] = {}
    stored_posts = {(p.country, p.duty_station, p.title): p for p in snapshot.posts.values()}

    def planned_post(stored: StoredPost) -> PlannedPost:
        key = (stored.country, stored.duty_station, stored.title)
        post = posts.get(key)
        if post is None:
            post = posts[key] = PlannedPost(stored.id, stored.country, stored.duty_station, stored.region,
                                            stored.title, stored.gapped_since, stored.gap_alerts_sent, new=False)
        return post

    stored_by_person: dict[uuid.UUID, list[PlannedDeployment]] = {}
    stored_by_key: dict[tuple[uuid.UUID, uuid.UUID, date], PlannedDeployment] = {}
    stored_ends: dict[uuid.UUID, tuple[date, date]] = {}  # stored (start, end), for overlaps
    for d in snapshot.deployments.values():
        post = planned_post(snapshot.posts[d.post_id])
        dep = PlannedDeployment(d.id, d.person_id, post, d.role, d.start, d.planned_end, d.actual_end, d.hats,
                                d.started_announced, d.ending_soon_announced_for, d.ended_announced, new=False)
        post.deployments.append(dep)
        stored_by_person.setdefault(d.person_id, []).append(dep)
        stored_by_key[(d.person_id, d.post_id, d.start)] = dep
        stored_ends[d.id] = (d.start, d.actual_end or d.planned_end)
    # deployments the file itself moves, of people with stored ones: no overlap with those
    moved = {(r.person.email, r.deployment.country, r.deployment.duty_station, r.deployment.title, r.deployment.start)
             for r in rows if r.deployment is not None and r.person.email in snapshot.people}

    new_deployments: list[PlannedDeployment] = []
    for row in _rows(rows, consume):
        if row.person.email in snapshot.liaisons:  # told humanitarian notifications, never a member
            plan.conflicts.append(RowError(row.line, f"{row.person.email} is a party's liaison on the roster, not a "
                                                     "member of the community: a liaison is never deployed"))
            continue
        person = people.get(row.person.email)
        if person is None:
            person = people[row.person.email] = _plan_person(plan, row, snapshot.people.get(row.person.email))
        for course, completed in row.trainings:
            _plan_training(plan, snapshot, person.id, course, completed)
        d = row.deployment
        if d is None:
            continue
        key = (d.country, d.duty_station, d.title)
        post = posts.get(key)
        if post is None:
            stored_post = stored_posts.get(key)
            if stored_post is not None:
                post = planned_post(stored_post)
            else:
                post = posts[key] = PlannedPost(uuid.uuid4(), d.country, d.duty_station, d.region, d.title, None, 0,
                                                new=True, dirty=True)
        if (d.region_given or post.new) and post.region != d.region:
            post.region, post.dirty = d.region, True
        post.named = True
        dep = _plan_deployment(plan, row, person, post, stored_by_key, stored_by_person, moved, stored_ends)
        if dep is not None:
            new_deployments.append(dep)

    named = [post for post in posts.values() if post.named]
    _plan_rotation(plan, named, snapshot, today=today, policy=policy)
    plan.posts = [post for post in posts.values() if post.new or post.dirty]
    plan.deployments = new_deployments
    # every stored deployment loaded (other people's on the posts named too) is in stored_by_person
    plan.deployments.extend(dep for deps in stored_by_person.values() for dep in deps if dep.dirty)
    return plan


def _rows(rows: list[RosterRow], consume: bool) -> Iterator[RosterRow]:
    if not consume:
        yield from rows
        return
    rows.reverse()
    while rows:
        yield rows.pop()


def _plan_person(plan: ImportPlan, row: RosterRow, old: StoredPerson | None) -> PlannedPerson:
    p = row.person
    if old is None:
        person = PlannedPerson(
            uuid.uuid4(), p.email, p.name, p.phone or "", p.telegram_username or "", p.organisation or "",
            ";".join(p.languages or ()), p.timezone or _default_zone(row), new=True)
        plan.change("new_person", lambda: f"{p.email} {p.name}")
        plan.people.append(person)
        plan.events.append(person)
        return person
    person = PlannedPerson(
        old.id, old.email, p.name,
        old.phone if p.phone is None else p.phone,
        old.telegram_username if p.telegram_username is None else p.telegram_username,
        old.organisation if p.organisation is None else p.organisation,
        old.languages if p.languages is None else ";".join(p.languages),
        old.timezone if p.timezone is None else (p.timezone or _default_zone(row)),
        new=False)
    diff = [label for label, new, before in (
        ("name", person.name, old.name), ("phone", person.phone, old.phone),
        ("telegram", person.telegram_username, old.telegram_username),
        ("organisation", person.organisation, old.organisation), ("languages", person.languages, old.languages),
        ("timezone", person.timezone, old.timezone)) if new != before]
    if diff:
        person.changed = True
        plan.change("changed_person", lambda: p.email, ", ".join(diff))
        plan.people.append(person)
        plan.events.append(person)
    return person


def _plan_training(plan: ImportPlan, snapshot: Snapshot, person_id: uuid.UUID, course: str,
                   completed: date | None) -> None:
    key = (person_id, course)
    stored = snapshot.trainings.get(key)
    if stored is None:
        if completed is not None or key not in plan.new_trainings:
            plan.new_trainings[key] = completed
    elif completed is not None and stored[1] != completed:
        plan.changed_trainings[stored[0]] = completed


def _plan_deployment(
    plan: ImportPlan, row: RosterRow, person: PlannedPerson, post: PlannedPost,
    stored_by_key: dict[tuple[uuid.UUID, uuid.UUID, date], PlannedDeployment],
    stored_by_person: dict[uuid.UUID, list[PlannedDeployment]], moved: set[tuple[str, str, str, str, date]],
    stored_ends: dict[uuid.UUID, tuple[date, date]],
) -> PlannedDeployment | None:
    """The row's deployment planned; the new deployment, if it is one."""
    d = row.deployment
    assert d is not None

    def label() -> str:
        return f"{person.email} {d.country} {d.duty_station} {d.title} from {d.start}"

    dep = stored_by_key.get((person.id, post.id, d.start))
    actual_end = d.actual_end if d.actual_end_given or dep is None else dep.actual_end
    end = actual_end or d.planned_end
    for other in stored_by_person.get(person.id, ()):
        if other is dep:
            continue
        other_start, other_end = stored_ends[other.id]
        if overlaps(d.start, end, other_start, other_end):
            if (person.email, other.post.country, other.post.duty_station, other.post.title, other.start) in moved:
                continue  # the file itself moves that deployment; checked in-file
            plan.conflicts.append(RowError(
                row.line, f"deployment {d.start}..{end} overlaps the stored deployment in {other.post.country} "
                          f"{other.post.duty_station} ({other_start}..{other_end})"))
    hats = ";".join(d.hats) if d.hats is not None else (dep.hats if dep is not None else "")
    if dep is None:
        dep = PlannedDeployment(uuid.uuid4(), person.id, post, d.role, d.start, d.planned_end, actual_end, hats,
                                False, None, False, new=True, dirty=True, changed=True)
        post.deployments.append(dep)
        plan.change("new_deployment", label, f"until {d.planned_end}")
        plan.events.append(dep)
        return dep
    diff = []
    if d.planned_end != dep.planned_end:
        diff.append(f"planned end {dep.planned_end} -> {d.planned_end}")
    if d.role != dep.role:
        diff.append(f"role {dep.role} -> {d.role}")
    if hats != dep.hats:
        diff.append("hats")
    if actual_end != dep.actual_end:
        if dep.actual_end is None:
            plan.change("ended_deployment", label, f"ended {actual_end}")
        else:
            diff.append(f"actual end {dep.actual_end} -> {actual_end}")
    if diff:
        plan.change("changed_deployment", label, "; ".join(diff))
    if (dep.role, dep.planned_end, dep.actual_end, dep.hats) != (d.role, d.planned_end, actual_end, hats):
        dep.role, dep.planned_end, dep.actual_end, dep.hats = d.role, d.planned_end, actual_end, hats
        dep.dirty = dep.changed = True
    return None


def _plan_rotation(plan: ImportPlan, posts: list[PlannedPost], snapshot: Snapshot, *, today: date,
                   policy: rotation.RotationPolicy) -> None:
    """The rotation scan's rules (handlers.rotation_scan) on the posts the file names, each
    outcome applied as it comes (event ids depend on the epoch, settled when written)."""
    for post in posts:
        view = rotation.PostView(id=post.id, gapped_since=post.gapped_since, gap_alerts_sent=post.gap_alerts_sent,
                                 deployments=tuple(dep.view() for dep in post.deployments))
        outcome = rotation.assess_post(view, today, policy, jump_from=snapshot.jump_from)
        plan.taken_back.extend(outcome.reopened)
        if not (outcome.markers or outcome.decisions) and (post.gapped_since, post.gap_alerts_sent) == (
                outcome.gapped_since, outcome.gap_alerts_sent):
            continue
        deployments = {dep.id: dep for dep in post.deployments}
        for dep_id, marks in outcome.markers.items():
            dep = deployments[dep_id]
            dep.started_announced = marks.started_announced
            dep.ending_soon_announced_for = marks.ending_soon_announced_for
            dep.ended_announced = marks.ended_announced
            dep.dirty = True
        for decision in outcome.decisions:
            announce = True
            match decision:
                case rotation.Started(deployment=view, announce=announce):
                    deployments[view.id].started_announced = True
                    deployments[view.id].dirty = True
                case rotation.EndingSoon(deployment=view):
                    dep = deployments[view.id]
                    dep.ending_soon_announced_for, dep.dirty = dep.planned_end, True
                case rotation.Ended(deployment=view, announce=announce):
                    deployments[view.id].ended_announced = True
                    deployments[view.id].dirty = True
            if announce:
                plan.events.append((decision, post))
        if (post.gapped_since, post.gap_alerts_sent) != (outcome.gapped_since, outcome.gap_alerts_sent):
            post.gapped_since, post.gap_alerts_sent, post.dirty = outcome.gapped_since, outcome.gap_alerts_sent, True
    if plan.taken_back:  # the jump was wrong, and is undone: what is announced again carries new ids
        plan.epoch = snapshot.epoch + 1
