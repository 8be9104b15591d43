"""Notify's reads and repository functions: a notification's id, what a request asks for, a row
locked for its change, a daily summary's list, the day counts of the daily cap. What changes a
notification, with its transition and event, is services/notify/handlers/notifications.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time

from sqlmodel import col, select

from services.notify.models import DailySent, Notification
from services.notify.policy import OPEN_STATES, Rules, zone
from services.notify.recipients import Recipient
from shared.clock import Clock
from shared.events import Notice, ReplyButton, deterministic_id
from shared.notices import button_label, render
from shared.store import Database, UnitOfWork

SOURCE = "notify"
ACKNOWLEDGE = (ReplyButton(label="Acknowledge", reply="ack"),)
ACKNOWLEDGE_ALL = ReplyButton(label="Acknowledge all", reply="ack")
DEFAULT_RULES = Rules()
DUE_LOCAL_TIME = time(9, 0)  # campaign messages timed by date go out at 09:00 local
CLOSABLE_STATES = OPEN_STATES | {"unlinked"}  # what a settled matter or an acknowledgement closes


def open_store(url: str, *, clock: Clock) -> Database:
    """The notify store, as its service and its commands open it: its units of work write events as
    `SOURCE`, at `clock`'s time."""
    return Database(url, source=SOURCE, clock=clock)


def notification_id(kind: str, about: str, person_id: uuid.UUID, occurrence: str) -> uuid.UUID:
    return deterministic_id("notification", kind, about, person_id, occurrence)


@dataclass(frozen=True)
class Request:
    """What to tell; `due_at` None means now. `region` is the matter's (a gapped
    post's region), else the recipient's own. With a `notice`, each recipient reads it in their
    language (`text` is its English, for a notice this process cannot write)."""

    kind: str
    about: str
    occurrence: str
    text: str
    buttons: Sequence[ReplyButton] = ACKNOWLEDGE
    urgent: bool = False
    region: str | None = None
    due_at: datetime | None = None
    due_on: date | None = None  # or: on this day at `DUE_LOCAL_TIME` in the recipient's time zone
    exclude: frozenset[uuid.UUID] = field(default_factory=frozenset)
    document: str | None = None  # a file of the DOCUMENTS object store, sent with the text
    documents: tuple[tuple[str, str], ...] = ()  # the same file in other languages: (language, file)
    group: bool = False  # to a role's holders: one alert, closed for all by the first acknowledgement
    notice: Notice | None = None
    # or a text notify composes itself from several notices, written for each reader
    writer: Callable[[Recipient], str] | None = None

    def text_for(self, recipient: Recipient) -> str:
        if self.writer is not None:
            return self.writer(recipient)
        if self.notice is not None:
            return render(self.notice, recipient.locale, recipient.timezone) or self.text
        return self.text

    def document_for(self, recipient: Recipient) -> str | None:
        return dict(self.documents).get(recipient.locale, self.document) if self.document is not None else None

    def buttons_for(self, recipient: Recipient) -> list[ReplyButton]:
        return [ReplyButton(label=button_label(b.label, recipient.locale), reply=b.reply) for b in self.buttons]

    @property
    def group_id(self) -> uuid.UUID | None:
        return deterministic_id("group", self.kind, self.about, self.occurrence) if self.group else None

    def due_for(self, recipient: Recipient, now: datetime) -> datetime:
        if self.due_on is not None:
            local = datetime.combine(self.due_on, DUE_LOCAL_TIME, tzinfo=zone(recipient.timezone))
            return max(now, local.astimezone(now.tzinfo))
        return self.due_at or now


def day_counts(uow: UnitOfWork) -> dict[tuple[uuid.UUID, str], DailySent]:
    """The day counts this transaction has read or made (a fan-out reads each once)."""
    return uow.session.info.setdefault("daily_sent", {})  # type: ignore[no-any-return]


async def load_day_counts(uow: UnitOfWork, people: Iterable[tuple[uuid.UUID, str]]) -> None:
    """The day counts of many people in one query, ahead of their sends."""
    wanted = set(people) - set(day_counts(uow))
    if not wanted:
        return
    rows = (await uow.session.exec(select(DailySent).where(
        col(DailySent.person_id).in_({p for p, _ in wanted}), col(DailySent.day).in_({d for _, d in wanted})))).all()
    counts = day_counts(uow)
    for row in rows:
        counts[(row.person_id, row.day)] = row
    for key in wanted - set(counts):
        counts[key] = DailySent(person_id=key[0], day=key[1])


async def folded_into(uow: UnitOfWork, summary: Notification) -> list[Notification]:
    """The messages a person's daily summary lists: folded that day, still open (locked until commit)."""
    return list((await uow.session.exec(select(Notification).where(
        Notification.person_id == summary.person_id, Notification.folded_on == summary.occurrence,
        col(Notification.state).in_(OPEN_STATES)).order_by(col(Notification.created_at)).with_for_update())).all())


_LOCKED = "notify.locked_notifications"  # the session's rows a batch's prefetch locked, by id


async def locked(uow: UnitOfWork, notification_id: uuid.UUID) -> Notification | None:
    """The row, locked until commit on PostgreSQL (SQLite's write transaction already is); from
    the batch's prefetch when it locked it (`lock_all`), else read now."""
    held: dict[uuid.UUID, Notification] = uow.session.info.get(_LOCKED, {})
    if notification_id in held:
        return held[notification_id]
    return (await uow.session.exec(
        select(Notification).where(col(Notification.id) == notification_id).with_for_update())).first()


async def lock_all(uow: UnitOfWork, ids: Collection[uuid.UUID]) -> list[Notification]:
    """These notifications in one query, locked as `locked` locks one (in the order of their ids, as
    every batch takes them); `locked` then finds them without reading again. Returns them, to be held
    while the batch is applied (the session keeps rows weakly)."""
    if not ids:
        return []
    rows = list((await uow.session.exec(select(Notification).where(col(Notification.id).in_(list(ids)))
                                        .order_by(col(Notification.id)).with_for_update())).all())
    uow.session.info.setdefault(_LOCKED, {}).update({n.id: n for n in rows})
    return rows


