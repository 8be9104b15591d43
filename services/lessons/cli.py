"""`cmcoord lessons ...`: AAR requests, review, search, export, the quarterly digest and
figures (lessons' store: CMCOORD_LESSONS_DATABASE_URL or the SQLite file under CMCOORD_HOME).

Every read takes a viewer (`--as`): public, community, desk, adviser:REGION or
person:ID, and shows only what that viewer may see."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from shared.logging import configure_command_logging

if TYPE_CHECKING:
    from services.lessons import lifecycle
    from services.lessons import search as full_text
    from services.lessons.classification import Viewer
    from services.lessons.config import Settings
    from services.lessons.models import Aar, Item
    from services.lessons.periods import Period
    from shared.clock import Clock
    from shared.store import Database


app = typer.Typer(no_args_is_help=True, help="Lessons: AARs, review, search, export, digest, figures.")
aar_app = typer.Typer(no_args_is_help=True, help="After action reviews owed.")
review_app = typer.Typer(help="Review new observations and AARs (the CMCS desk).", invoke_without_command=True)
app.add_typer(aar_app, name="aar")
app.add_typer(review_app, name="review")
T = TypeVar("T")


class CliError(Exception):
    pass


@app.callback()
def _logging() -> None:
    configure_command_logging("lessons-cli")


def _clock() -> Clock:
    from services.lessons.config import Settings
    from shared.clock import clock_for

    return clock_for(Settings().clock_file)


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    import asyncio

    from services.lessons import lifecycle, store
    from services.lessons.config import Settings

    async def run() -> T:
        db = store.open_store(Settings().db_url, clock=_clock())
        await store.prepare(db)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except (CliError, lifecycle.ReviewRefused, LookupError, ValueError) as err:
        typer.echo(f"cannot: {err}", err=True)
        raise typer.Exit(1) from err


def _viewer(spec: str) -> Viewer:
    from services.lessons.classification import UnknownViewer, Viewer

    try:
        return Viewer.parse(spec)
    except UnknownViewer as err:
        raise typer.BadParameter(str(err)) from err


def _reviewer(by: str | None) -> str:
    return by or os.environ.get("CMCOORD_LESSONS_REVIEWER") or getpass.getuser()


VIEWER = typer.Option("community", "--as", help="whose eyes: public, community, desk, adviser:REGION, person:ID")


# --- AARs ---------------------------------------------------------------------


async def _people(emails: list[str], settings: Settings) -> dict[str, uuid.UUID]:
    from shared.bus import QueryError
    from shared.contracts.query import ask_once
    from shared.contracts.roster import RECIPIENTS, RecipientsRequest

    try:
        rows = await ask_once(settings, RECIPIENTS, RecipientsRequest(emails=emails), source="lessons-cli")
    except QueryError as err:
        raise CliError(f"the roster did not answer: {err.description}") from err
    return {r.email.lower(): r.person_id for r in rows.root}


@aar_app.command("request")
def aar_request(
    country: str = typer.Option(..., help="the operation's country (ISO code or name)"),
    operation: str = typer.Option(..., help="what the review is about, e.g. 'Mopti floods response'"),
    people: str = typer.Option(..., help="comma-separated emails (as on the roster) or person ids"),
    due: str | None = typer.Option(None, help="due date (YYYY-MM-DD); default 30 days from today"),
    by: str | None = typer.Option(None, help="who asks (default: CMCOORD_LESSONS_REVIEWER or the login name)"),
) -> None:
    """CMCS asks for an AAR on an operation: one per person, with reminders and escalation."""
    import asyncio

    from services.lessons import handlers
    from services.lessons.bootstrap import duty_policy
    from services.lessons.config import Settings
    from shared.regions import resolve_country

    settings = Settings()
    code = resolve_country(country)
    if code is None:
        raise typer.BadParameter(f"unknown country {country!r}")
    today = _clock().now().date()
    try:
        due_on = date.fromisoformat(due) if due else today + timedelta(days=settings.aar_due_days)
    except ValueError as err:
        raise typer.BadParameter(f"--due {due!r} is not a date (YYYY-MM-DD)") from err
    wanted = [p.strip() for p in people.split(",") if p.strip()]
    ids: dict[str, uuid.UUID] = {}
    emails = []
    for p in wanted:
        try:
            ids[p] = uuid.UUID(p)
        except ValueError:
            emails.append(p.lower())
    if emails:
        try:
            found = asyncio.run(_people(emails, settings))
        except CliError as err:
            typer.echo(f"cannot: {err}", err=True)
            raise typer.Exit(1) from err
        missing = [e for e in emails if e not in found]
        if missing:
            typer.echo(f"cannot: not on the roster: {', '.join(missing)} (nothing was requested)", err=True)
            raise typer.Exit(1)
        ids.update(found)

    async def work(db: Database) -> int:
        async with db.unit_of_work() as uow:
            return await handlers.request_aars(uow, country=code, operation=operation, person_ids=list(ids.values()),
                                               due_on=due_on, policy=duty_policy(settings),
                                               requested_by=_reviewer(by))

    made = _run(work)
    typer.echo(f"{made} AAR(s) requested on {operation!r} ({code}), due {due_on}; "
               f"{len(set(ids.values())) - made} already requested")


async def _names(person_ids: set[uuid.UUID], settings: Settings) -> tuple[dict[str, str], str]:
    """People's names from the roster (its `recipients` query, as the AAR reminders ask it), and a note
    when it could not answer: then the ids stand in for the names."""
    from shared.bus import Bus
    from shared.contracts.query import ask
    from shared.contracts.roster import RECIPIENTS, RecipientsRequest

    if not person_ids:
        return {}, ""
    try:
        bus = await Bus.open(settings.nats_url, source="lessons-cli", patience=1.0, auth=settings.nats_auth())
    except Exception as err:  # no NATS, or it refused: the ids stand in
        return {}, f"names not shown: NATS not reachable ({err or type(err).__name__})"
    try:
        rows = await ask(bus, RECIPIENTS, RecipientsRequest(person_ids=sorted(person_ids, key=str)),
                         timeout=settings.query_timeout_seconds)
    except Exception as err:  # QueryError, a timeout, a refusal: the ids stand in
        return {}, f"names not shown: the roster did not answer ({err or type(err).__name__})"
    finally:
        await bus.close()
    return {str(r.person_id): r.name for r in rows.root}, ""


def _named(names: dict[str, str], person_id: uuid.UUID) -> str:
    return names.get(str(person_id)) or str(person_id)


@aar_app.command("list")
def aar_list(all_: bool = typer.Option(False, "--all", help="submitted ones too")) -> None:
    """AARs owed (open), oldest due first, with each officer's name (from the roster; the id when it does not
    answer)."""
    import asyncio

    from sqlmodel import col, select

    from services.lessons.config import Settings
    from services.lessons.models import Aar

    async def work(db: Database) -> list[Aar]:
        async with db.read() as session:
            query = select(Aar).order_by(col(Aar.due_on))
            if not all_:
                query = query.where(Aar.state == "open")
            return list((await session.exec(query)).all())

    today = _clock().now().date()
    aars = _run(work)
    names, note = asyncio.run(_names({a.person_id for a in aars}, Settings()))
    for a in aars:
        late = f", {(today - a.due_on).days} days overdue" if a.state == "open" and a.due_on < today else ""
        typer.echo(f"{a.id}  {a.country} {a.region or '-':7} due {a.due_on} {a.state}{late}  "
                   f"{a.operation or 'deployment end'}  {_named(names, a.person_id)}")
    if note:
        typer.echo(note, err=True)


# --- review -------------------------------------------------------------------


def _show(item: Item, author: str | None = None) -> str:
    by = f"  by {author}" if author is not None else ""
    return (f"{item.reference}  [{item.kind}, {item.status}, {item.classification}]  {item.country} "
            f"{item.region or '-'}  {item.created_at:%Y-%m-%d}{by}  themes: {item.themes or '-'}\n    {item.title}")


@review_app.callback()
def review_list(ctx: typer.Context, limit: int = typer.Option(50, help="how many")) -> None:
    """New observations and AARs, each with the earlier ones it resembles."""
    if ctx.invoked_subcommand is not None:
        return
    from sqlmodel import col, select

    from services.lessons import store
    from services.lessons.config import Settings
    from services.lessons.models import Item
    from services.lessons.recurrence import clusters

    async def work(db: Database) -> list[str]:
        async with db.read() as session:
            new = list((await session.exec(select(Item).where(Item.status == "new")
                                           .order_by(col(Item.created_at)).limit(limit))).all())
            links = await store.links_of(session, [i.id for i in new])
            groups = clusters(links)
            related = await store.items_by_id(session, list({x for g in groups for x in g}))
        names, note = await _names({i.author_id for i in new}, Settings())
        lines = []
        for item in new:
            lines.append(_show(item, _named(names, item.author_id)))
            group = next((g for g in groups if item.id in g), set())
            others = sorted((related[x] for x in group if x != item.id and x in related), key=lambda i: i.created_at)
            for other in others:
                lines.append(f"    resembles {other.reference} ({other.country}, {other.created_at:%Y-%m-%d}, "
                             f"{other.status}): {other.title}")
        if note:
            typer.echo(note, err=True)
        return lines

    lines = _run(work)
    typer.echo("\n".join(lines) if lines else "nothing new to review")


def _review(ref: str, action: lifecycle.Action, by: str | None, **kw: Any) -> None:
    from services.lessons import handlers

    async def work(db: Database) -> Item:
        async with db.unit_of_work() as uow:
            return await handlers.review(uow, ref=ref, action=action, by=_reviewer(by), **kw)

    item = _run(work)
    typer.echo(f"{item.reference}: {action} by {_reviewer(by)}; now {item.status}")


BY = typer.Option(None, help="the reviewer (default: CMCOORD_LESSONS_REVIEWER or the login name)")


@review_app.command("show")
def review_show(ref: str) -> None:
    """An item in full, with its review history and the items it resembles."""
    from services.lessons import store
    from services.lessons.config import Settings

    async def work(db: Database) -> list[str]:
        async with db.read() as session:
            item = await store.item_by_reference(session, ref)
            if item is None:
                raise LookupError(f"no item {ref}")
            steps = await store.history(session, item.id)
            links = await store.links_of(session, [item.id])
            related = await store.items_by_id(session, [x for pair in links for x in pair if x != item.id])
        names, note = await _names({item.author_id}, Settings())
        if note:
            typer.echo(note, err=True)
        lines = [_show(item, _named(names, item.author_id)), "", item.body, ""]
        if item.action:
            lines.append(f"Action taken: {item.action}")
        lines += [f"resembles {o.reference} ({o.country}): {o.title}" for o in related.values()]
        lines += [f"{s.at:%Y-%m-%d %H:%M} {s.action} by {s.by}: {s.detail}" for s in steps]
        return lines

    typer.echo("\n".join(_run(work)))


@review_app.command("tag")
def review_tag(ref: str, themes: list[str] = typer.Argument(None, help="themes to add"),
               remove: list[str] = typer.Option([], help="a theme to take off (repeatable)"), by: str | None = BY) -> None:
    """Add (or --remove) themes."""
    _review(ref, "tagged", by, themes=themes or [], remove=remove)


@review_app.command("merge")
def review_merge(ref: str, into: str = typer.Option(..., help="the item this one duplicates"),
                 by: str | None = BY) -> None:
    """Mark an item as a duplicate of another."""
    _review(ref, "merged", by, into=into)


@review_app.command("identify")
def review_identify(ref: str, note: str = typer.Option("", help="why, in a line"), by: str | None = BY) -> None:
    """Promote a new item to a lesson identified."""
    _review(ref, "identified", by, note=note)


@review_app.command("learn")
def review_learn(ref: str, action: str = typer.Option(..., help="what was done: guidance updated, curriculum changed"),
                 by: str | None = BY) -> None:
    """Record the action taken: the lesson identified becomes a lesson learned."""
    _review(ref, "learned", by, note=action)


# --- search and export ------------------------------------------------------------


def _filters(**kw: Any) -> full_text.Filters:
    from services.lessons.queries import filters_from

    try:
        return filters_from(**kw)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err


@app.command("search")
def search(
    query: str = typer.Argument("", help="words that must all appear"),
    theme: str | None = None, country: str | None = None, region: str | None = None,
    period: str | None = typer.Option(None, help="2026Q3, 2026, 2026-05 or 2026-01-15..2026-03-31"),
    status: str | None = None, kind: str | None = None, limit: int = 20, as_: str = VIEWER,
) -> None:
    """Full-text search with filters, as the viewer may see it."""
    from services.lessons import search as full_text

    viewer, filters = _viewer(as_), _filters(query=query, theme=theme, country=country, region=region, period=period,
                                             status=status, kind=kind)

    async def work(db: Database) -> full_text.Found:
        return await full_text.find(db, viewer=viewer, filters=filters, limit=limit)

    found = _run(work)
    order = "newest first" if found.newest_first else "most relevant first"
    typer.echo(f"more than {full_text.COUNT_CAP} found ({order})" if found.more_than_counted
               else f"{found.total} found ({order})")
    for item in found.items:
        typer.echo(_show(item))


EXPORT_FIELDS = ("reference", "kind", "status", "classification", "country", "region", "themes", "title", "snippet",
                 "action", "created_at")


@app.command("export")
def export(
    fmt: str = typer.Option("json", "--format", help="json or csv"),
    out: Path | None = typer.Option(None, help="file to write (default: standard output)"),
    theme: str | None = None, country: str | None = None, region: str | None = None,
    period: str | None = None, status: str | None = None, as_: str = typer.Option("public", "--as", help=VIEWER.help),
) -> None:
    """Every item the viewer may see (public by default), for sharing outside."""
    from services.lessons import search as full_text
    from services.lessons.queries import card
    from shared.exports import csv_text

    viewer = _viewer(as_)
    filters = _filters(theme=theme, country=country, region=region, period=period, status=status)

    async def work(db: Database) -> list[dict[str, Any]]:
        found = await full_text.find(db, viewer=viewer, filters=filters, limit=None)
        return [{**card(i).model_dump(mode="json"), "body": i.body} for i in found.items]

    rows = _run(work)
    if fmt == "json":
        text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    elif fmt == "csv":  # reports' words never start a formula in the reader's spreadsheet (shared/exports.py)
        columns = [*EXPORT_FIELDS, "body"]
        text = csv_text([columns, *([" ".join(r["themes"]) if c == "themes" else r.get(c, "") for c in columns]
                                    for r in rows)])
    else:
        raise typer.BadParameter("--format is json or csv")
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"{len(rows)} item(s) written to {out}", err=True)


# --- digest and figures ---------------------------------------------------------


def _period(text: str) -> Period:
    from services.lessons.periods import parse_period

    try:
        return parse_period(text)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err


async def _send_digest(*, settings: Settings, period: Period, html: dict[str, str]) -> dict[str, str]:
    """Each language's document goes to NATS' object store, the request to notify through the outbox:
    published now, or by the lessons service's relay if NATS goes away in between. Each member gets
    the document in their language; the names by language."""
    from services.lessons import handlers, store
    from shared.bus import Bus
    from shared.documents import Documents
    from shared.i18n import DEFAULT
    from shared.store import OutboxRelay

    files = {locale: text.encode() for locale, text in html.items()}
    names = {locale: (f"cmcoord-digest-{period.label.replace(' ', '')}{'' if locale == DEFAULT else '-' + locale}"
                      f"-{hashlib.sha256(data).hexdigest()[:8]}.html") for locale, data in files.items()}
    bus = await Bus.open(settings.nats_url, source="lessons", patience=settings.query_timeout_seconds,
                         auth=settings.nats_auth())
    db = store.open_store(settings.db_url, clock=_clock())
    try:
        for locale, data in files.items():
            await Documents(bus.js).put(names[locale], data)
        await db.emit_once([handlers.digest_request(period_label=period.label, documents=names)])
        try:
            await OutboxRelay(db, bus, clock=_clock()).flush()
        except Exception as exc:  # written already: the lessons service's relay sends it
            typer.echo(f"the request to send it waits in the outbox for the lessons service ({type(exc).__name__})",
                       err=True)
    finally:
        await bus.close()
        await db.dispose()
    return names


@app.command("digest")
def digest(
    quarter: str = typer.Option(..., help="e.g. 2026Q3"),
    out: Path = typer.Option(Path("."), help="folder for the Markdown and HTML files"),
    send: bool = typer.Option(False, help="send the HTML to every member through notify, as a document in their "
                                          "language"),
) -> None:
    """The quarter's newsletter: new lessons by theme and region (community and public only),
    AAR completion and overdue per region, trends; one in each language (English, French, Arabic)."""
    import asyncio

    from services.lessons import store
    from services.lessons import search as full_text
    from services.lessons.config import Settings
    from services.lessons.figures import Digest, build_digest
    from shared.i18n import DEFAULT, LANGUAGES

    period = _period(quarter)
    as_of = _clock().now().date()

    async def work(db: Database) -> dict[str, Digest]:
        async with db.read() as session:
            year_start = period.end - timedelta(days=364)
            after = full_text.start_of(period.end + timedelta(days=1))
            items = await store.items_between(session, full_text.start_of(period.start), after)
            year_items = await store.items_between(session, full_text.start_of(year_start), after)
            previous_items = await store.items_between(session, full_text.start_of(period.previous().start),
                                                       full_text.start_of(period.start))
            aars = await store.all_aars(session)
        return {locale: build_digest(period=period, as_of=as_of, items=items, year_items=year_items,
                                     previous_items=previous_items, aars=aars, locale=locale)
                for locale in LANGUAGES}

    made = _run(work)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"cmcoord-digest-{period.label.replace(' ', '')}"
    for locale, written in made.items():
        name = stem if locale == DEFAULT else f"{stem}.{locale}"
        (out / f"{name}.md").write_text(written.markdown)
        (out / f"{name}.html").write_text(written.html)
    others = ", ".join(f"{stem}.{locale}" for locale in made if locale != DEFAULT)
    typer.echo(f"wrote {out / stem}.md and .html, and {others} beside them")
    if send:
        names = asyncio.run(_send_digest(settings=Settings(), period=period,
                                         html={locale: written.html for locale, written in made.items()}))
        typer.echo(f"sent to every member as {names[DEFAULT]}, or in their language: "
                   + ", ".join(names[locale] for locale in names if locale != DEFAULT))


@app.command("stats")
def stats(period: str = typer.Option(None, help="default: this year; quarters are shown one by one"),
          fmt: str = typer.Option("table", "--format", help="table or json")) -> None:
    """AAR completion rate and median days late per region and quarter."""
    from services.lessons import store
    from services.lessons.figures import aar_figures
    from services.lessons.periods import Period, quarter_of

    today = _clock().now().date()
    whole = _period(period) if period else Period(date(today.year, 1, 1), date(today.year, 12, 31), str(today.year))

    async def work(db: Database) -> list[Aar]:
        async with db.read() as session:
            return await store.all_aars(session)

    aars = _run(work)
    rows = []
    q = quarter_of(whole.start)
    while q.start <= whole.end:
        for region, f in sorted(aar_figures(aars, q, as_of=today).items()):
            rows.append({"quarter": q.label, "region": region, "due": f.due, "submitted": f.submitted,
                         "overdue": f.overdue, "completion_rate": f.completion_rate,
                         "median_days_late": f.median_days_late})
        q = quarter_of(q.end + timedelta(days=1))
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'quarter':8} {'region':7} {'due':>4} {'done':>4} {'rate':>5} {'overdue':>7} {'median late':>11}")
    for r in rows:
        rate = "–" if r["completion_rate"] is None else f"{r['completion_rate']:.0%}"
        late = "–" if r["median_days_late"] is None else f"{r['median_days_late']:g} d"
        typer.echo(f"{r['quarter']:8} {r['region']:7} {r['due']:>4} {r['submitted']:>4} {rate:>5} {r['overdue']:>7} {late:>11}")


@app.command("migrate")
def migrate_store(revision: str = typer.Option("head", help="the revision to upgrade to")) -> None:
    """Upgrade the lessons store's tables (Alembic; its own version table)."""
    from services.lessons.config import Settings
    from services.lessons.models import LESSONS_TABLES
    from shared.migrations import upgrade_store

    at = upgrade_store(Settings().db_url, package="services.lessons", service="lessons", tables=LESSONS_TABLES, revision=revision)
    typer.echo(f"lessons store at revision {at}")
