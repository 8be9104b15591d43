"""What roster facts mean for people: which notifications to ask for, to whom.

The handover campaign is timed from the deployment's planned end, the way
field-messaging tools time messages from a contact's date field: the prompt at
the start of the window (21 days before), reminders 14 and 7 days before while
no note exists, "confirm your departure date" 2 days before (a new date goes
back to the roster and the campaign follows it), and an alert to the regional
adviser when the officer left without one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from services.notify.recipients import ENGLISH_READER, Recipient
from services.notify.store import Request
from shared import events, notices
from shared.contracts.roster import HandoverNoteCard
from shared.events import ReplyButton

REMINDER_DAYS = (14, 7)
DEPARTURE_DAYS = 2  # "confirm your departure date"


@dataclass(frozen=True)
class Audience:
    """People by id, or the holders of a role (in a region, a country), or every member with Telegram."""

    person_ids: tuple[uuid.UUID, ...] = ()
    role: str | None = None
    region: str | None = None
    country: str | None = None  # the role's holders in this country; none there: the region's
    or_role: str | None = None  # when nobody holds `role` there: these instead (the region's adviser, else the desk)
    everyone: bool = False
    chat_id: int | None = None  # with one person: this Telegram chat, whatever the roster links (one unlinked)


@dataclass(frozen=True)
class Ask:
    request: Request
    audience: Audience


def post_gapped(e: events.PostGapped) -> list[Ask]:
    notice, text = notices.english("post.gapped", title=e.title, station=e.duty_station, country=e.country,
                                   region=e.region, since=e.gapped_since, alert=e.alert_number)
    request = Request(kind="post.gapped", about=str(e.post_id), occurrence=f"{e.gapped_since}#{e.alert_number}",
                      text=text, notice=notice, region=e.region)
    return [Ask(request, Audience(role="regional_adviser", region=e.region)), Ask(request, Audience(role="cmcs_desk"))]


def handover_campaign(e: events.DeploymentEndingSoon) -> list[Ask]:
    about, occurrence = str(e.deployment_id), str(e.planned_end)
    officer = Audience(person_ids=(e.person_id,))
    notice, text = notices.english("handover.prompt", country=e.country, end=e.planned_end, days=e.days_left)
    prompt = Request(kind="handover.prompt", about=about, occurrence=occurrence, region=e.region, text=text,
                     notice=notice, buttons=(ReplyButton(label="Write it now", reply="handover"),))
    asks = [Ask(prompt, officer)]
    if DEPARTURE_DAYS < e.days_left:
        notice, text = notices.english("handover.departure", country=e.country, end=e.planned_end)
        asks.append(Ask(Request(
            kind="handover.departure", about=about, occurrence=f"{occurrence}-{DEPARTURE_DAYS}d", region=e.region,
            due_on=e.planned_end - timedelta(days=DEPARTURE_DAYS),
            buttons=(ReplyButton(label="Confirm", reply="confirm"), ReplyButton(label="Change the date",
                                                                               reply="change_date")),
            text=text, notice=notice), officer))
    for days in REMINDER_DAYS:
        if days < e.days_left:
            notice, text = notices.english("handover.reminder", country=e.country, end=e.planned_end, days=days)
            asks.append(Ask(Request(
                kind="handover.reminder", about=about, occurrence=f"{occurrence}-{days}d", region=e.region,
                due_on=e.planned_end - timedelta(days=days), text=text, notice=notice), officer))
    return asks


def handover_missing(e: events.DeploymentEnded, officer_name: str) -> list[Ask]:
    notice, text = notices.english("handover.missing", name=officer_name, role=e.role, country=e.country,
                                   day=e.ended_on)
    request = Request(kind="handover.missing", about=str(e.deployment_id), occurrence=str(e.ended_on), text=text,
                      notice=notice, region=e.region)
    return [Ask(request, Audience(role="regional_adviser", region=e.region, or_role="cmcs_desk"))]


def introductions(e: events.DeploymentAssigned, *, outgoing: Recipient, outgoing_end: date, incoming: Recipient,
                  post_title: str, station: str) -> list[Ask]:
    """A successor assigned: each gets the other's contacts."""
    about, where = str(e.deployment_id), f"{post_title}, {station}"

    def organisation(r: Recipient) -> str:
        return f" ({r.organisation})" if r.organisation else ""

    notice, text = notices.english("handover.introduction.outgoing", post=where, name=incoming.name,
                                   organisation=organisation(incoming), start=e.start,
                                   contacts=incoming.contact_line())
    to_outgoing = Request(kind="handover.introduction", about=about, occurrence="outgoing", region=e.region,
                          text=text, notice=notice)
    notice, text = notices.english("handover.introduction.incoming", post=where, name=outgoing.name,
                                   organisation=organisation(outgoing), end=outgoing_end,
                                   contacts=outgoing.contact_line())
    to_incoming = Request(kind="handover.introduction", about=about, occurrence="incoming", region=e.region,
                          text=text, notice=notice)
    return [Ask(to_outgoing, Audience(person_ids=(outgoing.person_id,))),
            Ask(to_incoming, Audience(person_ids=(incoming.person_id,)))]


def note_for_successor(*, outgoing_deployment_id: uuid.UUID, note: HandoverNoteCard, outgoing_name: str,
                       incoming: uuid.UUID) -> Ask:
    texts = (note.key_counterparts, note.open_issues, note.recurring_meetings, note.where_files_live,
             note.advice_to_successor)

    def write(reader: Recipient) -> str:
        body = "\n".join(notices.say("handover.note.section", reader.locale, text=text,
                                     section=notices.word(notices.SECTION, title, reader.locale))
                         for title, text in zip(notices.NOTE_SECTIONS, texts, strict=True) if text)
        empty = notices.word(notices.SECTION, notices.NOTE_EMPTY, reader.locale)
        return notices.say("handover.note", reader.locale, name=outgoing_name, body=body or empty)[:3400]

    request = Request(kind="handover.note", about=str(outgoing_deployment_id), occurrence=f"rev{note.revision}",
                      text=write(ENGLISH_READER), writer=write)
    return Ask(request, Audience(person_ids=(incoming,)))


HANDOVER_OPEN_KINDS = ("handover.prompt", "handover.reminder")


# --- Telegram links: the roster's changes, told to the accounts concerned and to the desk ----------------


def telegram_unlinked(e: events.TelegramUnlinked, about_event: uuid.UUID) -> Ask:
    """The account that lost its link hears of it (at its own chat: the roster no longer links it)."""
    notice, text = notices.english("telegram.unlinked.revoked" if e.reason == "revoked" else "telegram.unlinked.replaced")
    request = Request(kind=events.TELEGRAM_UNLINKED_KIND, about=str(e.person_id), occurrence=str(about_event),
                      text=text, notice=notice, buttons=())
    return Ask(request, Audience(person_ids=(e.person_id,), chat_id=e.telegram_user_id))


def telegram_link_held(e: events.TelegramLinkHeld, person: Recipient | None, about_event: uuid.UUID) -> Ask:
    """The CMCS desk decides on a link from an account whose username is not the roster's."""
    who = f"{person.name} ({person.email})" if person is not None else f"person {e.person_id}"
    email = person.email if person is not None else "EMAIL"
    used = f"@{e.telegram_username}" if e.telegram_username else "an account without a username"
    expected = f", while the roster has @{person.telegram_username}" if person and person.telegram_username else ""
    text = (f"Telegram link held for confirmation: {who} opened their invitation from {used} "
            f"(Telegram id {e.telegram_user_id}){expected}. If the account is theirs: "
            f"cmcoord roster confirm-link {email}. If not, send them a new invitation (the old one no longer works).")
    request = Request(kind=events.TELEGRAM_LINK_HELD_KIND, about=str(e.person_id), occurrence=str(about_event),
                      text=text)
    return Ask(request, Audience(role="cmcs_desk"))


def telegram_link_confirmed(e: events.TelegramLinked, about_event: uuid.UUID) -> Ask:
    notice, text = notices.english("telegram.confirmed")
    request = Request(kind=events.TELEGRAM_LINK_CONFIRMED_KIND, about=str(e.person_id), occurrence=str(about_event),
                      text=text, notice=notice, buttons=())
    return Ask(request, Audience(person_ids=(e.person_id,), chat_id=e.telegram_user_id))
