"""The bot's own store: conversation state only, and which updates it has handled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table
from sqlmodel import Field, SQLModel

from shared.store import SHARED_TABLES


class HandledUpdate(SQLModel, table=True):
    """A Telegram update the bot finished handling: a redelivery is skipped."""

    __tablename__ = "handled_update"
    update_id: int = Field(primary_key=True)
    handled_at: datetime


BOT_TABLES: tuple[Table, ...] = (*SHARED_TABLES, HandledUpdate.__table__)  # type: ignore[attr-defined]
