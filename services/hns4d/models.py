"""The HNS4D store: the parties of each country, the sites and movements notified to them, each
party's answer to each revision, incidents, and the append-only audit log of who saw and changed what.

A party's acknowledgement is receipt only: the store has no "approved" or "cleared" state, and a
record is never more than submitted, sent or cancelled."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import Table, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from services.hns4d.rules import Point
from shared.store import SHARED_TABLES


class Party(SQLModel, table=True):
    """A party to a conflict in a country, as notifications reach it: through its liaison on Telegram
    or by e-mail (a person on the roster, told by notify), or by the officer who records its answer
    (a phone call, a meeting)."""

    __tablename__ = "hns4d_party"
    __table_args__ = (UniqueConstraint("country", "name"),)
    id: uuid.UUID = Field(primary_key=True)
    country: str = Field(max_length=2, index=True)
    name: str = Field(max_length=120)
    kind: str = Field(max_length=20)  # state_forces | coalition | armed_group | peacekeeping
    channel: str = Field(max_length=10)  # telegram | email | recorded
    liaison_id: uuid.UUID | None = None  # the roster person told (telegram, email)
    active: bool = True
    # the desk may give it exports of what was sent to it (positions are sensitive): not unless allowed
    exports: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class Record(SQLModel, table=True):
    """A static site or a movement, as its organisation notified it; `revision` counts the changes
    sent to the parties again."""

    __tablename__ = "hns4d_record"
    id: uuid.UUID = Field(primary_key=True)
    reference: str = Field(unique=True, max_length=30)
    kind: str = Field(max_length=10)  # site | movement
    country: str = Field(max_length=2, index=True)
    region: str | None = Field(default=None, max_length=12, index=True)
    organisation: str = Field(max_length=200)
    submitted_by: uuid.UUID = Field(index=True)
    name: str = Field(max_length=200)  # the site's name, or the movement's (e.g. "Mopti–Konna convoy")
    function: str = Field(default="", max_length=200)  # a site's humanitarian function
    occupancy: int | None = None
    contact: str = Field(default="", max_length=200)  # a movement's contact on the road
    points: str  # JSON [[lat, lon], ...]: a site's one point, a movement's route in order
    starts_at: datetime | None = None  # a movement's start; a site's validity from
    ends_at: datetime | None = None
    vehicles: str = Field(default="", max_length=500)
    markings: str = Field(default="", max_length=500)
    emergency: bool = False
    state: str = Field(default="submitted", max_length=10, index=True)  # submitted | sent | cancelled
    revision: int = 1
    sent_by: uuid.UUID | None = None  # the CMCoord officer who sent it: told first of a party's silence
    warning: str = Field(default="", max_length=300)  # e.g. an emergency notified very late
    submitted_at: datetime
    changed_at: datetime

    @property
    def point_list(self) -> list[Point]:
        return [Point(lat, lon) for lat, lon in json.loads(self.points)]

    @staticmethod
    def points_text(points: list[Point]) -> str:
        return json.dumps([[p.lat, p.lon] for p in points])


class Forwarding(SQLModel, table=True):
    """One revision of a record asked of one party: when, by when, and the party's answer. A change or a
    cancellation supersedes what was asked before (its silence is not counted against the party)."""

    __tablename__ = "hns4d_forwarding"
    __table_args__ = (UniqueConstraint("record_id", "revision", "party_id"),)
    id: uuid.UUID = Field(primary_key=True)
    record_id: uuid.UUID = Field(index=True)
    revision: int
    party_id: uuid.UUID = Field(index=True)
    country: str = Field(max_length=2, index=True)
    sent_at: datetime = Field(index=True)
    due_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_via: str | None = Field(default=None, max_length=10)  # telegram | email | recorded
    acknowledged_by: str = Field(default="", max_length=200)  # who, as told (a recorded answer: the person named)
    how: str = Field(default="", max_length=200)  # a recorded answer: by phone, in a meeting …
    recorded_by: uuid.UUID | None = None  # the officer who recorded it
    superseded: bool = False
    silence_step: int = 0  # how many of the silence steps (officer, adviser, desk) were taken
    next_step_at: datetime | None = Field(default=None, index=True)


class Incident(SQLModel, table=True):
    __tablename__ = "hns4d_incident"
    id: uuid.UUID = Field(primary_key=True)
    record_id: uuid.UUID = Field(index=True)
    country: str = Field(max_length=2, index=True)
    party_id: uuid.UUID | None = None
    occurred_at: datetime = Field(index=True)
    what: str = Field(max_length=3000)
    recorded_by: uuid.UUID | None = None
    recorded_at: datetime


class AuditEntry(SQLModel, table=True):
    """Every view, export and change of a record, with who and when. Never updated nor deleted
    (the database refuses both: services/hns4d/store.py)."""

    __tablename__ = "hns4d_audit"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    who: str = Field(max_length=120)  # person:<id>, or the operator's login for a command
    action: str = Field(max_length=20)  # submitted, sent, changed, cancelled, acknowledged, incident, viewed, exported
    record_id: uuid.UUID | None = Field(default=None, index=True)
    detail: str = Field(default="", max_length=500)


HNS4D_TABLES: tuple[Table, ...] = (
    *SHARED_TABLES,
    *(m.__table__ for m in (Party, Record, Forwarding, Incident, AuditEntry)),  # type: ignore[attr-defined]
)
