"""Alembic environment of the bot store (run through shared.migrations)."""

from services.bot.models import BOT_TABLES
from shared.migrations import run_env

run_env("bot", BOT_TABLES)
