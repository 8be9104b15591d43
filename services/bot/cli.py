"""`cmcoord bot ...`: the bot's store (CMCOORD_BOT_DATABASE_URL or the SQLite file under CMCOORD_HOME)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="The Telegram bot's store.")


@app.callback()
def _bot() -> None:
    pass


@app.command("migrate")
def migrate_store(revision: str = typer.Option("head", help="the revision to upgrade to")) -> None:
    """Upgrade the bot store's tables (Alembic; its own version table)."""
    from services.bot.config import Settings
    from services.bot.models import BOT_TABLES
    from shared.migrations import upgrade_store

    at = upgrade_store(Settings().db_url, package="services.bot", service="bot", tables=BOT_TABLES, revision=revision)
    typer.echo(f"bot store at revision {at}")
