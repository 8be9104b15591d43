"""Alembic environment of the lessons store (run through shared.migrations)."""

from services.lessons.models import LESSONS_TABLES, UNMAPPED_COLUMNS
from shared.migrations import run_env

run_env("lessons", LESSONS_TABLES, unmapped=UNMAPPED_COLUMNS)
