"""The queries the roster answers (`cmcoord.roster.svc.<verb>`): requests, replies, subjects.

The cards here are the roster's own answer models (services/roster builds them), not copies."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from nats.errors import Error as NatsError
from pydantic import ConfigDict, Field, RootModel

from shared.bus import Bus, QueryError
from shared.contracts.query import Query, Reply, Request, ask
from shared.events import Role

# --- cards -------------------------------------------------------------------


class PostPlace(Reply):
    """Where a post is, as answers show it."""

    post_id: uuid.UUID
    country: str
    country_name: str
    duty_station: str
    region: str
    title: str


class DeploymentCard(PostPlace):
    deployment_id: uuid.UUID
    role: str
    start: date
    planned_end: date
    hats: list[str]


class ContactCard(Reply):
    person_id: uuid.UUID
    name: str
    organisation: str
    email: str
    phone: str
    telegram_username: str
    languages: list[str]
    timezone: str
    deployments: list[DeploymentCard]
    other_hats: list[str]
    flags: list[str]


class PersonCard(ContactCard):
    """A linked person's own card (person_by_telegram, register): whether they are a member of the
    community today (a deployment not ended, or ended within the grace period) comes with it."""

    member: bool = True  # an older roster does not say: a member, as before
    liaison: bool = False  # a party's liaison: told humanitarian notifications, shown nothing of the roster


class SearchMatch(Reply):
    """What a contacts query was understood as: kind is country (value: ISO alpha-2), region
    (its code), station, organisation, hat (as written on the roster), role or language (ISO 639
    code, or the name as stored when ISO has none)."""

    kind: str
    value: str


class GapCard(PostPlace):
    """A post with nobody in it that a contacts query named (its duty station, country or region),
    and who covers it meanwhile: the region's regional advisers, else the CMCS desk."""

    gapped_since: date
    covered_by: list[ContactCard]
    cover_role: str  # regional_adviser | cmcs_desk | "" (nobody on the roster covers it)


class ContactsPage(Reply):
    query: str
    total: int
    offset: int
    items: list[ContactCard]
    matched: list[SearchMatch] = []
    gaps: list[GapCard] = []  # at most a few; gaps_total says how many the query named
    gaps_total: int = 0


class CounterpartCard(Reply):
    country: str
    unit: str
    function: str
    channel: str
    classification: str


class Placement(Reply):
    """A person and one of their deployments (directory rows, a post's holders)."""

    person: ContactCard
    deployment: DeploymentCard


class Recipient(Reply):
    """Who to tell, and how: Telegram user id (None: not linked), time zone, regions, contact details,
    and whether the person is a member of the community today."""

    person_id: uuid.UUID
    name: str
    telegram_user_id: int | None
    timezone: str | None = "UTC"  # None from an older roster: UTC
    regions: list[str]
    organisation: str = ""
    phone: str = ""
    email: str = ""
    telegram_username: str = ""
    liaison: bool = False  # a party's liaison (humanitarian notifications): never a member
    member: bool = True  # an older roster does not say: a member, as before
    locale: str = Field(default="en", max_length=8,
                        description="the language to write to them in (en, fr, ar): their choice in the bot, else "
                                    "the first language they speak that is written here")


class HandoverNoteCard(Reply):
    """The handover note written for a deployment (for its successor)."""

    id: uuid.UUID
    deployment_id: uuid.UUID
    post_id: uuid.UUID
    person_id: uuid.UUID
    key_counterparts: str = ""
    open_issues: str = ""
    recurring_meetings: str = ""
    where_files_live: str = ""
    advice_to_successor: str = ""
    revision: int = 1
    submitted_at: datetime


class Rights(Reply):
    """What a person may read of what others wrote, as the roster knows them today."""

    person_id: uuid.UUID
    member: bool
    desk: bool
    adviser_regions: list[str]
    officer_countries: list[str] = Field(default_factory=list, description="deployed as CMCoord officer there")
    organisation: str = Field(default="", description="as the roster has it (an older roster: empty)")


class PostHolders(Reply):
    post_id: uuid.UUID
    holders: list[Placement]


class Directory(RootModel[list[Placement]]):
    model_config = ConfigDict(frozen=True)


class Counterparts(RootModel[list[CounterpartCard]]):
    model_config = ConfigDict(frozen=True)


class Recipients(RootModel[list[Recipient]]):
    model_config = ConfigDict(frozen=True)


# --- requests ----------------------------------------------------------------


class ContactsRequest(Request):
    query: str = Field(min_length=1, max_length=200)
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=10, ge=1, le=100)


class DirectoryRequest(Request):
    region: str | None = None
    country: str | None = None


class PersonByTelegramRequest(Request):
    telegram_user_id: int


class PostHolderRequest(Request):
    post_id: uuid.UUID


class HandoverNoteRequest(Request):
    deployment_id: uuid.UUID


class RecipientsRequest(Request):
    """People by id or by email, the holders of a role (in a region; in a country), everyone deployed
    in a region on a day (`region` and `on`, no role: a regional call's participants),
    or every member with a linked Telegram account (`linked`: members only, see `member`).
    Each answer says whether the person is a member today (`member`)."""

    person_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    emails: list[str] = Field(default_factory=list, max_length=100)
    role: Role | None = None
    region: str | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="with `role`: deployed in this "
                                "country (an older roster ignores it and answers for the region)")
    on: date | None = None
    linked: bool = False  # every member with a linked Telegram account ("everyone")


class RegisterRequest(Request):
    token: str = Field(min_length=1, max_length=200)
    telegram_user_id: int
    # the registering account's username ("" for none); compared with the roster's, when it has one.
    # Absent (a bot that does not send it): not compared.
    telegram_username: str | None = Field(default=None, max_length=64)


class RightsRequest(Request):
    person_id: uuid.UUID


class CounterpartsRequest(Request):
    country: str
    requester_person_id: uuid.UUID


# --- the queries -------------------------------------------------------------

CONTACTS = Query("roster", "contacts", ContactsRequest, ContactsPage,
                 "A page of people matching a free-text query (name, country, station, role, language...).")
DIRECTORY = Query("roster", "directory", DirectoryRequest, Directory,
                  "Everyone deployed today, in a region or country: a row per deployment.")
PERSON_BY_TELEGRAM = Query("roster", "person_by_telegram", PersonByTelegramRequest, PersonCard,
                           "The card of the person linked to a Telegram account (404: not registered).")
POST_HOLDER = Query("roster", "post_holder", PostHolderRequest, PostHolders,
                    "Who holds a post today (from the current roster, never an older snapshot).")
REGISTER = Query("roster", "register", RegisterRequest, PersonCard,
                 "Redeem an invitation: link the Telegram account and answer the card (404/409/410/403: "
                 "refused; 202: held for the CMCS desk).")
COUNTERPARTS = Query("roster", "counterparts", CounterpartsRequest, Counterparts,
                     "A country's counterpart contacts the requester may see (403: not on the roster).")
RECIPIENTS = Query("roster", "recipients", RecipientsRequest, Recipients,
                   "Who to tell and how: people by id or e-mail, a role's holders, a region's people on a day, "
                   "or every linked member.")
HANDOVER_NOTE = Query("roster", "handover_note", HandoverNoteRequest, HandoverNoteCard,
                      "The handover note written for a deployment (404: none).")
RIGHTS = Query("roster", "rights", RightsRequest, Rights,
               "What a person may read of what others wrote: member, CMCS desk, regional adviser's regions, "
               "CMCoord officer's countries, organisation.")

QUERIES = (CONTACTS, DIRECTORY, PERSON_BY_TELEGRAM, POST_HOLDER, REGISTER, COUNTERPARTS, RECIPIENTS, HANDOVER_NOTE,
           RIGHTS)


async def ask_rights(bus: Bus, person_id: uuid.UUID, *, timeout: float, log: Any, event: str) -> Rights | None:
    """The roster's `rights` answer for `person_id`, never the asker's word; None (logged as `event`) when
    it did not come in time, was an error, was not JSON or did not fit the contract, or was for someone
    else: the asker is then given the least."""
    try:
        rights = await ask(bus, RIGHTS, RightsRequest(person_id=person_id), timeout=timeout)
    except (QueryError, TimeoutError, ValueError, NatsError) as err:  # ValueError: not JSON
        log.warning(event, person_id=str(person_id), error=str(err) or type(err).__name__)
        return None
    if rights.person_id != person_id:
        log.warning(event, person_id=str(person_id), error="the roster answered for another")
        return None
    return rights
