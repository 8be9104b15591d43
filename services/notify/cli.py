"""`cmcoord notify ...`: figures from the notify store (CMCOORD_NOTIFY_DATABASE_URL or the SQLite file under CMCOORD_HOME)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import typer

from services.notify import send_cli
from shared.logging import configure_command_logging

if TYPE_CHECKING:
    from services.notify.config import Settings
    from services.notify.stats import Figures

app = typer.Typer(no_args_is_help=True, help="Notifications: figures.")
send_cli.register(app)  # send, send-status: the desk's ad-hoc messages
COLUMNS = ("kind", "region", "total", "sent", "acknowledged", "unanswered", "waiting", "unlinked", "failed", "withdrawn",
           "escalated", "ack_rate", "ack_median_minutes", "ack_p90_minutes")
LEGEND = """total = sent + waiting + unlinked + failed + withdrawn; sent = acknowledged + unanswered.
sent: reached the person (Telegram accepted it, alone or in their daily summary), acknowledged ones included;
acknowledged: a button pressed; unanswered: sent, no answer yet or none in time; waiting: not sent yet (queued,
quiet hours, a summary still to go); unlinked: kept until the person links Telegram; failed: Telegram refused it;
withdrawn: closed before it was sent; escalated: sent ones an adviser or the desk was told of (counted above too);
ack_rate: acknowledged / sent; ack_median_minutes, ack_p90_minutes: from sending to the answer."""


@app.callback()
def _logging() -> None:
    configure_command_logging("notify-cli")


async def load(settings: Settings, *, since: date | None, region: str | None, kind: str | None) -> list[Figures]:
    from sqlmodel import col, select

    from services.notify.models import NOTIFY_TABLES, Notification
    from services.notify.policy import DAILY_SUMMARY
    from services.notify.stats import figures
    from services.notify.store import open_store
    from shared.clock import clock_for

    db = open_store(settings.db_url, clock=clock_for(settings.clock_file))
    await db.create_tables(NOTIFY_TABLES)
    try:
        query = select(Notification)
        if since is not None:
            query = query.where(col(Notification.created_at) >= datetime.combine(since, datetime.min.time(), UTC))
        if region is not None:
            query = query.where(Notification.region == region)
        if kind is not None:
            query = query.where(Notification.kind == kind)
        async with db.read() as session:
            rows = (await session.exec(query)).all()
            summaries = (await session.exec(select(Notification.person_id, Notification.occurrence).where(
                Notification.kind == DAILY_SUMMARY, col(Notification.sent_at).is_not(None)))).all()
        return figures(rows, summaries_sent={(person_id, day) for person_id, day in summaries})
    finally:
        await db.dispose()


@app.command()
def stats(
    since: str = typer.Option(None, help="only notifications created on or after this day (YYYY-MM-DD)"),
    region: str = typer.Option(None, help="an OCHA region, e.g. ROWCA"),
    kind: str = typer.Option(None, help="a notification kind, e.g. post.gapped"),
    fmt: str = typer.Option("table", "--format", help="table or json"),
) -> None:
    """Per kind and region, where the messages stand (the figures add up: the legend below the table says how and
    what each means), the acknowledgement rate and the time to acknowledge."""
    import asyncio

    from services.notify.config import Settings
    from shared.regions import resolve_region

    day = None
    if since:
        try:
            day = date.fromisoformat(since)
        except ValueError:
            raise typer.BadParameter(f"{since!r} is not a date (YYYY-MM-DD)", param_hint="--since") from None
    code = None
    if region:
        code = resolve_region(region)
        if code is None:
            raise typer.BadParameter(f"unknown region {region!r}", param_hint="--region")
    rows = asyncio.run(load(Settings(), since=day, region=code, kind=kind))
    if fmt == "json":
        typer.echo(json.dumps([f.as_dict() for f in rows], indent=2))
        return
    table = [COLUMNS] + [tuple("-" if v is None else str(v) for v in f.as_dict().values()) for f in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    for r in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if not rows:
        typer.echo("(no notifications)")
        return
    typer.echo("\n" + LEGEND)


@app.command("migrate")
def migrate_store(revision: str = typer.Option("head", help="the revision to upgrade to")) -> None:
    """Upgrade the notify store's tables (Alembic; its own version table)."""
    from services.notify.config import Settings
    from services.notify.models import NOTIFY_TABLES
    from shared.migrations import upgrade_store

    at = upgrade_store(Settings().db_url, package="services.notify", service="notify", tables=NOTIFY_TABLES, revision=revision)
    typer.echo(f"notify store at revision {at}")
