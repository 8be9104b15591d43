"""`cmcoord hns4d ...`: humanitarian notifications to the parties of a country (HNS4D's store:
CMCOORD_HNS4D_DATABASE_URL or the SQLite file under CMCOORD_HOME).

The parties of a country and how each is reached; a site or movement submitted from a file, sent
to every party, changed or cancelled (sent again); a party's acknowledgement of receipt recorded by
the officer (a phone call, a meeting); incidents; what each party answered; figures per party and
exports. An acknowledgement is receipt only, never approval. People are named by their roster
e-mail (`--by`); every command writes who did what in the audit log."""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from shared.logging import configure_command_logging

if TYPE_CHECKING:
    from services.hns4d.config import Settings
    from services.hns4d.models import Record
    from shared.contracts.hns4d import Submission
    from shared.contracts.roster import Recipient
    from shared.store import Database, UnitOfWork

app = typer.Typer(no_args_is_help=True, help="Humanitarian notifications to parties (HNS4D): receipt, never approval.")
party_app = typer.Typer(no_args_is_help=True, help="The parties of a country and how each is reached.")
app.add_typer(party_app, name="party")
T = TypeVar("T")
BY = typer.Option(None, "--by", help="who does it: their roster e-mail (the audit log names them)")


class CliError(Exception):
    pass


@app.callback()
def _logging() -> None:
    configure_command_logging("hns4d-cli")


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    import asyncio

    from services.hns4d import store
    from services.hns4d.config import Settings
    from services.hns4d.records import Refused
    from shared.clock import clock_for

    async def run() -> T:
        settings = Settings()
        db = store.open_store(settings.db_url, clock=clock_for(settings.clock_file))
        await store.prepare(db)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except Refused as err:
        for problem in err.problems:
            typer.echo(f"cannot: {problem}", err=True)
        raise typer.Exit(1) from err
    except (CliError, LookupError, ValueError) as err:
        typer.echo(f"cannot: {err}", err=True)
        raise typer.Exit(1) from err


async def _people(emails: list[str], settings: Settings) -> dict[str, uuid.UUID]:
    """Roster people by e-mail (the roster's answer: nobody's word for it)."""
    return {email: r.person_id for email, r in (await _recipients(emails, settings)).items()}


async def _recipients(emails: list[str], settings: Settings) -> dict[str, Recipient]:
    from shared.bus import QueryError
    from shared.contracts.query import ask_once
    from shared.contracts.roster import RECIPIENTS, RecipientsRequest

    try:
        rows = await ask_once(settings, RECIPIENTS, RecipientsRequest(emails=emails), source="hns4d-cli")
    except QueryError as err:
        raise CliError(f"the roster did not answer: {err.description}") from err
    found = {r.email.lower(): r for r in rows.root}
    missing = [e for e in emails if e.lower() not in found]
    if missing:
        raise CliError(f"not on the roster: {', '.join(missing)}")
    return found


async def _who(email: str | None) -> tuple[uuid.UUID | None, str]:
    """The person doing it (by roster e-mail), and how the audit log names them."""
    if email is None:
        return None, f"operator:{getpass.getuser()}"
    from services.hns4d.config import Settings

    person = (await _people([email], Settings()))[email.lower()]
    return person, f"person:{person}"


async def _record(uow: UnitOfWork, reference: str) -> Record:
    from services.hns4d import store

    record = await store.record_by_reference(uow.session, reference)
    if record is None:
        raise CliError(f"no notification {reference}")
    return record


def _submission(file: Path) -> Submission:
    from pydantic import ValidationError

    from shared.contracts.hns4d import Submission

    try:
        return Submission.model_validate_json(file.read_bytes())
    except ValidationError as err:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in err.errors()]
        raise CliError(f"{file.name}: " + "; ".join(lines)) from None


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise CliError(f"{text}: give the time with its offset (2026-07-01T09:30+00:00)")
    return at.astimezone(UTC)


# --- parties ----------------------------------------------------------------------------------------


@party_app.command("add")
def party_add(
    country: str = typer.Argument(..., help="ISO 3166-1 alpha-2, e.g. ML"),
    name: str = typer.Argument(..., help="the party's name, e.g. 'Forces armées maliennes'"),
    kind: str = typer.Option(..., help="state_forces, coalition, armed_group or peacekeeping"),
    channel: str = typer.Option(..., help="telegram or email (its liaison, told by notify), or recorded (by you)"),
    liaison: str | None = typer.Option(None, help="the liaison's roster e-mail (telegram, email)"),
    exports: bool | None = typer.Option(None, "--exports/--no-exports",
                                        help="whether the desk may give it exports of what was sent to it "
                                             "(unsaid: as it was; a new party: not)"),
    by: str | None = BY,
) -> None:
    """List a party of a country (or change how an existing one is reached)."""
    from services.hns4d import records

    async def work(db: Database) -> str:
        liaison_id = None
        if liaison:
            from services.hns4d.config import Settings

            found = (await _recipients([liaison], Settings()))[liaison.lower()]
            if not found.liaison:  # a member of the community would read what only the party should
                raise CliError(f"{liaison} is not a party's liaison on the roster (cmcoord roster liaison)")
            liaison_id = found.person_id
        _, who = await _who(by)
        async with db.unit_of_work() as uow:
            party = await records.add_party(uow, country=country, name=name, kind=kind, channel=channel,
                                            liaison_id=liaison_id, who=who, exports=exports)
            return (f"{party.country} {party.name}: {party.kind}, reached by {party.channel}"
                    + ("; may be given exports of what was sent to it" if party.exports else ""))

    typer.echo(_run(work))


@party_app.command("list")
def party_list(country: str = typer.Argument(..., help="ISO 3166-1 alpha-2")) -> None:
    """The parties of a country."""
    from services.hns4d import store

    async def work(db: Database) -> list[str]:
        async with db.read() as session:
            return ["\t".join([p.name, p.kind, p.channel + ("" if p.active else " (no longer notified)")]
                              + (["exports"] if p.exports else []))
                    for p in await store.parties_of(session, country, active_only=False)]

    lines = _run(work)
    typer.echo("\n".join(lines) if lines else f"no parties listed for {country.upper()}")


# --- records ----------------------------------------------------------------------------------------


@app.command("submit")
def submit(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="the site or movement, JSON"),
           by: str = typer.Option(..., "--by", help="the submitter's roster e-mail (a focal point or officer)")) -> None:
    """Submit a site or movement (checked: positions inside the country, lead time, duplicates)."""
    from services.hns4d import records

    async def work(db: Database) -> str:
        submission = _submission(file)  # the file's mistakes first, before anyone is asked anything
        person, who = await _who(by)
        assert person is not None
        async with db.unit_of_work() as uow:
            record = await records.submit(uow, submission, by=person, who=who)
            warning = f"\nwarning: {record.warning}" if record.warning else ""
            return f"{record.reference} submitted; a CMCoord officer sends it to the parties{warning}"

    typer.echo(_run(work))


@app.command("send")
def send(reference: str, by: str = typer.Option(..., "--by", help="the CMCoord officer's roster e-mail")) -> None:
    """Send a submitted site or movement to every party of its country."""
    from services.hns4d import records

    async def work(db: Database) -> list[str]:
        person, who = await _who(by)
        async with db.unit_of_work() as uow:
            record = await _record(uow, reference)
            asked = await records.send(uow, record, by=person, who=who)
            return [f"{record.reference} sent to {len(asked)} parties; receipt asked for by "
                    f"{asked[0][1].due_at:%d %b %Y %H:%M} UTC"] + [
                f"  call {p.name}, then record their answer (cmcoord hns4d acknowledge)" for p, _ in asked
                if p.channel not in records.NOTIFIED_CHANNELS]

    typer.echo("\n".join(_run(work)))


@app.command("change")
def change(reference: str, file: Path = typer.Argument(..., exists=True, dir_okay=False),
           by: str | None = BY) -> None:
    """Change a site or movement; once sent, every party is asked to acknowledge the change."""
    from services.hns4d import records

    async def work(db: Database) -> str:
        submission = _submission(file)
        person, who = await _who(by)
        async with db.unit_of_work() as uow:
            record = await records.change(uow, await _record(uow, reference), submission, by=person, who=who)
            sent = " and sent to every party again" if record.state == "sent" else ""
            return f"{record.reference} changed (revision {record.revision}){sent}"

    typer.echo(_run(work))


@app.command("cancel")
def cancel(reference: str, by: str | None = BY) -> None:
    """Cancel a site or movement; once sent, every party is told and asked to acknowledge that too."""
    from services.hns4d import records

    async def work(db: Database) -> str:
        person, who = await _who(by)
        async with db.unit_of_work() as uow:
            record = await records.cancel(uow, await _record(uow, reference), by=person, who=who)
            return f"{record.reference} cancelled"

    typer.echo(_run(work))


@app.command("acknowledge")
def acknowledge(reference: str, party: str = typer.Option(..., help="the party's name"),
                person: str = typer.Option(..., "--person", help="who acknowledged receipt for the party"),
                how: str = typer.Option(..., help="how: by phone, in a meeting …"),
                at: str | None = typer.Option(None, help="when, with its offset (default: now)"),
                by: str = typer.Option(..., "--by", help="your roster e-mail: you record it")) -> None:
    """Record a party's acknowledgement of receipt given to you (receipt only: not approval)."""
    from services.hns4d import records, store

    async def work(db: Database) -> str:
        recorder, who = await _who(by)
        async with db.unit_of_work() as uow:
            record = await _record(uow, reference)
            found = await store.party_by_name(uow.session, record.country, party)
            if found is None:
                raise CliError(f"no party {party!r} in {record.country}")
            current = [f for f in await store.forwardings_of(uow.session, record.id, revision=record.revision)
                       if f.party_id == found.id]
            if not current:
                raise CliError(f"{record.reference} (revision {record.revision}) was not sent to {found.name}")
            when = _when(at) or uow.clock.now()
            if not await records.acknowledge(uow, current[0], via="recorded", by_name=person, how=how, at=when,
                                             recorded_by=recorder, who=who):
                return f"{found.name} had already acknowledged receipt of {record.reference}"
            return f"{found.name} acknowledged receipt of {record.reference} at {when:%d %b %Y %H:%M} UTC ({how})"

    typer.echo(_run(work))


@app.command("show")
def show(reference: str, by: str | None = BY) -> None:
    """A notification and, per party, its acknowledgement of receipt or its silence."""
    from services.hns4d import records

    async def work(db: Database) -> list[str]:
        _, who = await _who(by)
        async with db.unit_of_work() as uow:
            record = await _record(uow, reference)
            records.audit(uow, who=who, action="viewed", record_id=record.id, detail=record.reference)
            now = uow.clock.now()
            return records.status_lines(record, await records.party_statuses(uow.session, record, now=now), now=now)

    typer.echo("\n".join(_run(work)))


@app.command("incident")
def incident(reference: str, what: str = typer.Option(..., help="what happened"),
             at: str = typer.Option(..., help="when, with its offset"),
             party: str | None = typer.Option(None, help="the party involved, when known"),
             by: str | None = BY) -> None:
    """Record an incident affecting a notified site or movement (restricted)."""
    from services.hns4d import records, store

    async def work(db: Database) -> str:
        person, who = await _who(by)
        when = _when(at)
        assert when is not None
        async with db.unit_of_work() as uow:
            record = await _record(uow, reference)
            found = None
            if party is not None and (found := await store.party_by_name(uow.session, record.country, party)) is None:
                raise CliError(f"no party {party!r} in {record.country}")
            await records.record_incident(uow, record, what=what, occurred_at=when, party=found, by=person, who=who)
            return f"incident recorded on {record.reference}"

    typer.echo(_run(work))


def _quarter(label: str) -> tuple[datetime, datetime]:
    """2026Q3 → its first instant and the next quarter's."""
    year, _, q = label.upper().partition("Q")
    if not (year.isdigit() and q in {"1", "2", "3", "4"}):
        raise CliError(f"{label}: a quarter is written 2026Q3")
    start = datetime(int(year), 3 * int(q) - 2, 1, tzinfo=UTC)
    end = datetime(int(year) + (q == "4"), 1 if q == "4" else 3 * int(q) + 1, 1, tzinfo=UTC)
    return start, end


@app.command("figures")
def figures(quarter: str = typer.Option(..., help="e.g. 2026Q3"), country: str | None = typer.Option(None),
            as_json: bool = typer.Option(False, "--json"), by: str | None = BY) -> None:
    """Per party: notifications sent, acknowledged, acknowledged by the deadline, the median hours to
    acknowledge, silent ones and incidents, in a quarter."""
    from services.hns4d import records

    start, end = _quarter(quarter)

    async def work(db: Database) -> list[dict[str, object]]:
        _, who = await _who(by)
        async with db.unit_of_work() as uow:
            records.audit(uow, who=who, action="exported", record_id=None, detail=f"figures {quarter} {country or ''}")
            return await records.figures(uow.session, start=start, end=end, country=country, now=uow.clock.now())

    rows = _run(work)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    typer.echo(f"{'country':7} {'party':30} {'sent':>4} {'ack':>4} {'on time':>7} {'median h':>8} {'silent':>6} "
               f"{'incidents':>9}")
    for r in rows:
        median = "–" if r["median_hours_to_acknowledge"] is None else f"{r['median_hours_to_acknowledge']:.1f}"
        typer.echo(f"{r['country']:7} {str(r['party'])[:30]:30} {r['sent']:>4} {r['acknowledged']:>4} "
                   f"{r['acknowledged_on_time']:>7} {median:>8} {r['silent']:>6} {r['incidents']:>9}")


@app.command("digest")
def digest(quarter: str = typer.Option(..., help="e.g. 2026Q3"), by: str | None = BY) -> None:
    """Tell the CMCS desk, and only the desk, the quarter's figures per party: a message per country, through
    notify. The same figures told again are not repeated."""
    from services.hns4d import records

    start, end = _quarter(quarter)
    period = f"{start.year} Q{(start.month + 2) // 3}"

    async def work(db: Database) -> list[str]:
        _, who = await _who(by)
        async with db.unit_of_work() as uow:
            rows = await records.figures(uow.session, start=start, end=end, country=None, now=uow.clock.now())
            told = records.figures_requests(rows, period=period)
            for request in told:
                uow.emit(request)
            records.audit(uow, who=who, action="exported", record_id=None,
                          detail=f"figures {period} to the CMCS desk: {len(told)} countries")
            return sorted({r["country"] for r in rows})

    countries = _run(work)
    typer.echo(f"the figures of {period} for {', '.join(countries)} go to the CMCS desk" if countries else
               f"nothing was sent to the parties in {period}: nothing to tell")


@app.command("export")
def export(fmt: str = typer.Option(..., "--format", help="geojson, hxl or kml"),
           out: Path = typer.Option(..., help="the file to write"), country: str | None = typer.Option(None),
           since_days: int = typer.Option(90, help="notifications changed in the last this many days"),
           party: str | None = typer.Option(None, help="to give this party (of --country): what was sent to it, "
                                                       "if the desk allowed it exports"),
           by: str | None = BY) -> None:
    """Export sites and movements (restricted: humanitarian positions are sensitive), for the desk or, where
    allowed, a party."""
    from services.hns4d import exports, records, store

    writers = {"geojson": lambda rs: json.dumps(exports.geojson(rs), ensure_ascii=False, indent=1),
               "hxl": exports.hxl_csv, "kml": exports.kml}
    if fmt not in writers:
        raise typer.BadParameter(f"one of {', '.join(writers)}", param_hint="--format")

    async def work(db: Database) -> int:
        _, who = await _who(by)
        async with db.unit_of_work() as uow:
            given = None
            if party is not None:
                if country is None:
                    raise CliError("a party is named with its --country")
                given = await store.party_by_name(uow.session, country, party)
                if given is None:
                    raise CliError(f"no party {party} listed for {country.upper()}")
            rows = await records.exportable(uow.session, country=country,
                                            since=uow.clock.now() - timedelta(days=since_days), party=given)
            out.write_text(writers[fmt](rows), encoding="utf-8")
            records.audit(uow, who=who, action="exported", record_id=None,
                          detail=f"{fmt} {country or 'all'}{f' to {given.name}' if given else ''}: "
                                 f"{len(rows)} notifications")
            return len(rows)

    typer.echo(f"{_run(work)} notifications written to {out}")


@app.command("migrate")
def migrate_store(revision: str = typer.Option("head", help="the revision to upgrade to")) -> None:
    """Upgrade the HNS4D store's tables (Alembic; its own version table)."""
    from services.hns4d.config import Settings
    from services.hns4d.models import HNS4D_TABLES
    from shared.migrations import upgrade_store

    at = upgrade_store(Settings().db_url, package="services.hns4d", service="hns4d", tables=HNS4D_TABLES,
                       revision=revision)
    typer.echo(f"hns4d store at revision {at}")
