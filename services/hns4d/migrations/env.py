"""Alembic environment of the HNS4D store (run through shared.migrations)."""

from services.hns4d.models import HNS4D_TABLES
from shared.migrations import run_env

run_env("hns4d", HNS4D_TABLES)
