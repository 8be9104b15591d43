"""The queries HNS4D answers (`cmcoord.hns4d.svc.<verb>`): a site or movement submitted from the bot,
and what a person submitted with each party's answer. The asker says who they are (`person_id`, as the
roster linked their Telegram account); HNS4D checks what they send, never their word for a party's answer."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, ConfigDict, Field, RootModel

from shared.contracts.query import Query, Reply, Request


class Submission(Request):
    """A site or a movement as its organisation describes it: points are [latitude, longitude] in decimal
    degrees (a site's one point, a movement's route in order), times with their offset."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    kind: Literal["site", "movement"]
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    organisation: str = Field(max_length=200)
    name: str = Field(max_length=200)
    points: list[tuple[float, float]] = Field(min_length=1, max_length=50)
    starts_at: AwareDatetime = Field(description="a movement's start; a site's validity from")
    ends_at: AwareDatetime
    function: str = Field(default="", max_length=200)
    occupancy: int | None = None
    contact: str = Field(default="", max_length=200)
    vehicles: str = Field(default="", max_length=500)
    markings: str = Field(default="", max_length=500)
    emergency: bool = False


class SubmitRequest(Request):
    submission_id: uuid.UUID = Field(description="the asker's id for it: asked again, the same answer")
    person_id: uuid.UUID
    submission: Submission


class Submitted(Reply):
    """The reference given (a CMCoord officer reviews and sends it), or why not, each problem a line."""

    reference: str | None = None
    problems: list[str] = []
    warning: str = ""


class MineRequest(Request):
    """The records the person may see (their own, their organisation's, their country's or region's
    by their post; the desk, all): their own first, then the others, each newest first."""

    person_id: uuid.UUID
    limit: int = Field(default=5, ge=1, le=20)


class PartyStatus(Reply):
    """One party's answer to the current revision: receipt acknowledged (and how, when the CMCoord officer
    recorded it), silence past the deadline, or still within it. Never more than receipt."""

    party: str
    state: Literal["waiting", "acknowledged", "silent"]
    sent_at: AwareDatetime
    due_at: AwareDatetime
    acknowledged_at: AwareDatetime | None = None
    recorded_how: str = Field(default="", description="an answer the officer recorded: how (by phone …)")
    recorded_by: str = Field(default="", description="an answer the officer recorded: who answered")


class RecordStatus(Reply):
    """A notification as its submitter follows it: per party, receipt acknowledged or silence."""

    reference: str
    kind: str
    country: str
    name: str
    state: str  # submitted | sent | cancelled
    revision: int
    lines: list[str] = Field(description="the same in English lines (what an older bot shows)")
    organisation: str = ""
    asker_submitted: bool = Field(default=True, description="false: a record the asker sees as a member of its "
                                                            "organisation, its country's officer, its region's "
                                                            "adviser or the desk")
    warning: str = ""
    parties: list[PartyStatus] | None = Field(default=None, description="none from an older HNS4D: read `lines`")


class Mine(RootModel[list[RecordStatus]]):
    model_config = ConfigDict(frozen=True)


SUBMIT = Query("hns4d", "submit", SubmitRequest, Submitted,
               "Submit a site or movement: its reference, or each problem (positions, lead time, duplicates).")
MINE = Query("hns4d", "mine", MineRequest, Mine,
             "The records a person may see, their own first, newest first, with each party's acknowledgement "
             "of receipt or silence.")
QUERIES = (SUBMIT, MINE)
