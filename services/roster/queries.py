"""Request/reply queries the roster answers under cmcoord.roster.svc.<verb> (their contracts:
shared/contracts/roster.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date, timedelta
from typing import Any

from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.service import Service
from sqlmodel import col, select

from services.roster import handlers, store
from services.roster.directory import DirectorySnapshot, Entry, load_snapshot
from services.roster.models import Deployment, Person, Post, TelegramLink, split_list
from shared.bus import QueryFailure
from shared.clock import Clock
from shared.contracts import roster as contract
from shared.contracts.query import answer
from shared.contracts.roster import (
    ContactCard,
    ContactsPage,
    ContactsRequest,
    CounterpartCard,
    Counterparts,
    CounterpartsRequest,
    Directory,
    DirectoryRequest,
    HandoverNoteCard,
    HandoverNoteRequest,
    PersonByTelegramRequest,
    PersonCard,
    Placement,
    PostHolderRequest,
    PostHolders,
    Recipient,
    Recipients,
    RecipientsRequest,
    RegisterRequest,
    Rights,
    RightsRequest,
)
from shared.countries import resolve_country
from shared.heap import freeze_long_lived
from shared.i18n import reader_locale
from shared.regions import region_for_country, resolve_region
from shared.store import Database

# Who may see restricted counterpart (armed actor) contacts of a country: these roles,
# deployed in that country's region, and the CMCS desk (every country). `community` entries go
# to every member of the community, `public` ones to anyone on the roster.
COUNTERPART_ROLES = frozenset({"cmcoord_officer", "regional_adviser"})
CLASSIFICATION_ORDER = {"public": 0, "community": 1, "restricted": 2}


# the answer a refused registration gets: (code, description)
REGISTRATION_REFUSALS = {
    "unknown": (404, "unknown invitation"),
    "used": (409, "invitation already used"),
    "expired": (410, "invitation expired"),
    "taken": (409, "this Telegram account is linked to someone else"),
    "revoked": (403, "invitation replaced by a newer one, or revoked"),
}
# Not a refusal: the invitation is spent, the link waits for the CMCS desk (the account's
# username is not the one the roster has); the bot tells the person so.
REGISTRATION_HELD = (202, "the link waits for the CMCS desk to confirm it")

# The roles that let a person read others' restricted material (lessons' classification):
# the CMCS desk all of it, a regional adviser what concerns their region; and a CMCoord officer
# what concerns their country (HNS4D's records).
RIGHTS_ROLES = ("cmcs_desk", "regional_adviser", "cmcoord_officer")


def _recipient(person: Any, regions: tuple[str, ...], telegram_user_id: int | None, member: bool) -> Recipient:
    """A person (roster row or directory entry) as `recipients` answers it."""
    person_id = getattr(person, "person_id", None) or person.id
    locale = person.locale if isinstance(person, Entry) else reader_locale(person.locale, split_list(person.languages))
    return Recipient(person_id=person_id, name=person.name, telegram_user_id=telegram_user_id,
                     timezone=person.timezone, regions=list(regions), organisation=person.organisation,
                     phone=person.phone, email=person.email, telegram_username=person.telegram_username,
                     member=member, locale=locale, liaison=bool(getattr(person, "liaison", False)))


class RosterQueries:
    def __init__(self, *, db: Database, clock: Clock, required_course: str, revision_check_seconds: float = 0.5,
                 member_grace: timedelta = timedelta(days=30)) -> None:
        self.db = db
        self.clock = clock
        self.required_course = required_course
        self.member_grace = member_grace
        self.revision_check_seconds = revision_check_seconds
        self._snapshot: DirectorySnapshot | None = None
        self._lock = asyncio.Lock()
        self._refreshing: asyncio.Task[DirectorySnapshot] | None = None
        self._revision = -1
        self._revision_checked = -1e9

    async def _current_revision(self) -> int:
        # A change shows in answers within `revision_check_seconds`; checking on
        # every query would cost a database round trip each.
        now = time.monotonic()
        if now - self._revision_checked >= self.revision_check_seconds:
            self._revision = await store.revision_now(self.db)
            self._revision_checked = now
        return self._revision

    async def snapshot(self) -> DirectorySnapshot:
        """The directory for today. When the roster changed, answers come from the
        snapshot in hand while the new one is built (about a second at 10,000
        people), so a change never stalls every query behind the rebuild; only
        the first snapshot of a day is waited for."""
        day = self.clock.now().date()
        revision = await self._current_revision()
        current = self._snapshot
        if current is not None and current.day == day:
            if current.revision != revision and (self._refreshing is None or self._refreshing.done()):
                self._refreshing = asyncio.create_task(self._build(day, revision), name="directory-refresh")
            return current
        return await self._build(day, revision)

    async def refreshed(self, timeout: float = 5.0) -> None:
        """Once a rebuild in hand is done (at stop: it reads the store, which closes after); one that
        overruns `timeout` (the store locked) is cancelled."""
        task = self._refreshing
        if task is None or task.done():
            return
        _, late = await asyncio.wait({task}, timeout=timeout)
        for overrun in late:
            overrun.cancel()
            await asyncio.wait({overrun}, timeout=timeout)

    async def fresh_snapshot(self) -> DirectorySnapshot:
        """The directory as of now, waiting for a rebuild if the roster changed."""
        self._revision_checked = -1e9
        return await self._build(self.clock.now().date(), await self._current_revision())

    async def _build(self, day: date, revision: int) -> DirectorySnapshot:
        async with self._lock:
            current = self._snapshot
            if current is None or current.revision != revision or current.day != day:
                new_day = current is None or current.day != day
                async with self.db.read() as session:
                    current = await load_snapshot(
                        session, day=day, revision=revision, required_course=self.required_course
                    )
                self._snapshot = current
                # the directory is walked by no full collection while it serves; a day's first takes back and
                # collects what the day's earlier freezes kept (the others cost milliseconds, not a full pass)
                freeze_long_lived(full=new_day)
        return current

    async def contacts(self, q: ContactsRequest) -> ContactsPage:
        return (await self.snapshot()).search(q.query, offset=q.offset, limit=q.limit)

    async def directory(self, q: DirectoryRequest) -> Directory:
        region = resolve_region(q.region) if q.region else None
        country = resolve_country(q.country) if q.country else None
        if q.region and region is None:
            raise ValueError(f"unknown region {q.region!r}")
        if q.country and country is None:
            raise ValueError(f"unknown country {q.country!r}")
        rows = (await self.snapshot()).directory(region=region, country=country)
        cards = {entry.person_id: entry.card for entry, _ in rows}  # made once for a person holding two posts
        return Directory([Placement(person=cards[entry.person_id], deployment=dep.card()) for entry, dep in rows])

    async def person_by_telegram(self, q: PersonByTelegramRequest) -> PersonCard:
        """The linked person's card, and whether they are a member today (`member`): the bot
        gates the community's commands on it. Membership is read from the tables, not the
        snapshot, by the roster's clock."""
        async with self.db.read() as session:
            person = await store.person_by_telegram(session, telegram_user_id=q.telegram_user_id)
            if person is None:
                raise LookupError("not registered")
            person_id = person.id
            member = await store.is_member(session, person_id, day=self.clock.now().date(), grace=self.member_grace)
        return await self._person_card(person_id, member=member)

    async def register(self, q: RegisterRequest) -> PersonCard:
        try:
            async with self.db.unit_of_work() as uow:
                registration = await handlers.redeem_invite(uow, token=q.token, telegram_user_id=q.telegram_user_id,
                                                         telegram_username=q.telegram_username)
                person_id, held = registration.person.id, registration.held
                member = await store.is_member(uow.session, person_id, day=self.clock.now().date(),
                                               grace=self.member_grace)
        except handlers.RegistrationRefused as refused:
            code, description = REGISTRATION_REFUSALS[refused.reason]
            raise QueryFailure(code, description) from refused
        if held:  # nothing of the person for an account the desk has not confirmed
            raise QueryFailure(*REGISTRATION_HELD)
        return await self._person_card(person_id, member=member)

    async def post_holder(self, q: PostHolderRequest) -> PostHolders:
        snapshot = await self.fresh_snapshot()  # services decide on it: never from an older snapshot
        return PostHolders(post_id=q.post_id, holders=[Placement(person=e.card, deployment=d.card())
                                                       for e, d in snapshot.holders(q.post_id)])

    async def recipients(self, q: RecipientsRequest) -> Recipients:
        """Who to tell, and how: Telegram user id (None: not linked), time zone, regions, contact details."""
        today = self.clock.now().date()
        if q.person_ids or q.emails or q.linked or (q.role is None and q.region and q.on):
            day = q.on or today
            async with self.db.read() as session:
                ids = list(q.person_ids)
                if q.emails:
                    ids += await store.people_by_email(session, q.emails)
                if q.linked:
                    ids += await store.linked_members(session, day=today, grace=self.member_grace)
                if q.role is None and q.region and q.on:
                    region = resolve_region(q.region)
                    if region is None:
                        raise ValueError(f"unknown region {q.region!r}")
                    ids += await store.deployed_in(session, region=region, day=day)
                rows = await store.recipients_by_id(session, list(dict.fromkeys(ids)), day=day)
                members = await store.members_among(session, [r.person.id for r in rows], day=today,
                                                    grace=self.member_grace)
            return Recipients([_recipient(r.person, r.regions, r.telegram_user_id, r.person.id in members)
                               for r in rows])
        if q.role is None:
            raise ValueError("ask for person_ids, emails, a role, or a region and a day")
        # who gets told must be current: never an answer from a snapshot older than the roster
        snapshot = await self.fresh_snapshot()
        region = resolve_region(q.region) if q.region else None
        chosen = [e for e in snapshot.deployed
                  if any(d.role == q.role and (region is None or d.region == region)
                         and (q.country is None or d.country == q.country) for d in e.deployments)]
        async with self.db.read() as session:
            links = await store.telegram_links(session, [e.person_id for e in chosen])
        # deployed today: members
        return Recipients([_recipient(e, tuple(sorted(e.regions)), links.get(e.person_id), True) for e in chosen])

    async def handover_note(self, q: HandoverNoteRequest) -> HandoverNoteCard:
        """The handover note written for a deployment (for its successor)."""
        async with self.db.read() as session:
            note = await store.handover_note(session, deployment_id=q.deployment_id)
        if note is None:
            raise LookupError("no handover note for this deployment")
        return HandoverNoteCard.model_validate(note, from_attributes=True)

    async def rights(self, q: RightsRequest) -> Rights:
        """What a person may read of what others wrote, as the roster knows them today:
        `member` (a verified member of the community: linked to the bot, with a deployment not
        ended or ended within the grace period), `desk` (deployed as CMCS desk),
        `adviser_regions` (deployed as regional adviser there), `officer_countries` (deployed as
        CMCoord officer there) and their `organisation`. Someone not on the roster has none.
        Read straight from the tables, never from an older snapshot: other services decide on it
        (lessons, for every search; HNS4D, for what /hns4d shows)."""
        day = self.clock.now().date()
        async with self.db.read() as session:
            linked = await session.get(TelegramLink, q.person_id) is not None
            member = linked and await store.is_member(session, q.person_id, day=day, grace=self.member_grace)
            held = (await session.exec(
                select(Deployment.role, Post.region, Post.country).join(Post)
                .where(Deployment.person_id == q.person_id, Deployment.on(day), col(Deployment.role).in_(RIGHTS_ROLES))
            )).all()
            person = await session.get(Person, q.person_id)
        return Rights(person_id=q.person_id, member=member, desk=any(role == "cmcs_desk" for role, _, _ in held),
                      adviser_regions=sorted({region for role, region, _ in held if role == "regional_adviser"}),
                      officer_countries=sorted({country for role, _, country in held if role == "cmcoord_officer"}),
                      organisation=person.organisation if person is not None else "")

    async def counterparts(self, q: CounterpartsRequest) -> Counterparts:
        country = resolve_country(q.country)
        if country is None:
            raise ValueError(f"unknown country {q.country!r}")
        region = region_for_country(country)
        async with self.db.read() as session:
            day = self.clock.now().date()
            if await session.get(Person, q.requester_person_id) is None:
                raise PermissionError("counterpart contacts are for people on the roster")
            held = (await session.exec(
                select(Deployment, Post).join(Post)
                .where(Deployment.person_id == q.requester_person_id, Deployment.on(day)))).all()
            restricted = any(dep.role == "cmcs_desk" for dep, _ in held) or any(
                dep.role in COUNTERPART_ROLES and (post.region == region or post.country == country)
                for dep, post in held)
            visible = {"public"}
            if restricted:
                visible |= {"community", "restricted"}
            elif await store.is_member(session, q.requester_person_id, day=day, grace=self.member_grace):
                visible.add("community")
            rows = [r for r in await store.counterparts_in(session, country=country) if r.classification in visible]
        rows.sort(key=lambda r: (CLASSIFICATION_ORDER.get(r.classification, 2), r.unit))
        return Counterparts([CounterpartCard.model_validate(r, from_attributes=True) for r in rows])

    async def _person_card(self, person_id: uuid.UUID, *, member: bool) -> PersonCard:
        card = (await self.snapshot()).card(person_id)
        if card is None:  # a liaison (never in the directory), or someone added since the snapshot in hand
            async with self.db.read() as session:
                person = await session.get(Person, person_id)
            if person is not None and person.liaison:  # their own card, from their row
                return PersonCard(person_id=person.id, name=person.name, organisation=person.organisation,
                                  email=person.email, phone=person.phone, telegram_username=person.telegram_username,
                                  languages=split_list(person.languages), timezone=person.timezone, deployments=[],
                                  other_hats=[], flags=[], member=False, liaison=True)
            card = await self._card(person_id)
        return PersonCard(**card.model_dump(), member=member)

    async def _card(self, person_id: uuid.UUID) -> ContactCard:
        card = (await self.snapshot()).card(person_id)
        if card is None:  # someone added since the snapshot in hand
            card = (await self.fresh_snapshot()).card(person_id)
        if card is None:
            raise LookupError("unknown person")
        return card

    async def serve(self, nc: NATS, *, version: str) -> Service:
        service = await add_service(
            nc, name="roster", version=version, description="CMCoord roster queries", queue_group="roster"
        )
        await answer(service, contract.CONTACTS, self.contacts)
        await answer(service, contract.DIRECTORY, self.directory)
        await answer(service, contract.PERSON_BY_TELEGRAM, self.person_by_telegram)
        await answer(service, contract.POST_HOLDER, self.post_holder)
        await answer(service, contract.REGISTER, self.register)
        await answer(service, contract.COUNTERPARTS, self.counterparts)
        await answer(service, contract.RECIPIENTS, self.recipients)
        await answer(service, contract.HANDOVER_NOTE, self.handover_note)
        await answer(service, contract.RIGHTS, self.rights)
        return service
