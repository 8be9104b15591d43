"""Events and commands notify owns: deliveries it asks the bot for, notifications and their states."""

from __future__ import annotations

import uuid

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.events.envelope import TEXT_MAX, Event, register
from shared.roles import Role


Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]
DocumentName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ReplyButton(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    label: str = Field(min_length=1, max_length=40)
    reply: str = Field(pattern=r"^[a-z_]{1,16}$", description="what pressing it answers, e.g. ack, join, decline")


class Notice(BaseModel):
    """A text by its key (shared/notices.py TEMPLATES) and the values of its placeholders, written in each
    reader's language by notify. A field a newer sender adds is ignored, as in every event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str = Field(pattern=r"^[a-z0-9_.]{1,60}$")
    params: dict[str, str | int] = Field(default_factory=dict, max_length=20)


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
class DeliverEmail(Event):
    """Command to notify's mailer: e-mail this notification to its person, whom Telegram cannot reach
    (no link, or it refused for good). The address and the text are read from notify's store when
    it is sent, so no contact detail travels on the stream."""

    type = "notify.deliver.email"
    notification_id: uuid.UUID
    reason: str = Field(default="", max_length=200, description="why Telegram cannot reach them")


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
class NotificationExpired(Event):
    """Command to the bot: this delivered copy no longer waits for an answer, nobody having answered:
    what it asked about is over (a post filled, a handover written, a call begun or moved, its sender
    withdrew it). Its message says no answer is needed any more, without its buttons. (Not a
    `NotificationClosed`, which names who acknowledged. A bot older than this command dead-letters
    it: run `cmcoord nats-init` and upgrade the bot before notify.)"""

    type = "notify.notification.expired"
    notification_id: uuid.UUID
    person_id: uuid.UUID
    chat_id: int
    text: str = Field(min_length=1, max_length=TEXT_MAX, description="the copy's text as sent (plain; the bot escapes it)")
    document: bool = Field(default=False, description="sent as a file: the text is its caption")
    closed_at: AwareDatetime


@register
class NotificationRequested(Event):
    """Command to notify from any service: tell these people (by id, or a role in a
    region). Notify owns the notification from here; one per (kind, subject,
    recipient, occurrence), so asking again changes nothing."""

    type = "notify.notification.requested"
    senders = ("lessons", "bot", "hns4d")  # the bot: ad-hoc messages of advisers and the desk (/send)
    kind: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_.]*$")
    about: str = Field(min_length=1, max_length=80, description="the notification's subject, e.g. a post or AAR id")
    occurrence: str = Field(default="", max_length=80, description="which time: a date, an alert number")
    person_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    role: Role | None = Field(default=None, description="or everyone holding this role (in `region`)")
    everyone: bool = Field(default=False, description="or every member with a linked Telegram account")
    region: str | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$",
                                description="with `role`: its holders deployed in this country (ISO 3166-1 alpha-2); "
                                            "none there: the region's")
    text: str = Field(min_length=1, max_length=TEXT_MAX, description="in English: what a reader gets when their "
                      "language cannot be written (no `notice`, or one the receiving notify does not know)")
    notice: Notice | None = Field(default=None, description="the text by key and parameters, in each reader's language")
    buttons: list[ReplyButton] = Field(default_factory=list, max_length=6)
    urgent: bool = False
    document: str | None = Field(default=None, max_length=200,
                                 description="a file in the DOCUMENTS object store, sent with the text as caption")
    documents: dict[Locale, DocumentName] = Field(
        default_factory=dict, max_length=10,
        description="the same file in other languages, by language code: a reader of one of them gets it instead")

    @model_validator(mode="after")
    def _documents_have_a_default(self) -> NotificationRequested:
        if self.documents and self.document is None:
            raise ValueError("`documents` are other languages of `document`, which readers of the rest get")
        return self


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
    reply: str | None = Field(default=None, max_length=16, description="acknowledged: the button pressed (ack, send …)")
    via: str | None = Field(default=None, max_length=16,
                            description="acknowledged: how the answer came (telegram, email); none from an older "
                                        "notify")
    at: AwareDatetime


@register
class NotificationsSettled(Event):
    """A command to notify: what these notifications were about is settled (a party acknowledged, a
    notification was replaced), so the open ones of these kinds about `about` close, and a request about
    it that arrives later (retried) creates nothing. A sender closes only its own kinds (`<sender>.…`)."""

    type = "notify.notification.settled"
    senders = ("hns4d",)
    kinds: list[str] = Field(min_length=1, max_length=10)
    about: str = Field(min_length=1, max_length=80)
    reason: str = Field(min_length=1, max_length=200)
