"""The queries notify answers (`cmcoord.notify.svc.<verb>`): requests, replies, subjects."""

from __future__ import annotations

import uuid

from pydantic import ConfigDict, Field, RootModel

from shared.contracts.query import IsoDateTime, Query, Reply, Request

# --- pending -----------------------------------------------------------------


class PendingRequest(Request):
    person_id: uuid.UUID
    limit: int = 20


class PendingButton(Reply):
    label: str
    reply: str


class PendingNotification(Reply):
    """A notification delivered to the person and still waiting for their answer (`caught_up`: kept
    for them while they had no Telegram link, owed now)."""

    notification_id: uuid.UUID
    kind: str
    text: str
    state: str
    sent_at: IsoDateTime | None
    buttons: list[PendingButton]
    caught_up: bool = False


class Pending(RootModel[list[PendingNotification]]):
    model_config = ConfigDict(frozen=True)


# --- calls -------------------------------------------------------------------


class CallsRequest(Request):
    person_id: uuid.UUID
    region: str | None = None  # None: every region's next call


class CallBrief(Reply):
    """A region's next call, in the list of every region's."""

    region: str
    name: str
    start: IsoDateTime
    link: str


class CallAnswers(Reply):
    join: int
    decline: int
    none: int


class NextCall(Reply):
    """A region's next call with its agenda, the person's answer and the counts. `you_chair`: the
    asker chairs it; only then does the reply carry `answers_by_name` ([name, answer or None])."""

    region: str
    name: str
    start: IsoDateTime
    end: IsoDateTime
    timezone: str
    link: str
    chair_email: str
    chair_name: str = ""  # as the roster has it; an older notify, or a chair the roster does not know: ""
    moved: bool
    agenda: list[str]
    my_answer: str | None
    agenda_full: str | None  # "person": this person's items are at the limit; "call": the call is full
    agenda_per_person: int
    answers: CallAnswers
    you_chair: bool = False  # an older notify does not say: not the chair
    chair_unknown: bool = False  # the roster did not say in time who chairs: `you_chair` is a "no" to ask again
    answers_by_name: list[tuple[str, str | None]] | None = Field(default=None, exclude_if=lambda v: v is None)


class Calls(RootModel[NextCall | list[CallBrief]]):
    """A region's next call (asked with a region), or every region's next call (asked without)."""

    model_config = ConfigDict(frozen=True)


# --- call_summary ------------------------------------------------------------


class CallSummaryRequest(Request):
    person_id: uuid.UUID
    region: str


class CallSummaryAudience(Reply):
    """What a summary sent now would do: the call it is about (None: no call has taken place in the
    last two weeks) and how many of those invited it would reach (the sender left out)."""

    region: str
    call_start: IsoDateTime | None
    timezone: str
    audience: int


# --- message_status ----------------------------------------------------------


class MessageStatusRequest(Request):
    reference: str = Field(min_length=3, max_length=20)


class MessageStatus(Reply):
    """An ad-hoc message's figures, with names (404: no message with that reference)."""

    reference: str
    region: str | None  # the message's region; None: to everyone
    urgent: bool
    created_at: IsoDateTime
    text: str
    total: int = 0
    sent: int = 0  # Telegram accepted it (not read: there is no read receipt)
    acknowledged: list[str] = []
    pending: list[str] = []  # not acknowledged yet (waiting, held for quiet hours, sent)
    unreachable: list[str] = []
    expired: list[str] = []


# --- the queries -------------------------------------------------------------

PENDING = Query("notify", "pending", PendingRequest, Pending,
                "A person's notifications delivered and still waiting for their answer, oldest first.")
CALLS = Query("notify", "calls", CallsRequest, Calls,
              "A region's next call (with a region; 404: none ahead), or every region's next call (without).")
CALL_SUMMARY = Query("notify", "call_summary", CallSummaryRequest, CallSummaryAudience,
                     "What a chair's call summary sent now would do: the call it is about, how many it would reach.")
MESSAGE_STATUS = Query("notify", "message_status", MessageStatusRequest, MessageStatus,
                       "An ad-hoc message's figures (sent, acknowledged, pending, unreachable; 404: unknown).")

QUERIES = (PENDING, CALLS, CALL_SUMMARY, MESSAGE_STATUS)
