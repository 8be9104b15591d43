"""The lessons store: observations and AARs as searchable items, the AARs owed, reviews."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Table
from sqlmodel import Field, SQLModel

from shared.store import SHARED_TABLES


class Item(SQLModel, table=True):
    """An observation (a field report, an incident HNS4D recorded) or a submitted AAR; review makes it
    a lesson identified, then learned. `seq` is the full-text index's row id."""

    __tablename__ = "lesson_item"
    seq: int | None = Field(default=None, primary_key=True)
    id: uuid.UUID = Field(unique=True)
    reference: str = Field(unique=True, max_length=20)
    kind: str = Field(max_length=12)  # observation | aar
    author_id: uuid.UUID = Field(index=True)
    country: str = Field(max_length=2, index=True)
    region: str | None = Field(default=None, max_length=12, index=True)
    themes: str = Field(default="", max_length=300)  # space-separated codes (the item_theme rows index them)
    classification: str = Field(max_length=12, index=True)
    status: str = Field(default="new", max_length=12, index=True)  # new | identified | learned | merged
    title: str = Field(max_length=200)
    body: str
    tags: str = Field(default="", max_length=500)
    facets: str = ""  # what the full-text index knows besides the text (search.facets_of), for filters
    # the title's and body's words as the full-text index knows them: stems (services/lessons/stemming.py)
    title_terms: str = ""
    body_terms: str = ""
    action: str = ""  # what was done about it (lesson learned)
    merged_into: uuid.UUID | None = None
    aar_id: uuid.UUID | None = None
    attachment_kind: str | None = Field(default=None, max_length=12)
    attachment_file_id: str | None = Field(default=None, max_length=300)
    attachment_name: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(index=True)

    @property
    def theme_list(self) -> list[str]:
        return self.themes.split()


class ItemTheme(SQLModel, table=True):
    __tablename__ = "item_theme"
    theme: str = Field(primary_key=True, max_length=30)
    item_seq: int = Field(primary_key=True, foreign_key="lesson_item.seq")


class ItemLink(SQLModel, table=True):
    """`item_id` resembles the earlier `similar_id` (same themes, similar text): a recurrence."""

    __tablename__ = "item_link"
    item_id: uuid.UUID = Field(primary_key=True)
    similar_id: uuid.UUID = Field(primary_key=True, index=True)
    score: float


class ReviewStep(SQLModel, table=True):
    """Every review action, with who and when."""

    __tablename__ = "review_step"
    id: int | None = Field(default=None, primary_key=True)
    item_id: uuid.UUID = Field(index=True)
    action: str = Field(max_length=12)
    detail: str = ""
    by: str = Field(max_length=200)
    at: datetime


class Aar(SQLModel, table=True):
    """An after action review owed by an officer, its reminders and escalations."""

    id: uuid.UUID = Field(primary_key=True)
    person_id: uuid.UUID = Field(index=True)
    deployment_id: uuid.UUID | None = Field(default=None, index=True)
    operation: str = Field(default="", max_length=200)
    country: str = Field(max_length=2)
    region: str | None = Field(default=None, max_length=12, index=True)
    due_on: date = Field(index=True)
    requested_by: str = Field(default="", max_length=200)  # empty: the deployment's end
    created_at: datetime
    state: str = Field(default="open", max_length=12, index=True)  # open | submitted
    submitted_at: datetime | None = None
    item_id: uuid.UUID | None = None
    next_step: int = 0  # index of the next reminder or escalation (duties.STEPS)
    next_at: datetime | None = Field(default=None, index=True)
    version: int = 0  # a pass claims its step by bumping it: two replicas never both act


LESSONS_TABLES: tuple[Table, ...] = (
    *SHARED_TABLES,
    *(m.__table__ for m in (Item, ItemTheme, ItemLink, ReviewStep, Aar)),  # type: ignore[attr-defined]
)

# Columns the database keeps beside the models (PostgreSQL's generated full-text column).
UNMAPPED_COLUMNS = (("lesson_item", "search"),)
