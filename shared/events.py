"""Versioned event contracts: the only coupling between services.

An event travels in an `Envelope` (id, type, version, occurred_at, source,
correlation_id, data) on the subject `cmcoord.<type>.v<version>`, where `type`
is `<owner>.<entity>.<event>`. Both envelope and data ignore fields they do not
know, so a producer may add fields within a major version; a breaking change is
a new class with `version = 2`, published on its own subject beside v1 until
every consumer has moved.

Events (past tense) state facts; commands (imperative) ask the owner to act.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.themes import Classification

# Namespace for deterministic ids (uuid5): the same fact always gets the same id,
# so JetStream de-duplication and consumers' idempotency records can recognise it.
EVENT_NAMESPACE = uuid.UUID("6f1d8a0e-9c55-4d1e-9a43-0c3e8f3c2b7a")

SUBJECT_ROOT = "cmcoord"
# A notification's text, at most (Telegram takes 4,096 characters of a message; the bot adds markup)
TEXT_MAX = 3500


def deterministic_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, "|".join(str(p) for p in parts))


class Event(BaseModel):
    """Base of every event and command payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: ClassVar[str]
    version: ClassVar[int] = 1
    # Who else may publish it: a command to its owner (lessons asks notify to tell people).
    # Consumers refuse it from anyone else, and shared/permissions.py grants exactly these.
    senders: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def subject(cls) -> str:
        return f"{SUBJECT_ROOT}.{cls.type}.v{cls.version}"

    @classmethod
    def owner(cls) -> str:
        """The service whose subject and stream it is (`cmcoord.<owner>.…`)."""
        return cls.type.partition(".")[0]


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID
    type: str
    version: int
    occurred_at: AwareDatetime
    source: str
    correlation_id: str
    data: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def subject(self) -> str:
        return f"{SUBJECT_ROOT}.{self.type}.v{self.version}"

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        source: str,
        occurred_at: datetime,
        id: uuid.UUID | None = None,
        correlation_id: str | None = None,
    ) -> Envelope:
        event_id = id or uuid.uuid4()
        return cls(
            id=event_id,
            type=event.type,
            version=event.version,
            occurred_at=occurred_at,
            source=source,
            correlation_id=correlation_id or str(event_id),
            data=event.model_dump(mode="json"),
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)

    def decode(self) -> Event:
        """The typed payload; raises KeyError for an unknown type/version and
        pydantic.ValidationError for a payload that breaks the schema."""
        return REGISTRY[(self.type, self.version)].model_validate(self.data)


REGISTRY: dict[tuple[str, int], type[Event]] = {}


def register(cls: type[Event]) -> type[Event]:
    key = (cls.type, cls.version)
    if key in REGISTRY:
        raise ValueError(f"event {key} registered twice")
    REGISTRY[key] = cls
    return cls


Role = Literal["cmcoord_officer", "focal_point", "surge", "regional_adviser", "cmcs_desk"]
ROLES: tuple[str, ...] = Role.__args__  # type: ignore[attr-defined]


# --- roster -----------------------------------------------------------------


class _DeploymentFacts(Event):
    deployment_id: uuid.UUID
    person_id: uuid.UUID
    post_id: uuid.UUID
    country: str = Field(description="ISO 3166-1 alpha-2")
    region: str = Field(description="OCHA regional office code, e.g. ROWCA")
    role: Role
    start: date
    planned_end: date


@register
class DeploymentAssigned(_DeploymentFacts):
    """A person was assigned to a post (the deployment may start later)."""

    type = "roster.deployment.assigned"


@register
class DeploymentStarted(_DeploymentFacts):
    """A deployment's start date has come: the person now holds the post."""

    type = "roster.deployment.started"


@register
class DeploymentEndingSoon(_DeploymentFacts):
    """Planned end within the handover window; re-emitted when the end date moves."""

    type = "roster.deployment.ending_soon"
    days_left: int
    successor_person_id: uuid.UUID | None = None


@register
class DeploymentEnded(_DeploymentFacts):
    """A deployment is over (actual end, or the planned end passed); AARs fall due from here."""

    type = "roster.deployment.ended"
    ended_on: date


@register
class PostGapped(Event):
    """A post's last deployment ended and nobody holds it; repeated every N days."""

    type = "roster.post.gapped"
    post_id: uuid.UUID
    country: str
    region: str
    title: str
    duty_station: str
    gapped_since: date
    alert_number: int = Field(ge=1, description="1 for the first alert, then 2, 3, … every repeat period")
    last_deployment_id: uuid.UUID | None = None


@register
class PostFilled(Event):
    """A gapped post has someone in it again: gap alerts stop."""

    type = "roster.post.filled"
    post_id: uuid.UUID
    country: str
    region: str
    deployment_id: uuid.UUID
    person_id: uuid.UUID
    filled_on: date
    gapped_since: date


@register
class PersonChanged(Event):
    """A person was added or their record changed (no contact details here: ask the roster)."""

    type = "roster.person.changed"
    person_id: uuid.UUID
    created: bool


@register
class HandoverRecorded(Event):
    """A handover note is stored against the post (revision counts resubmissions)."""

    type = "roster.handover.recorded"
    note_id: uuid.UUID
    deployment_id: uuid.UUID
    post_id: uuid.UUID
    person_id: uuid.UUID
    revision: int


@register
class TelegramLinked(Event):
    """A roster person redeemed an invitation: their Telegram account is linked (or the CMCS
    desk confirmed a link that was held because the account's username was not the roster's)."""

    type = "roster.telegram.linked"
    person_id: uuid.UUID
    telegram_user_id: int
    confirmed_by_desk: bool = Field(default=False, description="a held link the desk confirmed (the person is told)")


@register
class TelegramUnlinked(Event):
    """A Telegram account is no longer linked to its roster person: the desk revoked the link
    (`revoked`), or the person linked another account (`moved`). The account is told."""

    type = "roster.telegram.unlinked"
    person_id: uuid.UUID
    telegram_user_id: int = Field(description="the account that was linked (the chat to tell)")
    reason: Literal["revoked", "moved"]


@register
class TelegramLinkHeld(Event):
    """An invitation was opened by a Telegram account whose username is not the one the roster
    has for the person: the link waits for the CMCS desk (`cmcoord roster confirm-link`)."""

    type = "roster.telegram.link_held"
    person_id: uuid.UUID
    telegram_user_id: int
    telegram_username: str = Field(default="", max_length=64, description="the registering account's (may be none)")


# Notification kinds about a person's Telegram link. Notify sends them; on delivering one of
# LINK_CHANGED_KINDS the bot forgets the roster card it keeps for that chat, so the change shows at once.
TELEGRAM_UNLINKED_KIND = "telegram.unlinked"
TELEGRAM_LINK_HELD_KIND = "telegram.link_held"  # to the CMCS desk
TELEGRAM_LINK_CONFIRMED_KIND = "telegram.link_confirmed"
LINK_CHANGED_KINDS = frozenset({TELEGRAM_UNLINKED_KIND, TELEGRAM_LINK_CONFIRMED_KIND})


# --- notify -----------------------------------------------------------------


class ReplyButton(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    label: str = Field(min_length=1, max_length=40)
    reply: str = Field(pattern=r"^[a-z_]{1,16}$", description="what pressing it answers, e.g. ack, join, decline")


@register
class DeliverTelegram(Event):
    """Command to the bot: send this notification (attempt N) to a Telegram chat."""

    type = "notify.deliver.telegram"
    notification_id: uuid.UUID
    attempt: int = Field(default=1, ge=1)
    person_id: uuid.UUID
    chat_id: int
    kind: str
    text: str = Field(min_length=1, max_length=TEXT_MAX, description="plain text; the bot escapes it")
    buttons: list[ReplyButton] = Field(default_factory=list, max_length=6)
    urgent: bool = False
    document: str | None = Field(default=None, max_length=200, description="a file in the DOCUMENTS object store")


@register
class NotificationClosed(Event):
    """Command to the bot: this delivered copy no longer waits for an answer (someone else
    acknowledged the alert it belongs to, or the notification it escalated): its message
    shows who acknowledged, and when, without its buttons."""

    type = "notify.notification.closed"
    notification_id: uuid.UUID
    person_id: uuid.UUID
    chat_id: int
    text: str = Field(min_length=1, max_length=TEXT_MAX, description="the copy's text as sent (plain; the bot escapes it)")
    document: bool = Field(default=False, description="sent as a file: the text is its caption")
    acknowledged_by: str = Field(max_length=200, description="the name of whoever acknowledged")
    acknowledged_at: AwareDatetime


@register
class NotificationRequested(Event):
    """Command to notify from any service: tell these people (by id, or a role in a
    region). Notify owns the notification from here; one per (kind, subject,
    recipient, occurrence), so asking again changes nothing."""

    type = "notify.notification.requested"
    senders = ("lessons", "bot")  # the bot: ad-hoc messages of advisers and the desk (/send)
    kind: str = Field(min_length=1, max_length=40, pattern=r"^[a-z_.]+$")
    about: str = Field(min_length=1, max_length=80, description="the notification's subject, e.g. a post or AAR id")
    occurrence: str = Field(default="", max_length=80, description="which time: a date, an alert number")
    person_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    role: Role | None = Field(default=None, description="or everyone holding this role (in `region`)")
    everyone: bool = Field(default=False, description="or every member with a linked Telegram account")
    region: str | None = None
    text: str = Field(min_length=1, max_length=TEXT_MAX)
    buttons: list[ReplyButton] = Field(default_factory=list, max_length=6)
    urgent: bool = False
    document: str | None = Field(default=None, max_length=200,
                                 description="a file in the DOCUMENTS object store, sent with the text as caption")


@register
class NotificationTransitioned(Event):
    """A notification changed state: queued, sent (Telegram accepted it), acknowledged
    (the person pressed a button), escalated, expired or failed."""

    type = "notify.notification.transitioned"
    notification_id: uuid.UUID
    kind: str
    about: str = Field(description="the notification's subject")
    occurrence: str
    person_id: uuid.UUID
    region: str | None = None
    from_state: str | None = None
    to_state: str
    reason: str = ""
    at: AwareDatetime


# --- bot --------------------------------------------------------------------


@register
class DeliverySent(Event):
    """Telegram accepted the message (no read receipt exists: this is not an acknowledgement)."""

    type = "bot.delivery.sent"
    notification_id: uuid.UUID
    attempt: int
    person_id: uuid.UUID
    message_id: int


@register
class DeliveryFailed(Event):
    """Telegram refused the message for good (the user blocked the bot, the chat is gone)."""

    type = "bot.delivery.failed"
    notification_id: uuid.UUID
    attempt: int
    person_id: uuid.UUID
    reason: str


@register
class NotificationReplied(Event):
    """The recipient pressed a button of the notification: the acknowledgement."""

    type = "bot.notification.replied"
    notification_id: uuid.UUID
    person_id: uuid.UUID
    reply: str
    replied_at: AwareDatetime



@register
class DepartureChanged(Event):
    """The outgoing officer gave a new departure date (asked two days before the planned end)."""

    type = "bot.departure.changed"
    person_id: uuid.UUID
    deployment_id: uuid.UUID
    planned_end: date
    changed_at: AwareDatetime


@register
class CallAgendaAdded(Event):
    """An officer added an item to the agenda of a region's next call."""

    type = "bot.call.agenda_added"
    person_id: uuid.UUID
    region: str = Field(min_length=2, max_length=12)
    text: str = Field(min_length=1, max_length=500)
    added_at: AwareDatetime


@register
class CallSubscriptionChanged(Event):
    """An officer subscribed to (or left) a region's calls beyond those of their own region."""

    type = "bot.call.subscription_changed"
    person_id: uuid.UUID
    region: str = Field(min_length=2, max_length=12)
    subscribed: bool
    at: AwareDatetime


@register
class CallSummarySent(Event):
    """A call's chair sent its summary from the bot (the bot checked they chair it)."""

    type = "bot.call.summary_sent"
    person_id: uuid.UUID
    region: str = Field(min_length=2, max_length=12)
    text: str = Field(min_length=1, max_length=3000)
    sent_at: AwareDatetime


@register
class ReportSubmitted(Event):
    """An officer sent a field report (an observation) from the bot; `reference` is what they were told."""

    type = "bot.report.submitted"
    report_id: uuid.UUID
    reference: str = Field(min_length=4, max_length=20)
    person_id: uuid.UUID
    text: str = Field(min_length=1, max_length=6000)
    country: str = Field(description="ISO 3166-1 alpha-2")
    themes: list[str] = Field(default_factory=list, max_length=11)
    classification: Classification = "community"
    attachment_kind: Literal["photo", "document"] | None = None
    attachment_file_id: str | None = Field(default=None, max_length=300, description="Telegram's file id")
    attachment_name: str | None = Field(default=None, max_length=200)
    submitted_at: AwareDatetime


@register
class AarSubmitted(Event):
    """An officer finished an after action review in the bot (the five questions)."""

    type = "bot.aar.submitted"
    aar_id: uuid.UUID
    person_id: uuid.UUID
    planned: str = Field(default="", max_length=3000)
    happened: str = Field(default="", max_length=3000)
    difference: str = Field(default="", max_length=3000)
    sustain: str = Field(default="", max_length=3000)
    improve: str = Field(default="", max_length=3000)
    themes: list[str] = Field(default_factory=list, max_length=11)
    classification: Classification = "community"
    country: str = Field(default="", description="where (ISO alpha-2); for an AAR nobody asked for")
    submitted_at: AwareDatetime


@register
class HandoverNoteSubmitted(Event):
    """An outgoing officer finished the handover note in the bot."""

    type = "bot.handover.submitted"
    person_id: uuid.UUID
    deployment_id: uuid.UUID
    key_counterparts: str = ""
    open_issues: str = ""
    recurring_meetings: str = ""
    where_files_live: str = ""
    advice_to_successor: str = ""
    submitted_at: AwareDatetime


@register
class ProfileUpdated(Event):
    """An officer changed their own phone, languages or hats in the bot (/profile); a field left out
    (None) is unchanged. The roster applies it (roster.person.changed); a later import that has
    those columns sets them again."""

    type = "bot.profile.updated"
    person_id: uuid.UUID
    phone: str | None = Field(default=None, max_length=32, description="international form, e.g. +223 70 00 00 01")
    languages: list[str] | None = Field(default=None, max_length=10, description="ISO 639 codes")
    hats: list[str] | None = Field(default=None, max_length=11, description="other hats, from the known list")
    updated_at: AwareDatetime


# --- lessons ----------------------------------------------------------------

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


def catalogue() -> list[dict[str, Any]]:
    """Every registered event with its subject and JSON Schema (for docs and tests)."""
    return [
        {
            "type": cls.type,
            "version": cls.version,
            "subject": cls.subject(),
            "description": (cls.__doc__ or "").strip(),
            "schema": cls.model_json_schema(),
        }
        for (_, _), cls in sorted(REGISTRY.items())
    ]


# --- examples (one per event; written to shared/contracts/ with the schemas) -

_P, _D, _POST, _N = (uuid.UUID(f"00000000-0000-4000-8000-00000000000{i}") for i in range(1, 5))
_FACTS = dict(deployment_id=_D, person_id=_P, post_id=_POST, country="ML", region="ROWCA", role="cmcoord_officer",
              start=date(2026, 1, 5), planned_end=date(2026, 7, 4))

EXAMPLES: dict[type[Event], Event] = {
    DeploymentAssigned: DeploymentAssigned(**_FACTS),  # type: ignore[arg-type]
    DeploymentStarted: DeploymentStarted(**_FACTS),  # type: ignore[arg-type]
    DeploymentEndingSoon: DeploymentEndingSoon(**_FACTS, days_left=21, successor_person_id=None),  # type: ignore[arg-type]
    DeploymentEnded: DeploymentEnded(**_FACTS, ended_on=date(2026, 7, 4)),  # type: ignore[arg-type]
    PostGapped: PostGapped(post_id=_POST, country="ML", region="ROWCA", title="CMCoord Officer", duty_station="Mopti",
                           gapped_since=date(2026, 7, 5), alert_number=1, last_deployment_id=_D),
    PostFilled: PostFilled(post_id=_POST, country="ML", region="ROWCA", deployment_id=_D, person_id=_P,
                           filled_on=date(2026, 8, 1), gapped_since=date(2026, 7, 5)),
    PersonChanged: PersonChanged(person_id=_P, created=True),
    TelegramLinked: TelegramLinked(person_id=_P, telegram_user_id=424242),
    TelegramUnlinked: TelegramUnlinked(person_id=_P, telegram_user_id=424242, reason="revoked"),
    TelegramLinkHeld: TelegramLinkHeld(person_id=_P, telegram_user_id=434343, telegram_username="a_new_phone"),
    HandoverRecorded: HandoverRecorded(note_id=_N, deployment_id=_D, post_id=_POST, person_id=_P, revision=1),
    DeliverTelegram: DeliverTelegram(
        notification_id=_N, attempt=1, person_id=_P, chat_id=424242, kind="post.gapped",
        text="CMCoord Officer post in Mopti (Mali) has been gapped since 5 July.",
        buttons=[ReplyButton(label="Acknowledge", reply="ack")], urgent=False),
    NotificationRequested: NotificationRequested(
        kind="aar.reminder", about=str(_D), occurrence="due-7d", person_ids=[_P],
        text="Your after action review for Mali is due on 3 August.", buttons=[ReplyButton(label="Start", reply="start")]),
    NotificationClosed: NotificationClosed(
        notification_id=_N, person_id=_P, chat_id=424242, text="CMCoord Officer post in Mopti (Mali) has been gapped "
        "since 5 July.", acknowledged_by="Jean Ndiaye", acknowledged_at=datetime(2026, 7, 5, 6, 24, tzinfo=UTC)),
    NotificationTransitioned: NotificationTransitioned(
        notification_id=_N, kind="post.gapped", about=str(_POST), occurrence="2026-07-05#1", person_id=_P,
        region="ROWCA", from_state="queued", to_state="sent", reason="Telegram accepted it",
        at=datetime(2026, 7, 5, 8, 0, tzinfo=UTC)),
    DeliverySent: DeliverySent(notification_id=_N, attempt=1, person_id=_P, message_id=17),
    DeliveryFailed: DeliveryFailed(notification_id=_N, attempt=1, person_id=_P, reason="blocked"),
    NotificationReplied: NotificationReplied(notification_id=_N, person_id=_P, reply="ack",
                                             replied_at=datetime(2026, 7, 5, 8, 0, tzinfo=UTC)),
    DepartureChanged: DepartureChanged(person_id=_P, deployment_id=_D, planned_end=date(2026, 7, 18),
                                       changed_at=datetime(2026, 7, 2, 9, 30, tzinfo=UTC)),
    CallAgendaAdded: CallAgendaAdded(person_id=_P, region="ROWCA", text="Access to Mopti since the bridge closed",
                                     added_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC)),
    CallSubscriptionChanged: CallSubscriptionChanged(person_id=_P, region="ROAP", subscribed=True,
                                                     at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC)),
    CallSummarySent: CallSummarySent(person_id=_P, region="ROWCA", sent_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC),
                                     text="Convoys to Mopti: notify 72 h ahead until the bridge reopens."),
    HandoverNoteSubmitted: HandoverNoteSubmitted(
        person_id=_P, deployment_id=_D, key_counterparts="Liaison officer of the MINUSMA force HQ (via the G-CMCoord cell)",
        open_issues="Two humanitarian notifications for Mopti routes still unacknowledged",
        recurring_meetings="Access working group, Mondays 10:00", where_files_live="OCHA Mali SharePoint > CMCoord",
        advice_to_successor="Call the liaison officer in your first week.",
        submitted_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC)),
    ProfileUpdated: ProfileUpdated(person_id=_P, phone="+223 70 00 00 01", languages=["fr", "en", "bm"],
                                   hats=["HNS4D focal point"], updated_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC)),
    ReportSubmitted: ReportSubmitted(
        report_id=_N, reference="R-7KQ2M9", person_id=_P, country="ML", themes=["access", "hns4d"],
        text="The Mopti bridge checkpoint turned back two convoys that had been notified 72 hours ahead.",
        classification="community", submitted_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC)),
    AarSubmitted: AarSubmitted(
        aar_id=_N, person_id=_P, planned="Notify every convoy 72 h ahead.", happened="Two convoys turned back.",
        difference="The checkpoint had no copy of the notifications.", sustain="The 72 h rule.",
        improve="Share notifications with the checkpoint commanders too.", themes=["hns4d"],
        classification="restricted", submitted_at=datetime(2026, 8, 1, 9, 30, tzinfo=UTC)),
    AarDue: AarDue(aar_id=_N, person_id=_P, deployment_id=_D, operation="", country="ML", region="ROWCA",
                   due_on=date(2026, 8, 3)),
    AarOverdue: AarOverdue(aar_id=_N, person_id=_P, country="ML", region="ROWCA", due_on=date(2026, 8, 3),
                           escalated_to="regional_adviser"),
    AarCompleted: AarCompleted(aar_id=_N, person_id=_P, region="ROWCA", due_on=date(2026, 8, 3),
                               submitted_on=date(2026, 8, 1), item_id=_N),
    LessonRecorded: LessonRecorded(item_id=_N, reference="R-7KQ2M9", kind="observation", country="ML", region="ROWCA",
                                   themes=["access"], classification="community"),
    LessonReviewed: LessonReviewed(item_id=_N, reference="R-7KQ2M9", action="identified", status="identified",
                                   by="desk@ocha.example", at=datetime(2026, 7, 5, 8, 0, tzinfo=UTC)),
}


def example_envelope(cls: type[Event]) -> Envelope:
    return Envelope.wrap(EXAMPLES[cls], source=cls.type.split(".")[0], occurred_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC),
                         id=deterministic_id("example", cls.type, cls.version))


def contract_files() -> dict[str, str]:
    """File name -> JSON text for every event: its schema and an example envelope."""
    import json

    files = {}
    for (_, _), cls in sorted(REGISTRY.items()):
        stem = f"{cls.type}.v{cls.version}"
        schema = {"$id": cls.subject(), "title": cls.__name__, **cls.model_json_schema()}
        files[f"{stem}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        files[f"{stem}.example.json"] = example_envelope(cls).model_dump_json(indent=2) + "\n"
    return files
