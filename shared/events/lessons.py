"""Events lessons owns: AARs due, overdue and completed, lessons recorded and reviewed."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import AwareDatetime, Field

from shared.events.envelope import Event, register
from shared.themes import Classification


LessonKind = Literal["observation", "aar"]


@register
class AarDue(Event):
    """An after action review is expected from an officer: after a deployment ended, or
    because CMCS asked for one on an operation."""

    type = "lessons.aar.due"
    aar_id: uuid.UUID
    person_id: uuid.UUID
    deployment_id: uuid.UUID | None = None
    operation: str = Field(default="", max_length=200)
    country: str
    region: str | None = None
    due_on: date


@register
class AarOverdue(Event):
    """An AAR is past its due date and was escalated (to the regional adviser, then the desk)."""

    type = "lessons.aar.overdue"
    aar_id: uuid.UUID
    person_id: uuid.UUID
    country: str
    region: str | None = None
    due_on: date
    escalated_to: Literal["regional_adviser", "cmcs_desk"]


@register
class AarCompleted(Event):
    """An AAR was submitted: its reminders end."""

    type = "lessons.aar.completed"
    aar_id: uuid.UUID
    person_id: uuid.UUID
    region: str | None = None
    due_on: date
    submitted_on: date
    item_id: uuid.UUID


@register
class LessonRecorded(Event):
    """A field report (observation) or a submitted AAR entered the lessons store (no text here: ask lessons)."""

    type = "lessons.item.recorded"
    item_id: uuid.UUID
    reference: str
    kind: LessonKind
    country: str
    region: str | None = None
    themes: list[str] = Field(default_factory=list)
    classification: Classification
    similar_to: list[uuid.UUID] = Field(default_factory=list, description="earlier items it resembles")


@register
class LessonReviewed(Event):
    """A reviewer tagged, merged or promoted an item (identified, then learned)."""

    type = "lessons.item.reviewed"
    item_id: uuid.UUID
    reference: str
    action: Literal["tagged", "merged", "identified", "learned"]
    status: str
    by: str
    at: AwareDatetime
