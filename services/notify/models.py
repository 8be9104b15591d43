"""The notify store: every notification's life, step by step."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Table, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.store import SHARED_TABLES


class Notification(SQLModel, table=True):
    """One per (kind, subject, recipient, occurrence): a repeated request finds it and changes nothing."""

    __table_args__ = (UniqueConstraint("kind", "subject", "person_id", "occurrence"),)
    id: uuid.UUID = Field(primary_key=True)
    kind: str = Field(max_length=40, index=True)
    subject: str = Field(max_length=80, index=True)
    occurrence: str = Field(max_length=80)
    person_id: uuid.UUID = Field(index=True)
    person_name: str = Field(default="", max_length=200)
    chat_id: int | None = None  # None: the person has no Telegram link
    timezone: str = Field(default="UTC", max_length=64)
    region: str | None = Field(default=None, max_length=12)
    text: str
    buttons: str = "[]"  # JSON list of {label, reply}
    urgent: bool = False
    document: str | None = Field(default=None, max_length=200)  # sent as a file, the text as its caption
    state: str = Field(default="queued", max_length=16, index=True)
    attempts: int = 0  # deliver commands issued
    escalation_level: int = 0  # 1: regional adviser told, 2: CMCS desk told
    created_at: datetime
    first_sent_at: datetime | None = None  # when the first deliver command went out
    sent_at: datetime | None = None  # when Telegram first accepted it
    acknowledged_at: datetime | None = None
    reply: str | None = None
    failed_reason: str | None = None
    due_at: datetime | None = Field(default=None, index=True)
    due_action: str | None = Field(default=None, max_length=16)
    version: int = 0  # each scheduled step claims the row by bumping it: two notify processes never both act
    depth: int = 0  # 0: about a fact; 1: about another notification (an escalation); 2: about a failed alert
    folded_on: str | None = Field(default=None, max_length=10)  # over the day's cap: in that day's summary instead
    # the copies of one alert to a role (the desk, a region's advisers) share it: the first acknowledgement closes all
    group_id: uuid.UUID | None = Field(default=None, index=True)
    # when it was meant to go to a person without Telegram: sent then (or at once) when they link
    owed_at: datetime | None = None
    locale: str = Field(default="en", max_length=8)  # the reader's language: what a summary sent later is written in
    email: str = Field(default="", max_length=254)  # where it goes when Telegram cannot reach them ("": nowhere)
    emailed_at: datetime | None = None  # when the mail server took it


class Transition(SQLModel, table=True):
    """Every change of state, with why."""

    id: int | None = Field(default=None, primary_key=True)
    notification_id: uuid.UUID = Field(index=True)
    from_state: str | None = Field(default=None, max_length=16)
    to_state: str = Field(max_length=16)
    at: datetime
    reason: str = Field(default="", max_length=200)


class DailySent(SQLModel, table=True):
    """Non-urgent messages sent to a person on one of their local days (the daily cap counts them)."""

    __tablename__ = "daily_sent"
    person_id: uuid.UUID = Field(primary_key=True)
    day: str = Field(primary_key=True, max_length=10)
    count: int = 0


class DeskNotice(SQLModel, table=True):
    """Something the CMCS desk (and the region's adviser) should hear of once, in a daily summary:
    a person Telegram cannot reach, or a kind of step that failed. More of the same only counts."""

    __tablename__ = "desk_notice"
    key: str = Field(primary_key=True, max_length=120)  # unreached:<person id> | step:<kind>:<error>
    region: str | None = Field(default=None, max_length=12, index=True)
    line: str = Field(max_length=400)
    count: int = 1
    depth: int = 0  # of the notification behind it
    first_at: datetime
    last_at: datetime
    told_at: datetime | None = Field(default=None, index=True)


class HandoverSeen(SQLModel, table=True):
    """Deployments whose handover note the roster recorded (from roster.handover.recorded)."""

    __tablename__ = "handover_seen"
    deployment_id: uuid.UUID = Field(primary_key=True)
    post_id: uuid.UUID = Field(index=True)
    person_id: uuid.UUID
    note_id: uuid.UUID
    recorded_at: datetime


class Settled(SQLModel, table=True):
    """A sender's matters settled (notify.notification.settled), by kind: a request about one arriving
    after it (retried while the roster was away) creates nothing."""

    __tablename__ = "notify_settled"
    kind: str = Field(primary_key=True, max_length=60)
    about: str = Field(primary_key=True, max_length=80)
    reason: str = Field(max_length=200)
    settled_at: datetime


class Succession(SQLModel, table=True):
    """A successor assigned to a post still held: the outgoing officer's note goes to them."""

    outgoing_deployment_id: uuid.UUID = Field(primary_key=True)
    incoming_person_id: uuid.UUID = Field(primary_key=True)
    incoming_deployment_id: uuid.UUID
    post_id: uuid.UUID
    recorded_at: datetime


class CallSchedule(SQLModel, table=True):
    """A region's call where it differs from the default (every second week, 13:00 regional time)."""

    __tablename__ = "call_schedule"
    region: str = Field(primary_key=True, max_length=12)
    rrule: str = Field(max_length=200)
    first_day: date
    local_time: str = Field(max_length=5)  # HH:MM in `timezone`
    timezone: str = Field(max_length=64)
    duration_minutes: int = 60
    link: str = Field(default="", max_length=500)
    chair_email: str = Field(default="", max_length=320)
    updated_at: datetime | None = None


class CallChange(SQLModel, table=True):
    """One occurrence cancelled (`moved_to` None) or moved, known by its original start (UTC)."""

    __tablename__ = "call_change"
    region: str = Field(primary_key=True, max_length=12)
    original: datetime = Field(primary_key=True)
    moved_to: datetime | None = None
    changed_at: datetime
    told_at: datetime | None = None  # those already reminded of it were told


class CallPlanned(SQLModel, table=True):
    """A call's reminders of one kind were planned for this start: not asked of the roster again."""

    __tablename__ = "call_planned"
    about: str = Field(primary_key=True, max_length=80)
    kind: str = Field(primary_key=True, max_length=40)
    occurrence: str = Field(primary_key=True, max_length=80)
    at: datetime


class CallAgendaItem(SQLModel, table=True):
    """An item an officer added to a call's agenda (the region's next call when it was added)."""

    __tablename__ = "call_agenda_item"
    id: int | None = Field(default=None, primary_key=True)
    region: str = Field(max_length=12, index=True)
    occurrence: str = Field(max_length=20, index=True)  # the call's key (its original start)
    person_id: uuid.UUID
    text: str = Field(max_length=500)
    added_at: datetime
    event_id: uuid.UUID = Field(unique=True)  # the bot's event: added once


class CallSummary(SQLModel, table=True):
    """What the chair sent after a call (kept; it also went to those reminded of the call)."""

    __tablename__ = "call_summary"
    id: int | None = Field(default=None, primary_key=True)
    region: str = Field(max_length=12, index=True)
    occurrence: str = Field(max_length=20)  # the call's key (its original start)
    person_id: uuid.UUID
    text: str
    sent_at: datetime
    event_id: uuid.UUID = Field(unique=True)


class CallSubscriber(SQLModel, table=True):
    """Someone who follows a region's calls without being deployed there."""

    __tablename__ = "call_subscriber"
    region: str = Field(primary_key=True, max_length=12)
    person_id: uuid.UUID = Field(primary_key=True)
    since: datetime


NOTIFY_TABLES: tuple[Table, ...] = (
    *SHARED_TABLES,
    Notification.__table__,  # type: ignore[attr-defined]
    Transition.__table__,  # type: ignore[attr-defined]
    DailySent.__table__,  # type: ignore[attr-defined]
    DeskNotice.__table__,  # type: ignore[attr-defined]
    HandoverSeen.__table__,  # type: ignore[attr-defined]
    Settled.__table__,  # type: ignore[attr-defined]
    Succession.__table__,  # type: ignore[attr-defined]
    CallSchedule.__table__,  # type: ignore[attr-defined]
    CallChange.__table__,  # type: ignore[attr-defined]
    CallPlanned.__table__,  # type: ignore[attr-defined]
    CallAgendaItem.__table__,  # type: ignore[attr-defined]
    CallSubscriber.__table__,  # type: ignore[attr-defined]
    CallSummary.__table__,  # type: ignore[attr-defined]
)
