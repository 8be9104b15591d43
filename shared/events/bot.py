"""Events the bot owns: what people send through Telegram, and what became of a delivery."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import AwareDatetime, Field

from shared.events.envelope import Event, register
from shared.themes import Classification


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
    """An officer changed their own phone, languages or hats in the bot (/profile), or the language
    they read it in (/lang, or linking an account whose Telegram app has one); a field left out
    (None) is unchanged. The roster applies it (roster.person.changed); a later import that has
    those columns sets them again."""

    type = "bot.profile.updated"
    person_id: uuid.UUID
    phone: str | None = Field(default=None, max_length=32, description="international form, e.g. +223 70 00 00 01")
    languages: list[str] | None = Field(default=None, max_length=10, description="ISO 639 codes")
    hats: list[str] | None = Field(default=None, max_length=11, description="other hats, from the known list")
    locale: Literal["en", "fr", "ar"] | None = Field(
        default=None, description="the language they read the bot in (/lang, else their Telegram app's): "
                                  "what notifications are written in")
    updated_at: AwareDatetime
