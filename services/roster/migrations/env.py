"""Alembic environment of the roster store (run through shared.migrations)."""

from services.roster.models import ROSTER_TABLES
from shared.migrations import run_env

run_env("roster", ROSTER_TABLES)
