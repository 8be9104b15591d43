"""Lessons handlers: every change to the lessons store, and the events it emits.

An event handler is `async def on_x(event, *, uow, clock, ...)`, applied once per event in
the consumer's unit of work (services/lessons/consumers.py says which durable takes which
event; the settings it needs are bound there). The review steps of the CLI and the AARs
the desk asks for are use cases here too: they take the unit of work as a keyword.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.lessons import lifecycle
from services.lessons.duties import DutyPolicy
from services.lessons.models import Aar, Item, ItemLink, ItemTheme, ReviewStep
from services.lessons.search import facets_of, fill_index, similar_to
from services.lessons.store import item_by_reference
from shared import events, notices
from shared.clock import Clock
from shared.i18n import DEFAULT
from shared.regions import region_for_country
from shared.store import UnitOfWork
from shared.themes import THEMES, reference


TITLE_MAX = 120



async def on_deployment_ended(event: events.DeploymentEnded, *, uow: UnitOfWork, clock: Clock, policy: DutyPolicy,
                              due_days: int) -> None:
    """A deployment ended: its AAR is owed `due_days` later, reminded as `policy` says."""
    await expect_aar(uow, aar_id=events.deterministic_id("aar", event.deployment_id), person_id=event.person_id,
                     deployment_id=event.deployment_id, country=event.country,
                     due_on=event.ended_on + timedelta(days=due_days), policy=policy)


async def on_report_submitted(event: events.ReportSubmitted, *, uow: UnitOfWork, clock: Clock,
                              threshold: float) -> None:
    await record_report(uow, event, threshold=threshold)


async def on_aar_submitted(event: events.AarSubmitted, *, uow: UnitOfWork, clock: Clock, threshold: float) -> None:
    await record_aar(uow, event, threshold=threshold)


async def on_incident_recorded(event: events.IncidentRecorded, *, uow: UnitOfWork, clock: Clock,
                               threshold: float) -> None:
    await record_incident(uow, event, threshold=threshold)


def title_of(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= TITLE_MAX else first[: TITLE_MAX - 1].rsplit(" ", 1)[0] + "…"


def clean_themes(themes: Sequence[str]) -> list[str]:
    return [t for t in dict.fromkeys(themes) if t in THEMES]


async def _unique_reference(session: AsyncSession, wanted: str, item_id: uuid.UUID) -> str:
    taken = (await session.exec(select(Item.id).where(Item.reference == wanted))).first()
    return wanted if taken is None or taken == item_id else f"{wanted}-{item_id.hex[:4].upper()}"


async def _add_item(uow: UnitOfWork, item: Item, *, threshold: float) -> Item | None:
    """Store a new item with its themes and links to earlier ones it resembles; None if it exists."""
    session = uow.session
    if (await session.exec(select(Item).where(Item.id == item.id))).first() is not None:
        return None
    item.reference = await _unique_reference(session, item.reference, item.id)
    fill_index(item)
    similar = await similar_to(session, item, threshold=threshold)
    session.add(item)
    await session.flush()  # the row id the theme rows and the full-text index point to
    assert item.seq is not None
    session.add_all([ItemTheme(theme=t, item_seq=item.seq) for t in item.theme_list])
    session.add_all([ItemLink(item_id=item.id, similar_id=other, score=score) for other, score in similar])
    uow.emit(events.LessonRecorded(
        item_id=item.id, reference=item.reference, kind=item.kind, country=item.country,  # type: ignore[arg-type]
        region=item.region, themes=item.theme_list, classification=item.classification,  # type: ignore[arg-type]
        similar_to=[other for other, _ in similar]), id=events.deterministic_id("lesson.recorded", item.id))
    return item


async def record_report(uow: UnitOfWork, e: events.ReportSubmitted, *, threshold: float) -> Item | None:
    country = e.country.upper()
    item = Item(id=e.report_id, reference=e.reference, kind="observation", author_id=e.person_id, country=country,
                region=region_for_country(country), themes=" ".join(clean_themes(e.themes)),
                classification=e.classification, title=title_of(e.text), body=e.text.strip(),
                attachment_kind=e.attachment_kind, attachment_file_id=e.attachment_file_id,
                attachment_name=e.attachment_name, created_at=e.submitted_at)
    return await _add_item(uow, item, threshold=threshold)


# The author of an incident HNS4D recorded without saying which officer did
HNS4D_AUTHOR = events.deterministic_id("author", "hns4d")


def incident_body(e: events.IncidentRecorded) -> str:
    """The officer's words, then when it happened (UTC) and on which notification, nothing the event
    does not say. No words of ours: recurrence compares incidents by what happened, not by a
    sentence every incident would share."""
    return f"{e.what.strip()}\n\n{e.occurred_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC, {e.reference}"


async def record_incident(uow: UnitOfWork, e: events.IncidentRecorded, *, threshold: float) -> Item | None:
    """An incident on a notified site or movement, as a restricted observation: it names a humanitarian
    location and maybe a party, so only its author, the desk and the region's adviser read it. Its
    title and tags carry the notification's reference, which finds it."""
    country = e.country.upper()
    item_id = events.deterministic_id("hns4d.incident.item", e.incident_id)
    item = Item(id=item_id, reference=reference("R", item_id), kind="observation",
                author_id=e.recorded_by or HNS4D_AUTHOR, country=country,
                region=e.region or region_for_country(country), themes="hns4d", classification="restricted",
                title=title_of(f"Incident on humanitarian notification {e.reference}"), body=incident_body(e),
                tags=e.reference, created_at=e.recorded_at)
    return await _add_item(uow, item, threshold=threshold)


AAR_SECTIONS = (("planned", "What was planned"), ("happened", "What happened"), ("difference", "Why the difference"),
                ("sustain", "What to sustain"), ("improve", "What to improve"))


def aar_body(answers: dict[str, str]) -> str:
    return "\n\n".join(f"{label}:\n{answers[key].strip()}" for key, label in AAR_SECTIONS if answers.get(key, "").strip())


async def record_aar(uow: UnitOfWork, e: events.AarSubmitted, *, threshold: float) -> Item | None:
    """The officer's review: the AAR owed is closed (or one is recorded, if none was asked for)."""
    session = uow.session
    aar = await session.get(Aar, e.aar_id)
    if aar is None:  # written without being asked: welcome all the same
        if not e.country:
            raise ValueError("an AAR nobody asked for needs its country")
        country = e.country.upper()
        aar = Aar(id=e.aar_id, person_id=e.person_id, country=country, region=region_for_country(country),
                  due_on=e.submitted_at.date(), created_at=e.submitted_at, requested_by="self")
    if aar.state == "submitted":
        return None
    answers = e.model_dump(include={k for k, _ in AAR_SECTIONS})
    label = aar.operation or f"deployment in {aar.country}"
    item = Item(id=events.deterministic_id("aar.item", aar.id), reference=reference("A", aar.id), kind="aar",
                author_id=aar.person_id, country=aar.country, region=aar.region,
                themes=" ".join(clean_themes(e.themes)), classification=e.classification,
                title=title_of(f"AAR: {label} — {answers['improve'] or answers['happened'] or answers['planned']}"),
                body=aar_body(answers), aar_id=aar.id, created_at=e.submitted_at)
    added = await _add_item(uow, item, threshold=threshold)
    aar.state, aar.submitted_at, aar.item_id = "submitted", e.submitted_at, item.id
    aar.next_at, aar.version = None, aar.version + 1
    session.add(aar)
    uow.emit(events.AarCompleted(aar_id=aar.id, person_id=aar.person_id, region=aar.region, due_on=aar.due_on,
                                 submitted_on=e.submitted_at.date(), item_id=item.id),
             id=events.deterministic_id("aar.completed", aar.id))
    return added


async def review(uow: UnitOfWork, *, ref: str, action: lifecycle.Action, by: str, note: str = "",
                 themes: Sequence[str] = (), remove: Sequence[str] = (), into: str | None = None) -> Item:
    """One review step on an item, recorded with who and when; raises ReviewRefused or LookupError."""
    session, now = uow.session, uow.clock.now()
    item = await item_by_reference(session, ref)
    if item is None:
        raise LookupError(f"no item {ref}")
    status = lifecycle.after(item.status, action, note=note)
    detail = note
    if action == "tagged":
        unknown = [t for t in [*themes, *remove] if t not in THEMES]
        if unknown:
            raise lifecycle.ReviewRefused(f"unknown theme(s): {', '.join(unknown)}; themes are {', '.join(THEMES)}")
        new = [t for t in dict.fromkeys([*item.theme_list, *themes]) if t not in remove]
        assert item.seq is not None
        for gone in set(item.theme_list) - set(new):
            row = await session.get(ItemTheme, (gone, item.seq))
            if row is not None:
                await session.delete(row)
        session.add_all([ItemTheme(theme=t, item_seq=item.seq) for t in new if t not in item.theme_list])
        item.themes = " ".join(new)
        detail = f"themes: {item.themes}" + (f"; {note}" if note else "")
    elif action == "merged":
        target = await item_by_reference(session, into or "")
        if target is None or target.id == item.id or target.status == "merged":
            raise lifecycle.ReviewRefused(f"merge into what? {into!r} is not another item still open")
        item.merged_into = target.id
        detail = f"into {target.reference}" + (f"; {note}" if note else "")
    elif action == "learned":
        item.action = note.strip()
    item.status = status
    item.facets = facets_of(item)
    session.add(item)
    session.add(ReviewStep(item_id=item.id, action=action, detail=detail, by=by, at=now))
    uow.emit(events.LessonReviewed(item_id=item.id, reference=item.reference, action=action, status=status, by=by,
                                   at=now))
    return item


async def expect_aar(uow: UnitOfWork, *, aar_id: uuid.UUID, person_id: uuid.UUID, country: str, due_on: date,
                     policy: DutyPolicy, deployment_id: uuid.UUID | None = None, operation: str = "",
                     requested_by: str = "") -> Aar | None:
    """An AAR owed from now; None if it was asked for already."""
    if await uow.session.get(Aar, aar_id) is not None:
        return None
    country = country.upper()
    aar = Aar(id=aar_id, person_id=person_id, deployment_id=deployment_id, operation=operation, country=country,
              region=region_for_country(country), due_on=due_on, requested_by=requested_by,
              created_at=uow.clock.now(), next_step=0, next_at=policy.at(due_on, 0))
    uow.session.add(aar)
    uow.emit(events.AarDue(aar_id=aar.id, person_id=person_id, deployment_id=deployment_id, operation=operation,
                           country=country, region=aar.region, due_on=due_on),
             id=events.deterministic_id("aar.due", aar.id))
    return aar


async def claim_steps(uow: UnitOfWork, aar: Aar, *, next_step: int, next_at: datetime | None) -> bool:
    """Move the AAR past the steps being taken, if no other pass did (version check)."""
    result = await uow.session.exec(  # type: ignore[call-overload]
        update(Aar).where(col(Aar.id) == aar.id, col(Aar.version) == aar.version, col(Aar.state) == "open")
        .values(next_step=next_step, next_at=next_at, version=aar.version + 1))
    return bool(result.rowcount)


async def request_aars(uow: UnitOfWork, *, country: str, operation: str, person_ids: Sequence[uuid.UUID], due_on: date,
                       policy: DutyPolicy, requested_by: str) -> int:
    """`cmcoord lessons aar request`: the CMCS desk asks each person for an AAR on an operation;
    how many were asked for now (one asked for already is not asked again)."""
    made = 0
    for person_id in dict.fromkeys(person_ids):
        aar_id = events.deterministic_id("aar.operation", country, operation.strip().casefold(), person_id)
        made += await expect_aar(uow, aar_id=aar_id, person_id=person_id, country=country, due_on=due_on,
                                 policy=policy, operation=operation.strip(), requested_by=requested_by) is not None
    return made


def digest_request(*, period_label: str, documents: dict[str, str]) -> tuple[uuid.UUID, events.NotificationRequested]:
    """The quarter's digest, sent as a document to every member in their language (`documents`: the
    file of each language, English first): its id (one per English document, so a repeated send is one
    notification) and the request to notify."""
    notice, text = notices.english("lessons.digest", period=period_label)
    english = documents.get(DEFAULT)
    if english is None:
        raise ValueError("the digest is sent with its English document, which readers of other languages fall back to")
    request = events.NotificationRequested(
        kind="lessons.digest", about=f"digest-{period_label.replace(' ', '')}", occurrence=english, everyone=True,
        document=english, documents={k: v for k, v in documents.items() if k != DEFAULT}, text=text, notice=notice)
    return events.deterministic_id("digest", english), request

