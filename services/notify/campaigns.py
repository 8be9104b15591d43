"""What roster facts mean for people: which notifications to ask for, to whom.

The handover campaign is timed from the deployment's planned end, the way
field-messaging tools time messages from a contact's date field: the prompt at
the start of the window (21 days before), reminders 14 and 7 days before while
no note exists, and an alert to the regional adviser when the officer left
without one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from services.notify.store import Request
from shared import events
from shared.events import ReplyButton
from shared.regions import country_name

REMINDER_DAYS = (14, 7)


@dataclass(frozen=True)
class Audience:
    """People by id, or the holders of a role (in a region)."""

    person_ids: tuple[uuid.UUID, ...] = ()
    role: str | None = None
    region: str | None = None
    or_role: str | None = None  # when nobody holds `role` there: these instead (the CMCS desk)


@dataclass(frozen=True)
class Ask:
    request: Request
    audience: Audience


def _day(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def post_gapped(e: events.PostGapped) -> list[Ask]:
    text = (f"Post gapped: {e.title}, {e.duty_station} ({country_name(e.country)}, {e.region}) has had nobody in it "
            f"since {_day(e.gapped_since)}. Alert {e.alert_number}; it repeats every 7 days until the post is filled.")
    request = Request(kind="post.gapped", about=str(e.post_id), occurrence=f"{e.gapped_since}#{e.alert_number}",
                      text=text, region=e.region)
    return [Ask(request, Audience(role="regional_adviser", region=e.region)), Ask(request, Audience(role="cmcs_desk"))]


def handover_campaign(e: events.DeploymentEndingSoon) -> list[Ask]:
    where = country_name(e.country)
    about, occurrence = str(e.deployment_id), str(e.planned_end)
    officer = Audience(person_ids=(e.person_id,))
    prompt = Request(
        kind="handover.prompt", about=about, occurrence=occurrence, region=e.region,
        text=(f"Your deployment in {where} ends on {_day(e.planned_end)} ({e.days_left} days). Time to write the "
              "handover note for your successor:\n"
              "• key counterparts\n• open access or humanitarian notification issues\n• recurring meetings\n"
              "• where files live\n• advice to your successor\n"
              "Press the button or send /handover and I will take it step by step."),
        buttons=(ReplyButton(label="Write it now", reply="handover"),),
    )
    asks = [Ask(prompt, officer)]
    for days in REMINDER_DAYS:
        if days < e.days_left:
            asks.append(Ask(Request(
                kind="handover.reminder", about=about, occurrence=f"{occurrence}-{days}d", region=e.region,
                due_on=e.planned_end - timedelta(days=days),
                text=(f"Reminder: your deployment in {where} ends on {_day(e.planned_end)} ({days} days) and your "
                      "handover note is not written yet. Send /handover to write it."),
            ), officer))
    return asks


def handover_missing(e: events.DeploymentEnded, officer_name: str) -> list[Ask]:
    text = (f"No handover note: {officer_name} left the {e.role.replace('_', ' ')} post in {country_name(e.country)} "
            f"on {_day(e.ended_on)} without one. Their successor starts without it.")
    request = Request(kind="handover.missing", about=str(e.deployment_id), occurrence=str(e.ended_on), text=text,
                      region=e.region)
    return [Ask(request, Audience(role="regional_adviser", region=e.region, or_role="cmcs_desk"))]


HANDOVER_OPEN_KINDS = ("handover.prompt", "handover.reminder")
