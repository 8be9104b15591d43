"""The bot's own store: conversation state and drafts, which updates it has handled, deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Table, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.store import SHARED_TABLES

SOURCE = "bot"  # the source of the bot's events


class InboxUpdate(SQLModel, table=True):
    """A Telegram update as received: stored before it is confirmed to Telegram,
    marked when handled. Unhandled ones are handled at the next start."""

    __tablename__ = "update_inbox"
    update_id: int = Field(primary_key=True)
    payload: str
    received_at: datetime
    handled_at: datetime | None = Field(default=None, index=True)


class ConversationState(SQLModel, table=True):
    """Where a user is in a multi-step conversation (aiogram FSM), kept across restarts."""

    __tablename__ = "conversation_state"
    key: str = Field(primary_key=True, max_length=200)
    state: str | None = Field(default=None, max_length=200)
    data: str = "{}"
    updated_at: datetime


class ConversationDraft(SQLModel, table=True):
    """What a person wrote so far in a /report, /aar or /handover (`kind`): the step they
    were at and their answers. Kept at each answer, whatever then ends the conversation
    (/cancel, another command, a restart); offered back by the next command of its kind;
    gone when the conversation is submitted or started again, or untouched for
    CMCOORD_BOT_DRAFT_KEEP_DAYS. One per person and kind."""

    __tablename__ = "conversation_draft"
    person_id: uuid.UUID = Field(primary_key=True)
    kind: str = Field(primary_key=True, max_length=16)
    step: str = Field(max_length=200)
    data: str = "{}"
    updated_at: datetime


class LanguageChoice(SQLModel, table=True):
    """The language a Telegram user picked with /lang (otherwise their app's language is used)."""

    __tablename__ = "language_choice"
    telegram_user_id: int = Field(primary_key=True)
    locale: str = Field(max_length=8)
    chosen_at: datetime


class Delivery(SQLModel, table=True):
    """A notification attempt: in flight (no message id, not failed), then
    accepted or refused by Telegram. `sends` > 1: a crash mid-send repeated it.
    A press is taken only for a reply its message's buttons offered (`replies`)."""

    __table_args__ = (UniqueConstraint("notification_id", "attempt"),)
    id: int | None = Field(default=None, primary_key=True)
    notification_id: uuid.UUID = Field(index=True)
    attempt: int
    person_id: uuid.UUID
    chat_id: int
    message_id: int | None = None
    failed: str | None = None
    at: datetime
    replied: str | None = None
    sends: int = 0
    replies: str | None = None  # its buttons' replies, space-separated ("": none); None: sent before they were kept


BOT_TABLES: tuple[Table, ...] = (
    *SHARED_TABLES,
    InboxUpdate.__table__,  # type: ignore[attr-defined]
    ConversationState.__table__,  # type: ignore[attr-defined]
    ConversationDraft.__table__,  # type: ignore[attr-defined]
    Delivery.__table__,  # type: ignore[attr-defined]
    LanguageChoice.__table__,  # type: ignore[attr-defined]
)
