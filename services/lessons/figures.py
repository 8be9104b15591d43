"""AAR figures and the quarterly digest, free of I/O.

AAR figures for a period and region count the AARs *due* in the period:
- completion rate: submitted (by the as-of day) / due;
- overdue: still open on the as-of day, due date passed;
- median days late: over those due AARs that are late at all, submitted late
  (days from due to submission) or still open past due (days so far); an AAR
  submitted on time counts 0. None when nothing was due and past due.

The digest speaks to every member: it holds community and public items only,
never a restricted one, and no merged duplicates.
"""

from __future__ import annotations

import html
import re
import statistics
import string
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Protocol

from babel.lists import format_list
from babel.numbers import format_percent
from markdown_it import MarkdownIt

from services.lessons.periods import Period
from shared import notices
from shared.countries import country_label
from shared.i18n import DEFAULT
from shared.notices import DIGEST
from shared.regions import REGIONS
from shared.themes import THEMES

RECURRING_COUNTRIES = 3  # a theme raised in this many countries within a year is a trend to flag
NO_REGION = "other"
SHAREABLE = ("public", "community")
UNTAGGED = "untagged"
RIGHT_TO_LEFT = ("ar",)


class AarLike(Protocol):
    region: str | None
    due_on: date
    state: str
    submitted_at: object


class ItemLike(Protocol):
    reference: str
    kind: str
    title: str
    country: str
    region: str | None
    themes: str
    classification: str
    status: str
    created_at: object


@dataclass
class AarFigures:
    due: int = 0
    submitted: int = 0
    overdue: int = 0
    late_days: list[int] = field(default_factory=list)

    @property
    def completion_rate(self) -> float | None:
        return self.submitted / self.due if self.due else None

    @property
    def median_days_late(self) -> float | None:
        return statistics.median(self.late_days) if self.late_days else None


def _submitted_on(aar: AarLike) -> date | None:
    at = aar.submitted_at
    return at.date() if at is not None else None  # type: ignore[attr-defined]


def aar_figures(aars: Iterable[AarLike], period: Period, *, as_of: date) -> dict[str, AarFigures]:
    """Per region (NO_REGION for countries outside the six), for AARs due in `period`."""
    out: dict[str, AarFigures] = defaultdict(AarFigures)
    for aar in aars:
        if not period.start <= aar.due_on <= period.end:
            continue
        f = out[aar.region or NO_REGION]
        f.due += 1
        submitted = _submitted_on(aar)
        if aar.state == "submitted" and submitted is not None and submitted <= as_of:
            f.submitted += 1
            f.late_days.append(max(0, (submitted - aar.due_on).days))
        elif aar.due_on < as_of:
            f.overdue += 1
            f.late_days.append((as_of - aar.due_on).days)
    return dict(out)


def _day(item: ItemLike) -> date:
    return item.created_at.date()  # type: ignore[attr-defined]


def shareable(items: Iterable[ItemLike]) -> list[ItemLike]:
    return [i for i in items if i.classification in SHAREABLE and i.status != "merged"]


def recurring_themes(items: Iterable[ItemLike], *, end: date, within_days: int = 365,
                     countries: int = RECURRING_COUNTRIES) -> dict[str, list[str]]:
    """Themes raised in at least `countries` countries in the year up to `end`: theme -> countries."""
    start = end - timedelta(days=within_days - 1)
    seen: dict[str, set[str]] = defaultdict(set)
    for item in shareable(items):
        if start <= _day(item) <= end:
            for theme in item.themes.split():
                seen[theme].add(item.country)
    return {t: sorted(c) for t, c in sorted(seen.items()) if len(c) >= countries}


def _percent(value: float | None, locale: str) -> str:
    return "–" if value is None else format_percent(value, locale=notices.babel_locale(locale))


def _region_name(code: str, locale: str) -> str:
    return notices.region_name(code, locale) if code in REGIONS else notices.word(DIGEST, "Other countries", locale)


@dataclass
class Digest:
    period: Period
    markdown: str
    locale: str = DEFAULT
    title: str = ""

    @property
    def html(self) -> str:
        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(self.markdown)
        direction = ' dir="rtl"' if self.locale in RIGHT_TO_LEFT else ""
        return (f"<!doctype html>\n<html lang=\"{self.locale}\"{direction}><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title>"
                "<style>body{font-family:sans-serif;max-width:48em;margin:2em auto;padding:0 1em}"
                "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em}</style>"
                f"</head><body>\n{body}</body></html>\n")


# Every ASCII punctuation character some Markdown flavour gives a meaning to, in the middle of a
# line (a hyphen, a comma, a semicolon or a quote has none there: they stay readable).
_MARKDOWN_SYNTAX = re.compile("([" + re.escape("".join(sorted(set(string.punctuation) - set("-,;'\"")))) + "])")


def md_text(text: str) -> str:
    """`text` as inline Markdown that renders as exactly that text, on one line (not at a line's
    start): its punctuation backslash-escaped (CommonMark lets any be), so a report titled
    `![](https://...)`, `[click](https://...)`, `<img src=x>`, `**bold**` or `&amp;` shows those
    characters, never an image, a link, raw HTML, emphasis or an entity, in the digest's HTML and in
    other renderers (no `https:` or `www.` for an autolink either)."""
    return _MARKDOWN_SYNTAX.sub(r"\\\1", " ".join(text.split()))


def _line(item: ItemLike, locale: str) -> str:
    status = {"identified": "lesson identified", "learned": "lesson learned"}.get(item.status)
    shown = f" · {notices.word(DIGEST, status, locale)}" if status else ""
    country = md_text(country_label(item.country, locale))  # a code the roster does not know comes back as is
    return f"- **{md_text(item.reference)}** {md_text(item.title)} ({country}){shown}"


def build_digest(*, period: Period, items: Sequence[ItemLike], year_items: Sequence[ItemLike],
                 previous_items: Sequence[ItemLike], aars: Sequence[AarLike], as_of: date,
                 locale: str = DEFAULT) -> Digest:
    """`items`: created in the period; `year_items`: the year up to its end; `previous_items`: the period before.
    Written in `locale`: its words from the notices catalogue, its dates, numbers and names as the locale
    writes them."""
    def w(english: str) -> str:
        return notices.word(DIGEST, english, locale)

    def say(key: str, **params: str | int | date) -> str:
        return notices.say(key, locale, **params)

    def theme(code: str) -> str:
        return w("Not yet tagged") if code == UNTAGGED else notices.theme_name(code, locale)  # an unknown one as coded

    new = sorted(shareable(items), key=lambda i: (i.created_at, i.reference))  # type: ignore[arg-type, return-value]
    title = say("digest.title", period=period.label)
    # the catalogue's words are Markdown as they are; only what people wrote is escaped (md_text)
    md = [f"# {title}", f"_{say('digest.span', start=period.start, end=period.end)}_", ""]
    kinds = Counter(i.kind for i in new)
    statuses = Counter(i.status for i in new)
    md += [f"## {w('In numbers')}", ""]
    md += [f"- {say('digest.count', what=w(what), n=n)}" for what, n in (
        ("New lessons", len(new)), ("Field observations", kinds["observation"]),
        ("After action reviews", kinds["aar"]), ("Lessons identified", statuses["identified"]),
        ("Lessons learned", statuses["learned"]))]
    md.append("")

    md += [f"## {w('New lessons by theme')}", ""]
    by_theme: dict[str, list[ItemLike]] = defaultdict(list)
    for item in new:
        for code in item.themes.split() or [UNTAGGED]:
            by_theme[code].append(item)
    if not new:
        md += [w("No new lessons in this period."), ""]
    for code in [*THEMES, UNTAGGED]:
        if by_theme.get(code):
            md += [f"### {theme(code)} ({len(by_theme[code])})", ""]
            md += [_line(i, locale) for i in by_theme[code]] + [""]

    md += [f"## {w('New lessons by region')}", "", f"| {w('Region')} | {w('Observations')} | {w('AARs')} |",
           "|---|---:|---:|"]
    by_region: dict[str, Counter[str]] = defaultdict(Counter)
    for item in new:
        by_region[item.region or NO_REGION][item.kind] += 1
    for code in [*REGIONS, NO_REGION]:
        if code in by_region:
            md.append(f"| {_region_name(code, locale)} | {by_region[code]['observation']} | {by_region[code]['aar']} |")
    md.append("")

    figures = aar_figures(aars, period, as_of=as_of)
    md += [f"## {w('After action reviews')}", "", say("digest.as_of", day=as_of), "",
           f"| {w('Region')} | {w('Due')} | {w('Submitted')} | {w('Completion')} | {w('Overdue')} |",
           "|---|---:|---:|---:|---:|"]
    for code in [*REGIONS, NO_REGION]:
        if code in figures:
            f = figures[code]
            md.append(f"| {_region_name(code, locale)} | {f.due} | {f.submitted} | "
                      f"{_percent(f.completion_rate, locale)} | {f.overdue} |")
    if not figures:
        md.append(f"| ({w('none due')}) | 0 | 0 | – | 0 |")
    md.append("")

    md += [f"## {w('Trends')}", ""]
    recurring = recurring_themes(year_items, end=period.end)
    for code, countries in recurring.items():
        names = format_list(sorted(md_text(country_label(c, locale)) for c in countries),
                            locale=notices.babel_locale(locale))
        md.append(f"- {say('digest.recurring', theme=theme(code), n=len(countries), countries=names)}")
    before = Counter(t for i in shareable(previous_items) for t in i.themes.split())
    now = Counter(t for i in new for t in i.themes.split())
    for code in THEMES:
        if now[code] >= 2 and now[code] >= 2 * max(before[code], 1):
            md.append(f"- {say('digest.rising', theme=theme(code), before=before[code], now=now[code])}")
    if md[-1] == "":
        md.append(w("No notable trends in this period."))
    return Digest(period=period, markdown="\n".join(md) + "\n", locale=locale, title=title)
