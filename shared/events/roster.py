"""Events the roster owns: deployments, posts, people and their Telegram links."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import Field

from shared.events.envelope import Event, register
from shared.roles import Role


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
