"""Events HNS4D owns: a humanitarian notification sent to the parties of a country, each party's
acknowledgement of receipt, a party's silence past its deadline, an incident affecting a notified
site or movement. An acknowledgement is receipt, never approval: no field here says more."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, Field

from shared.events.envelope import Event, register

RecordKind = Literal["site", "movement"]
Via = Literal["telegram", "email", "recorded"]
Escalation = Literal["cmcoord_officer", "regional_adviser", "cmcs_desk"]


@register
class RecordSent(Event):
    """A CMCoord officer sent a site or movement (this version of it) to every party of its country."""

    type = "hns4d.record.sent"
    record_id: uuid.UUID
    reference: str = Field(min_length=4, max_length=30)
    revision: int = Field(ge=1, description="which revision of the record: a change is sent again")
    kind: RecordKind
    country: str = Field(description="ISO 3166-1 alpha-2")
    region: str | None = None
    parties: int = Field(ge=0, description="how many parties it went to")
    sent_at: AwareDatetime


@register
class PartyAcknowledged(Event):
    """A party acknowledged receipt of a notification (receipt only: not approval, not a guarantee)."""

    type = "hns4d.party.acknowledged"
    record_id: uuid.UUID
    reference: str = Field(min_length=4, max_length=30)
    revision: int = Field(ge=1, description="which revision of the record: a change is sent again")
    party_id: uuid.UUID
    country: str
    via: Via
    acknowledged_at: AwareDatetime
    on_time: bool = Field(description="before the deadline asked of the party")


@register
class PartySilent(Event):
    """A party has not acknowledged receipt by its deadline; who was told of it at this step."""

    type = "hns4d.party.silent"
    record_id: uuid.UUID
    reference: str = Field(min_length=4, max_length=30)
    revision: int = Field(ge=1, description="which revision of the record: a change is sent again")
    party_id: uuid.UUID
    country: str
    region: str | None = None
    due_at: AwareDatetime
    escalated_to: Escalation


@register
class IncidentRecorded(Event):
    """An officer recorded an incident affecting a notified site or movement. Restricted: the text
    names a humanitarian location and, where known, a party."""

    type = "hns4d.incident.recorded"
    incident_id: uuid.UUID
    record_id: uuid.UUID
    reference: str = Field(min_length=4, max_length=30)
    country: str
    region: str | None = None
    party_id: uuid.UUID | None = Field(default=None, description="the party involved, when known")
    occurred_at: AwareDatetime
    what: str = Field(min_length=1, max_length=3000)
    recorded_by: uuid.UUID | None = None
    recorded_at: AwareDatetime
