"""Alembic environment of the notify store (run through shared.migrations)."""

from services.notify.models import NOTIFY_TABLES
from shared.migrations import run_env

run_env("notify", NOTIFY_TABLES)
