"""Roster tables (owned by the roster service alone); the shapes of its answers are its query
contracts (shared/contracts/roster.py)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import Table, UniqueConstraint, false
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Field, SQLModel, col

from shared.store import SHARED_TABLES


def _uuid() -> uuid.UUID:
    return uuid.uuid4()


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


def join_list(items: list[str]) -> str:
    return ";".join(items)


class Person(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    email: str = Field(unique=True, max_length=254)
    name: str = Field(max_length=200)
    phone: str = Field(default="", max_length=64)
    telegram_username: str = Field(default="", max_length=64)
    organisation: str = Field(default="", max_length=120)
    languages: str = Field(default="", max_length=200, description="';'-separated")
    timezone: str = Field(default="UTC", max_length=64)
    created_at: datetime
    updated_at: datetime
    # The bot's, not an import's: the language the person reads the bot in (en, fr, ar); None: not told yet.
    locale: str | None = Field(default=None, max_length=8)
    # A party's liaison (humanitarian notifications): on the roster to be told and to answer, never a
    # member of the community (no deployment), so the bot shows them nothing of the roster.
    liaison: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class Post(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("country", "duty_station", "title"),)
    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    country: str = Field(max_length=2, index=True, description="ISO 3166-1 alpha-2")
    duty_station: str = Field(max_length=120)
    region: str = Field(max_length=12, index=True)
    title: str = Field(max_length=160)
    # rotation state: the open gap (if any) and how many alerts it has had
    gapped_since: date | None = None
    gap_alerts_sent: int = 0


class Deployment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("person_id", "post_id", "start"),)
    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    post_id: uuid.UUID = Field(foreign_key="post.id", index=True)
    role: str = Field(max_length=32)
    start: date
    planned_end: date
    actual_end: date | None = None
    hats: str = Field(default="", max_length=500, description="other hats held, ';'-separated")
    created_at: datetime
    updated_at: datetime
    # rotation state: which facts have been announced
    started_announced: bool = False
    ending_soon_announced_for: date | None = None
    ended_announced: bool = False

    @property
    def end(self) -> date:
        return self.actual_end or self.planned_end

    @staticmethod
    def on(day: date) -> ColumnElement[bool]:
        """In SQL: the deployment runs that day (started, and not ended before it)."""
        return (col(Deployment.start) <= day) & (
            (col(Deployment.actual_end).is_(None) & (col(Deployment.planned_end) >= day))
            | (col(Deployment.actual_end) >= day))

    @staticmethod
    def keeps_member(day: date, grace: timedelta) -> ColumnElement[bool]:
        """In SQL: the deployment makes its person a member of the community that day: it has not
        ended, or ended at most `grace` before (one assigned to start later counts too)."""
        cutoff = day - grace
        return (col(Deployment.actual_end).is_(None) & (col(Deployment.planned_end) >= cutoff)) | (
            col(Deployment.actual_end) >= cutoff)


class Training(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("person_id", "course"),)
    id: int | None = Field(default=None, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    course: str = Field(max_length=120)
    completed_on: date | None = None


class CounterpartContact(SQLModel, table=True):
    """An armed-actor or authority contact in a country (restricted by default)."""

    __tablename__ = "counterpart_contact"
    __table_args__ = (UniqueConstraint("country", "unit", "function"),)
    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    country: str = Field(max_length=2, index=True)
    unit: str = Field(max_length=200, description="unit or organisation")
    function: str = Field(max_length=200)
    channel: str = Field(max_length=300, description="how to reach them")
    classification: str = Field(default="restricted", max_length=16)
    updated_at: datetime


class TelegramLink(SQLModel, table=True):
    __tablename__ = "telegram_link"
    person_id: uuid.UUID = Field(foreign_key="person.id", primary_key=True)
    telegram_user_id: int = Field(unique=True)
    linked_at: datetime


class RegistrationToken(SQLModel, table=True):
    __tablename__ = "registration_token"
    token_hash: str = Field(primary_key=True, max_length=64, description="sha256 hex of the token")
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None  # a newer invitation for the person, or `cmcoord roster revoke`


class TelegramLinkHold(SQLModel, table=True):
    """A link waiting for the CMCS desk (`cmcoord roster confirm-link`): the invitation was opened
    by a Telegram account whose username is not the one the roster has for the person. One per
    person: the latest."""

    __tablename__ = "telegram_link_hold"
    person_id: uuid.UUID = Field(foreign_key="person.id", primary_key=True)
    telegram_user_id: int
    telegram_username: str = Field(default="", max_length=64)
    held_at: datetime


class HandoverNote(SQLModel, table=True):
    __tablename__ = "handover_note"
    id: uuid.UUID = Field(default_factory=_uuid, primary_key=True)
    deployment_id: uuid.UUID = Field(foreign_key="deployment.id", unique=True)
    post_id: uuid.UUID = Field(foreign_key="post.id", index=True)
    person_id: uuid.UUID = Field(foreign_key="person.id")
    key_counterparts: str = ""
    open_issues: str = ""
    recurring_meetings: str = ""
    where_files_live: str = ""
    advice_to_successor: str = ""
    revision: int = 1
    submitted_at: datetime


class RosterRevision(SQLModel, table=True):
    """Bumped by every write that changes what a query may answer (cache key)."""

    __tablename__ = "roster_revision"
    id: int = Field(default=1, primary_key=True)
    revision: int = 0


class ScanClock(SQLModel, table=True):
    """The rotation scan's clock (one row): when the last accepted scan ran; after a confirmed
    jump, the day of the last scan before it (until a scan shows whether the jump was wrong);
    how many times announcements made early were taken back (the epoch, part of later
    announcements' ids). See services/roster/rotation.py."""

    __tablename__ = "rotation_scan_clock"
    id: int = Field(default=1, primary_key=True)
    last_scan_at: datetime | None = None
    jump_from: date | None = None
    epoch: int = 0


ROSTER_TABLES: tuple[Table, ...] = (
    *SHARED_TABLES,
    *(
        model.__table__  # type: ignore[attr-defined]
        for model in (
            Person,
            Post,
            Deployment,
            Training,
            CounterpartContact,
            TelegramLink,
            RegistrationToken,
            HandoverNote,
            ScanClock,
            TelegramLinkHold,
            RosterRevision,  # last: a store holding it was made by the first revision (shared.migrations)
        )
    ),
)
