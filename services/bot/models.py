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


class ConversationState(SQLModel, table=True):
    """Where a user is in a multi-step conversation (aiogram FSM), kept across restarts."""

    __tablename__ = "conversation_state"
    key: str = Field(primary_key=True, max_length=200)
    state: str | None = Field(default=None, max_length=200)
    data: str = "{}"
    updated_at: datetime


BOT_TABLES: tuple[Table, ...] = (
    *SHARED_TABLES,
    HandledUpdate.__table__,  # type: ignore[attr-defined]
    ConversationState.__table__,  # type: ignore[attr-defined]
)
