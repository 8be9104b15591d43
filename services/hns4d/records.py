"""What changes the HNS4D store, each in the caller's unit of work with the events it causes:
parties listed, a site or movement submitted, sent to every party of its country, changed or
cancelled (sent again: each party acknowledges the new revision), a party's acknowledgement of
receipt (through notify, or recorded by the officer), a party's silence told step by step, an
incident recorded. Every change writes a line in the audit log.

Parties are told through notify: their liaison gets the notification with an "Acknowledge receipt"
button (Telegram) or link (e-mail), reminded under notify's policy for `PARTY_KIND`; pressing it
comes back as notify's `acknowledged` transition. A party whose answer the officer records (a phone
call, a meeting) is told by the officer, outside the system.
"""

from __future__ import annotations

import bisect
import itertools
import uuid
from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.hns4d import rules, store
from services.hns4d.models import AuditEntry, Forwarding, Incident, Party, Record
from services.hns4d.rules import Kind, Point
from shared import events, notices
from shared.clock import Clock
from shared.contracts.hns4d import PartyStatus, Submission
from shared.events import ReplyButton
from shared.regions import region_for_country
from shared.store import UnitOfWork

log = structlog.get_logger("hns4d")

PARTY_KIND = "hns4d.notification"  # to a party's liaison: a site or movement, a change, a cancellation
SILENCE_KIND = "hns4d.silence"  # to the officer, the adviser, the desk: a party has not acknowledged receipt
REVIEW_KIND = "hns4d.review"  # to the country's CMCoord officers: a submission to review and send
REFUSED_KIND = "hns4d.refused"  # to the officer who pressed Send: why it could not go
FIGURES_KIND = "hns4d.figures"  # to the CMCS desk only: a quarter's figures per party, a message per country
PARTY_LINES_BUDGET = 2500  # of a message's 3,500 characters, what its lines per party may take in English
ACKNOWLEDGE = ReplyButton(label="Acknowledge receipt", reply="ack")
SEND = ReplyButton(label="Send to the parties", reply="send")
PARTY_KINDS = ("state_forces", "coalition", "armed_group", "peacekeeping")
CHANNELS = ("telegram", "email", "recorded")
NOTIFIED_CHANNELS = ("telegram", "email")  # through notify, to the liaison


class Refused(ValueError):
    """What was asked cannot be done, and why (each problem a line)."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else problems
        super().__init__("; ".join(self.problems))


def route(s: Submission) -> list[Point]:
    return [Point(lat, lon) for lat, lon in s.points]


def problems_of(s: Submission, *, now: datetime, check_lead: bool = True) -> tuple[list[str], str | None]:
    """What is wrong with `s` (empty: it may be submitted), and a warning to carry."""
    problems: list[str] = []
    if not s.organisation.strip():
        problems.append("the organisation is missing")
    if not s.name.strip():
        problems.append("a name is missing (the site's, or the movement's, e.g. Mopti–Konna convoy)")
    if s.kind == "site":
        problems += [] if len(s.points) == 1 else ["a site is one point (latitude, longitude)"]
        problems += [f"point: {p}" for point in route(s)[:1] if (p := rules.point_problem(s.country, point))]
        if s.occupancy is not None and s.occupancy < 0:
            problems.append("occupancy is a number of people, 0 or more")
    else:
        problems += rules.route_problems(s.country, route(s))
        if not s.contact.strip():
            problems.append("a movement names a contact on the road")
    if s.ends_at <= s.starts_at:
        problems.append("it ends before it starts")
    if s.ends_at <= now:
        problems.append("it is over already")
    warning = None
    if s.kind == "movement" and check_lead:
        policy = rules.policy_for(s.country)
        if (late := rules.lead_problem(start=s.starts_at, submitted_at=now, policy=policy,
                                       emergency=s.emergency)) is not None:
            problems.append(late)
        warning = rules.lead_warning(start=s.starts_at, submitted_at=now, policy=policy, emergency=s.emergency)
    return problems, warning


def audit(uow: UnitOfWork, *, who: str, action: str, record_id: uuid.UUID | None, detail: str = "") -> None:
    uow.session.add(AuditEntry(at=uow.clock.now(), who=who[:120], action=action, record_id=record_id,
                               detail=detail[:500]))


async def add_party(uow: UnitOfWork, *, country: str, name: str, kind: str, channel: str,
                    liaison_id: uuid.UUID | None, who: str, exports: bool | None = None) -> Party:
    """A party listed, or changed; `exports` None keeps whether the desk may give it exports (a new
    party: not)."""
    country = country.upper()
    if kind not in PARTY_KINDS:
        raise Refused(f"a party is one of {', '.join(PARTY_KINDS)}")
    if channel not in CHANNELS:
        raise Refused(f"a party is reached by {', '.join(CHANNELS)}")
    if channel in NOTIFIED_CHANNELS and liaison_id is None:
        raise Refused(f"a party reached by {channel} has a liaison on the roster")
    if (unknown := rules.country_problem(country)) is not None:
        raise Refused(unknown)
    party = await store.party_by_name(uow.session, country, name)
    if party is None:
        party = Party(id=uuid.uuid4(), country=country, name=name.strip(), kind=kind, channel=channel)
    party.kind, party.channel, party.liaison_id, party.active = kind, channel, liaison_id, True
    if exports is not None:
        party.exports = exports
    uow.session.add(party)
    audit(uow, who=who, action="party", record_id=None,
          detail=f"{country} {party.name}: {kind}, {channel}, exports {'allowed' if party.exports else 'not given'}")
    return party


async def _reference(uow: UnitOfWork, country: str, now: datetime) -> str:
    prefix = f"HN-{country}-{now.year}-"
    taken = (await uow.session.exec(select(Record.reference).where(
        col(Record.reference).startswith(prefix)))).all()
    return f"{prefix}{len(taken) + 1:04d}"


async def submit(uow: UnitOfWork, s: Submission, *, by: uuid.UUID, who: str,
                 record_id: uuid.UUID | None = None) -> Record:
    """A site or movement recorded as submitted, to be reviewed and sent by a CMCoord officer. With
    `record_id` (the bot's, from its submission id), one submitted already is returned as it is."""
    if record_id is not None and (done := await uow.session.get(Record, record_id)) is not None:
        return done
    now = uow.clock.now()
    s = s.model_copy(update={"country": s.country.upper()})
    problems, warning = problems_of(s, now=now)
    if problems:
        raise Refused(problems)
    same = (await uow.session.exec(select(Record).where(
        Record.country == s.country, Record.kind == s.kind, col(Record.state) != "cancelled",
        Record.organisation == s.organisation.strip(), Record.name == s.name.strip(),
        Record.starts_at == s.starts_at))).first()
    if same is not None:
        raise Refused(f"{same.reference} is the same {s.kind} (organisation, name and start): change that one")
    record = Record(
        id=record_id or uuid.uuid4(), reference=await _reference(uow, s.country, now), kind=s.kind, country=s.country,
        region=region_for_country(s.country), organisation=s.organisation.strip(), submitted_by=by,
        name=s.name.strip(), function=s.function.strip(), occupancy=s.occupancy, contact=s.contact.strip(),
        points=Record.points_text(route(s)), starts_at=s.starts_at, ends_at=s.ends_at, vehicles=s.vehicles.strip(),
        markings=s.markings.strip(), emergency=s.emergency, warning=warning or "", submitted_at=now, changed_at=now)
    uow.session.add(record)
    uow.emit(review_request(record), id=events.deterministic_id("hns4d.review", record.id))
    audit(uow, who=who, action="submitted", record_id=record.id, detail=f"{record.reference} {s.kind} {s.country}")
    log.info("record_submitted", reference=record.reference, kind=s.kind, country=s.country)
    return record


def review_request(record: Record) -> events.NotificationRequested:
    """The country's CMCoord officers are asked to review it and send it (none there: the region's); the
    first to press Send does (notify closes the others' copies). Urgent: a review is never held overnight
    nor folded into a daily summary, whose "acknowledge all" is not a review. Nobody holding the post:
    the region's adviser."""
    assert record.starts_at is not None and record.ends_at is not None
    notice, text = notices.english("hns4d.review", reference=record.reference, organisation=record.organisation,
                                   name=record.name, country=record.country, start=store.utc(record.starts_at),
                                   end=store.utc(record.ends_at))
    audience: dict[str, Any] = ({"role": "cmcoord_officer", "region": record.region, "country": record.country}
                                if record.region is not None else {"role": "cmcs_desk"})
    return events.NotificationRequested(kind=REVIEW_KIND, about=str(record.id), occurrence=record.reference,
                                        text=text, notice=notice, buttons=[SEND], urgent=True, **audience)


def _route(points: list[Point]) -> str:
    return " → ".join(f"{p.lat:.4f}, {p.lon:.4f}" for p in points)


def party_notice(record: Record, *, due_at: datetime, changed: bool) -> tuple[events.Notice, str]:
    """What a party's liaison reads: the site or movement, by when to acknowledge receipt, and that an
    acknowledgement is receipt only."""
    common: dict[str, Any] = {"reference": record.reference, "organisation": record.organisation,
                              "country": record.country, "name": record.name, "due": due_at}
    assert record.starts_at is not None and record.ends_at is not None
    start, end = store.utc(record.starts_at), store.utc(record.ends_at)
    if record.state == "cancelled":
        return notices.english("hns4d.cancelled", **common)
    prefix = "hns4d.changed." if changed else "hns4d."
    if record.kind == "site":
        point = record.point_list[0]
        return notices.english(prefix + "site", **common, function=record.function or "-",
                               point=f"{point.lat:.4f}, {point.lon:.4f}",
                               occupancy=record.occupancy if record.occupancy is not None else "-",
                               start=start, end=end)
    return notices.english(prefix + "movement", **common, start=start, end=end, route=_route(record.point_list),
                           vehicles=record.vehicles or "-", markings=record.markings or "-",
                           contact=record.contact or "-")


async def send(uow: UnitOfWork, record: Record, *, by: uuid.UUID | None, who: str, changed: bool = False) -> list[
        tuple[Party, Forwarding]]:
    """This revision of `record` asked of every party of its country: each gets its deadline, and the
    parties with a liaison are told through notify. Refused (`Refused`) before anything changes."""
    now = uow.clock.now()
    if record.state == "sent" and not changed:
        raise Refused(f"{record.reference} was sent already; a change is sent again by itself")
    # the lead time was the submitter's to meet, checked when submitted (a change's new start, by `change`);
    # at the first send only a start already passed stops it
    if not changed and record.kind == "movement" and record.starts_at is not None and store.utc(
            record.starts_at) <= now:
        raise Refused("the movement has already started: a notification is sent before it")
    parties = await store.parties_of(uow.session, record.country)
    if not parties:
        raise Refused(f"no parties are listed for {record.country}: add them first (cmcoord hns4d party add)")
    policy = rules.policy_for(record.country)
    start = store.utc(record.starts_at) if record.kind == "movement" and record.starts_at is not None else None
    if start is not None and start <= now:  # a change or cancellation of a movement under way: the shortest window
        due_at = now + policy.shortest_window
    elif record.kind == "site" and record.state == "cancelled":
        due_at = now + policy.shortest_window
    else:
        due_at = rules.acknowledgement_due(sent_at=now, start=start, policy=policy)
    if record.state == "submitted":  # its review is done: the other officers' copies close
        uow.emit(events.NotificationsSettled(kinds=[REVIEW_KIND], about=str(record.id), reason="sent to the parties"),
                 id=events.deterministic_id("hns4d.settled", record.id, "reviewed"))
    if record.state != "cancelled":
        record.state = "sent"
    record.changed_at = now
    uow.session.add(record)
    notice, text = party_notice(record, due_at=due_at, changed=changed)
    asked: list[tuple[Party, Forwarding]] = []
    for party in parties:
        forwarding = Forwarding(id=events.deterministic_id("hns4d.forwarding", record.id, record.revision, party.id),
                                record_id=record.id, revision=record.revision, party_id=party.id,
                                country=record.country, sent_at=now, due_at=due_at, next_step_at=due_at)
        uow.session.add(forwarding)
        asked.append((party, forwarding))
        if party.channel in NOTIFIED_CHANNELS and party.liaison_id is not None:
            uow.emit(events.NotificationRequested(
                kind=PARTY_KIND, about=str(forwarding.id), occurrence=f"r{record.revision}",
                person_ids=[party.liaison_id], region=record.region, text=text, notice=notice,
                buttons=[ACKNOWLEDGE], urgent=True), id=events.deterministic_id("hns4d.ask", forwarding.id))
    if by is not None:
        record.sent_by = by  # the officer told of a party's silence
    uow.emit(events.RecordSent(record_id=record.id, reference=record.reference, revision=record.revision,
                               kind=record.kind, country=record.country, region=record.region,  # type: ignore[arg-type]
                               parties=len(parties), sent_at=now),
             id=events.deterministic_id("hns4d.sent", record.id, record.revision))
    audit(uow, who=who, action="sent", record_id=record.id,
          detail=f"{record.reference} r{record.revision} to {len(parties)} parties")
    log.info("record_sent", reference=record.reference, revision=record.revision, parties=len(parties))
    return asked


async def _supersede(uow: UnitOfWork, record: Record, why: str) -> None:
    """What was asked of the parties for the current revision no longer waits for them."""
    for f in await store.forwardings_of(uow.session, record.id, revision=record.revision):
        if f.acknowledged_at is None and not f.superseded:
            f.superseded, f.next_step_at = True, None
            uow.session.add(f)
        uow.emit(events.NotificationsSettled(kinds=[PARTY_KIND, SILENCE_KIND], about=str(f.id), reason=why),
                 id=events.deterministic_id("hns4d.settled", f.id, "superseded"))


async def change(uow: UnitOfWork, record: Record, s: Submission, *, by: uuid.UUID | None, who: str) -> Record:
    """A submitted or sent record changed: a sent one goes to every party again, as a new revision each
    acknowledges; what was asked before no longer waits."""
    if record.state == "cancelled":
        raise Refused(f"{record.reference} is cancelled")
    now = uow.clock.now()
    s = s.model_copy(update={"country": record.country, "kind": record.kind})
    start_moved = record.starts_at is None or store.utc(record.starts_at) != s.starts_at
    problems, warning = problems_of(s, now=now, check_lead=start_moved)
    if problems:
        raise Refused(problems)
    was_sent = record.state == "sent"
    if was_sent:
        await _supersede(uow, record, f"replaced by revision {record.revision + 1}")
        record.revision += 1
    record.organisation, record.name, record.function = s.organisation.strip(), s.name.strip(), s.function.strip()
    record.occupancy, record.contact, record.points = s.occupancy, s.contact.strip(), Record.points_text(route(s))
    record.starts_at, record.ends_at, record.vehicles = s.starts_at, s.ends_at, s.vehicles.strip()
    record.markings, record.emergency, record.warning = s.markings.strip(), s.emergency, warning or record.warning
    record.changed_at = now
    uow.session.add(record)
    audit(uow, who=who, action="changed", record_id=record.id, detail=f"{record.reference} r{record.revision}")
    if was_sent:
        await send(uow, record, by=by, who=who, changed=True)
    return record


async def cancel(uow: UnitOfWork, record: Record, *, by: uuid.UUID | None, who: str) -> Record:
    """Cancelled: a sent record's parties are told, and asked to acknowledge that too."""
    if record.state == "cancelled":
        raise Refused(f"{record.reference} is cancelled already")
    was_sent = record.state == "sent"
    if was_sent:
        await _supersede(uow, record, "cancelled")
        record.revision += 1
    else:  # never sent: nobody reviews it any more
        uow.emit(events.NotificationsSettled(kinds=[REVIEW_KIND], about=str(record.id), reason="cancelled"),
                 id=events.deterministic_id("hns4d.settled", record.id, "cancelled"))
    record.state = "cancelled"
    uow.session.add(record)
    audit(uow, who=who, action="cancelled", record_id=record.id, detail=f"{record.reference} r{record.revision}")
    if was_sent:
        await send(uow, record, by=by, who=who, changed=True)
    return record


async def acknowledge(uow: UnitOfWork, forwarding: Forwarding, *, via: str, by_name: str = "", how: str = "",
                      at: datetime, recorded_by: uuid.UUID | None = None, who: str) -> bool:
    """A party acknowledged receipt: False if it had already, or if what it acknowledged was replaced
    meanwhile (it is asked the new revision)."""
    if forwarding.acknowledged_at is not None or forwarding.superseded:
        return False
    record = await uow.session.get(Record, forwarding.record_id)
    assert record is not None
    forwarding.acknowledged_at, forwarding.acknowledged_via = at, via
    forwarding.acknowledged_by, forwarding.how, forwarding.recorded_by = by_name[:200], how[:200], recorded_by
    forwarding.next_step_at = None
    uow.session.add(forwarding)
    on_time = at <= store.utc(forwarding.due_at)
    uow.emit(events.PartyAcknowledged(record_id=record.id, reference=record.reference, revision=forwarding.revision,
                                      party_id=forwarding.party_id, country=forwarding.country, via=via,  # type: ignore[arg-type]
                                      acknowledged_at=at, on_time=on_time),
             id=events.deterministic_id("hns4d.acknowledged", forwarding.id))
    uow.emit(events.NotificationsSettled(kinds=[PARTY_KIND, SILENCE_KIND], about=str(forwarding.id),
                                         reason="the party acknowledged receipt"),
             id=events.deterministic_id("hns4d.settled", forwarding.id, "acknowledged"))
    audit(uow, who=who, action="acknowledged", record_id=record.id,
          detail=f"{record.reference} r{forwarding.revision} party {forwarding.party_id} via {via}"
                 + (f" ({how})" if how else ""))
    log.info("party_acknowledged", reference=record.reference, revision=forwarding.revision, via=via, on_time=on_time)
    return True


async def on_transitioned(e: events.NotificationTransitioned, *, uow: UnitOfWork, clock: Clock) -> None:
    """notify's transitions: an officer pressed Send on a submission to review, or a party's liaison
    acknowledged receipt (the button, or the e-mail's link)."""
    if e.to_state != "acknowledged":
        return
    if e.kind == REVIEW_KIND and e.reply == SEND.reply:
        await on_send_pressed(e, uow=uow)
        return
    if e.kind != PARTY_KIND or e.reply not in (ACKNOWLEDGE.reply, None):  # None: a notify from before `reply`
        if e.kind.startswith("hns4d."):
            log.info("transition_not_acted_on", kind=e.kind, reply=e.reply)
        return
    try:
        forwarding = await uow.session.get(Forwarding, uuid.UUID(e.about))
    except ValueError:
        forwarding = None
    if forwarding is None:
        log.warning("acknowledged_unknown_forwarding", about=e.about)
        return
    via = e.via
    if via not in NOTIFIED_CHANNELS:  # an older notify (none): the channel the party is told by
        party = await uow.session.get(Party, forwarding.party_id)
        via = party.channel if party is not None and party.channel in NOTIFIED_CHANNELS else "telegram"
    if not await acknowledge(uow, forwarding, via=via, at=e.at, who=f"person:{e.person_id}"):
        log.info("acknowledgement_not_needed", about=e.about, superseded=forwarding.superseded)


async def on_send_pressed(e: events.NotificationTransitioned, *, uow: UnitOfWork) -> None:
    """The officer's Send: the record goes to every party; what stops it is told to that officer and to
    the submitter, and the record stays submitted (`cmcoord hns4d send` once it is put right)."""
    record = await uow.session.get(Record, uuid.UUID(e.about))
    if record is None or record.state != "submitted":
        log.info("send_not_needed", about=e.about, state=record.state if record else None)
        return
    try:
        await send(uow, record, by=e.person_id, who=f"person:{e.person_id}")
    except Refused as refused:  # refused before anything changed: the record waits, the officer knows why
        notice, text = notices.english("hns4d.refused", reference=record.reference, problems="; ".join(refused.problems))
        told = [e.person_id] + ([record.submitted_by] if record.submitted_by != e.person_id else [])
        uow.emit(events.NotificationRequested(kind=REFUSED_KIND, about=str(record.id), occurrence=e.notification_id.hex,
                                              person_ids=told, region=record.region, text=text, notice=notice,
                                              urgent=True),
                 id=events.deterministic_id("hns4d.refused", e.notification_id))
        log.info("send_refused", reference=record.reference, problems=len(refused.problems))


def silence_request(record: Record, forwarding: Forwarding, party: Party, audience: str) -> events.NotificationRequested:
    notice, text = notices.english("hns4d.silence", party=party.name, reference=record.reference, name=record.name,
                                   country=record.country, due=store.utc(forwarding.due_at),
                                   sent=store.utc(forwarding.sent_at))
    common: dict[str, Any] = dict(kind=SILENCE_KIND, about=str(forwarding.id),
                                  occurrence=f"r{forwarding.revision}-{audience}", text=text, notice=notice,
                                  buttons=[ReplyButton(label="Acknowledge", reply="ack")], urgent=True)
    if audience == "cmcoord_officer" and record.sent_by is not None:
        return events.NotificationRequested(person_ids=[record.sent_by], region=record.region, **common)
    if audience == "regional_adviser":
        return events.NotificationRequested(role="regional_adviser", region=record.region, **common)
    return events.NotificationRequested(role="cmcs_desk", **common)


async def take_silence_steps(uow: UnitOfWork, forwarding: Forwarding) -> list[str]:
    """The silence steps due for a party still silent, each once: claimed by moving the forwarding's step
    in this transaction (two processes never both take one). Who was told, in order."""
    now = uow.clock.now()
    record = await uow.session.get(Record, forwarding.record_id)
    party = await uow.session.get(Party, forwarding.party_id)
    assert record is not None and party is not None
    policy = rules.policy_for(record.country)
    due_at = store.utc(forwarding.due_at)
    step, told = forwarding.silence_step, []
    while (at := rules.silence_step_at(due_at=due_at, step=step, policy=policy)) is not None and at <= now:
        told.append(rules.SILENCE_AUDIENCES[step])
        step += 1
    if not told:
        return []
    claimed = await uow.session.exec(update(Forwarding).where(
        col(Forwarding.id) == forwarding.id, col(Forwarding.silence_step) == forwarding.silence_step,
        col(Forwarding.acknowledged_at).is_(None), col(Forwarding.superseded).is_(False),
    ).values(silence_step=step, next_step_at=rules.silence_step_at(due_at=due_at, step=step, policy=policy)))
    if claimed.rowcount != 1:
        return []  # another pass took it, or the party answered meanwhile
    skipped = {"regional_adviser"} if record.region is None else set()  # no region: the desk's step is next
    for n, audience in enumerate(told, start=forwarding.silence_step):
        if audience in skipped:
            continue
        uow.emit(silence_request(record, forwarding, party, audience),
                 id=events.deterministic_id("hns4d.silence", forwarding.id, n))
        uow.emit(events.PartySilent(record_id=record.id, reference=record.reference, revision=forwarding.revision,
                                    party_id=party.id, country=record.country, region=record.region, due_at=due_at,
                                    escalated_to=audience),  # type: ignore[arg-type]
                 id=events.deterministic_id("hns4d.silent", forwarding.id, n))
    told = [audience for audience in told if audience not in skipped]
    audit(uow, who="hns4d", action="silence", record_id=record.id,
          detail=f"{record.reference} r{forwarding.revision} party {party.id}: told {', '.join(told)}")
    return told


async def record_incident(uow: UnitOfWork, record: Record, *, what: str, occurred_at: datetime,
                          party: Party | None, by: uuid.UUID | None, who: str) -> Incident:
    if not what.strip():
        raise Refused("say what happened")
    if party is not None and party.country != record.country:
        raise Refused(f"{party.name} is a party in {party.country}, not {record.country}")
    now = uow.clock.now()
    if occurred_at > now:
        raise Refused("an incident is recorded once it has happened")
    incident = Incident(id=uuid.uuid4(), record_id=record.id, country=record.country,
                        party_id=party.id if party else None, occurred_at=occurred_at, what=what.strip(),
                        recorded_by=by, recorded_at=now)
    uow.session.add(incident)
    uow.emit(events.IncidentRecorded(incident_id=incident.id, record_id=record.id, reference=record.reference,
                                     country=record.country, region=record.region, party_id=incident.party_id,
                                     occurred_at=occurred_at, what=incident.what, recorded_by=by, recorded_at=now),
             id=events.deterministic_id("hns4d.incident", incident.id))
    audit(uow, who=who, action="incident", record_id=record.id, detail=f"{record.reference}")
    return incident


# --- what the officer, the submitter and the desk read --------------------------------------------------------


async def party_statuses(session: AsyncSession, record: Record, *, now: datetime,
                         parties: Set[uuid.UUID] | None = None) -> list[PartyStatus]:
    """Per party, by name, what it answered of the current revision: receipt, or silence (of `parties`
    only, when named: a liaison reads their own party's answer, never another's)."""
    current = [f for f in await store.forwardings_of(session, record.id, revision=record.revision)
               if parties is None or f.party_id in parties]
    parties = await store.parties_by_id(session, [f.party_id for f in current])
    shown = []
    for f in sorted(current, key=lambda f: parties[f.party_id].name):
        acknowledged_at = store.utc(f.acknowledged_at) if f.acknowledged_at else None
        recorded = f.acknowledged_via == "recorded"
        shown.append(PartyStatus(
            party=parties[f.party_id].name, sent_at=store.utc(f.sent_at), due_at=store.utc(f.due_at),
            state=rules.party_state(acknowledged_at=acknowledged_at, due_at=store.utc(f.due_at), now=now),
            acknowledged_at=acknowledged_at, recorded_how=f.how if recorded else "",
            recorded_by=f.acknowledged_by if recorded else ""))
    return shown


def status_lines(record: Record, statuses: list[PartyStatus], *, now: datetime, warning: bool = True) -> list[str]:
    """The notification, then `statuses` as English lines (the desk's command, and an older bot); its
    warning unless `warning` is false (a party's liaison reads what was sent, not the submitter's note)."""
    head = (f"{record.reference}: {record.kind} in {record.country}, {record.name} ({record.organisation}); "
            f"{record.state}, revision {record.revision}")
    lines = [head] + ([f"warning: {record.warning}"] if record.warning and warning else [])
    if not statuses:
        return lines + ["not sent to the parties yet"]
    for s in statuses:
        line = rules.status_line(party=s.party, sent_at=s.sent_at, due_at=s.due_at, acknowledged_at=s.acknowledged_at,
                                 now=now)
        if s.recorded_how or s.recorded_by:
            line += f", {s.recorded_how} ({s.recorded_by}), as recorded by the officer"
        lines.append("  " + line)
    return lines


@dataclass
class Delivered:
    """A forwarding as the figures count it (rules.DeliveryLike)."""

    country: str
    party: str
    sent_at: datetime
    due_at: datetime
    acknowledged_at: datetime | None
    superseded: bool


@dataclass
class Happened:
    country: str
    party: str | None


async def figures(session: AsyncSession, *, start: datetime, end: datetime, country: str | None,
                  now: datetime) -> list[dict[str, Any]]:
    """Per country and party, what was sent in [start, end) and how the party answered, and the incidents."""
    sent, incidents = await store.in_period(session, start, end, country.upper() if country else None)
    parties = await store.parties_by_id(session, sorted({f.party_id for f in sent} | {
        i.party_id for i in incidents if i.party_id is not None}, key=str))
    table = rules.party_figures(
        [Delivered(f.country, str(f.party_id), store.utc(f.sent_at), store.utc(f.due_at),
                   store.utc(f.acknowledged_at) if f.acknowledged_at else None, f.superseded) for f in sent],
        [Happened(i.country, str(i.party_id) if i.party_id else None) for i in incidents], now=now)
    rows = []
    for (code, party_id), f in sorted(table.items()):
        party = parties.get(uuid.UUID(party_id)) if party_id else None
        rows.append({"country": code, "party": party.name if party else "(party not known)", "sent": f.sent,
                     "acknowledged": f.acknowledged, "acknowledged_on_time": f.acknowledged_on_time,
                     "median_hours_to_acknowledge": f.median_hours_to_acknowledge, "silent": f.silent,
                     "incidents": f.incidents})
    return rows


def figures_requests(rows: list[dict[str, Any]], *, period: str) -> list[events.NotificationRequested]:
    """`figures` rows told to the CMCS desk, and the desk only (they name the parties and their silences):
    a message per country, its totals and a line per party. The same figures told again are one message
    (notify's occurrence is the text's); changed figures, a new one."""
    told = []
    for country in sorted({r["country"] for r in rows}):
        mine = [r for r in rows if r["country"] == country]
        lines = [f"{r['party']}: {r['sent']} / {r['acknowledged']} / {r['acknowledged_on_time']} / "
                 f"{'–' if r['median_hours_to_acknowledge'] is None else format(r['median_hours_to_acknowledge'], '.1f')}"
                 f" / {r['silent']} / {r['incidents']}" for r in mine]
        kept = bisect.bisect_right(list(itertools.accumulate(len(line) + 1 for line in lines)), PARTY_LINES_BUDGET)
        per_party = "\n".join(lines[:kept] + ([f"… +{len(lines) - kept} (cmcoord hns4d figures)"]
                                              if kept < len(lines) else []))
        totals = {k: sum(r[k] for r in mine) for k in ("sent", "acknowledged", "acknowledged_on_time", "silent",
                                                      "incidents")}
        notice, text = notices.english(FIGURES_KIND, country=country, period=period, parties=per_party,
                                       notified=totals["sent"], acknowledged=totals["acknowledged"],
                                       on_time=totals["acknowledged_on_time"], silent=totals["silent"],
                                       incidents=totals["incidents"])
        told.append(events.NotificationRequested(
            kind=FIGURES_KIND, about=f"figures-{period.replace(' ', '')}-{country}",
            occurrence=events.deterministic_id(FIGURES_KIND, text).hex, role="cmcs_desk", text=text, notice=notice))
    return told


@dataclass(frozen=True)
class Exported:
    """A record as the exports read it (exports.RecordLike)."""

    reference: str
    kind: Kind
    country: str
    organisation: str
    name: str
    points: list[Point]
    starts_at: datetime | None
    ends_at: datetime | None


async def exportable(session: AsyncSession, *, country: str | None, since: datetime,
                     party: Party | None = None) -> list[Exported]:
    """Sites and movements sent to the parties and not cancelled, changed since `since`; to give `party`,
    only those sent to it (refused unless the desk allowed it exports)."""
    query = select(Record).where(Record.state == "sent", col(Record.changed_at) >= since)
    if party is not None:
        if not party.exports:
            raise Refused(f"{party.name} ({party.country}) is not given exports: the desk allows it with "
                          f"cmcoord hns4d party add … --exports")
        country = party.country
        query = query.where(store.sent_to([party.id]))
    if country is not None:
        query = query.where(Record.country == country.upper())
    rows = (await session.exec(query.order_by(col(Record.reference)))).all()
    return [Exported(r.reference, r.kind, r.country, r.organisation, r.name, r.point_list,  # type: ignore[arg-type]
                     store.utc(r.starts_at) if r.starts_at else None, store.utc(r.ends_at) if r.ends_at else None)
            for r in rows]
