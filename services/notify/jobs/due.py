"""Scheduled steps (send, re-notify, escalate, expire), kept in the notifications
themselves (`due_at`, `due_action`): a restart loses nothing, and a step is claimed by
bumping the row's version, so with two notify processes each step happens once.

One step that fails never holds the others: a passing failure (the roster not
answering, the store busy) puts that step back a little; any other is recorded on the
notification as `failed` with its reason, counted, told to the desk once (per kind of
failure) and the loop goes on. The desk's "could not reach" summary is sent from here,
at most once a day."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from functools import partial

import structlog
from sqlalchemy import func, update
from sqlmodel import col, select

from services.notify.handlers.notifications import (
    EMAIL,
    close_copy,
    create,
    daily_summary_text,
    email,
    fail,
    notice,
    schedule_next,
    send,
    transition,
)
from services.notify.models import DeskNotice, Notification
from services.notify.policy import DAILY_SUMMARY, OPEN_STATES, UNREACHED_SUMMARY, Rules
from services.notify.recipients import ENGLISH_READER, Recipient, Roster
from services.notify.store import DEFAULT_RULES, Request
from services.notify.texts import bullets, fit
from shared import notices
from shared.bus import QueryError, is_transient
from shared.clock import Clock
from shared.events import TEXT_MAX
from shared.metrics import ServiceMetrics
from shared.periodic import Periodic
from shared.store import Database, UnitOfWork

log = structlog.get_logger("notify")
ROLE_TOLD = {1: ("regional_adviser", "regional adviser told"), 2: ("cmcs_desk", "CMCS desk told")}


class DueWork(Periodic):
    name = "due_work"

    def __init__(self, *, db: Database, clock: Clock, roster: Roster, rules: Rules = DEFAULT_RULES,
                 tick_seconds: float = 1.0, batch: int = 500, metrics: ServiceMetrics | None = None) -> None:
        super().__init__(tick_seconds=tick_seconds)
        self.db, self.clock, self.roster = db, clock, roster
        self.rules = rules
        self.batch = batch
        self.done = 0
        metrics = metrics or ServiceMetrics("notify")
        self.failed = metrics.counter(
            "due_steps_failed", "Scheduled steps that failed, by kind and outcome", ("kind", "outcome"))
        # the steps due and not done yet (send, re-notify, escalate, expire): a loop that stalls shows here first
        self._due_waiting = metrics.gauge("due_steps_waiting", "Scheduled steps due now and not yet performed")
        self._due_lag = metrics.gauge("due_step_lag_seconds", "How long the oldest step due has waited (0: none)")
        metrics.on_scrape(self.measure_due)

    async def measure_due(self) -> None:
        """At each scrape: how many steps are due and how late the oldest is (read from the store)."""
        now = self.clock.now()
        due = col(Notification.due_at) <= now
        async with self.db.read() as session:
            waiting = (await session.exec(select(func.count()).select_from(Notification).where(due))).one()
            oldest = (await session.exec(select(Notification.due_at).where(due)
                                         .order_by(col(Notification.due_at)).limit(1))).first()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        self._due_waiting.set(waiting)
        self._due_lag.set(max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)

    async def run_pass(self) -> None:
        while await self.run_due() >= self.batch and not self._stopping.is_set():
            pass  # a full batch: more may be due
        await self.tell_unreached()

    async def run_due(self) -> int:
        """Perform every step due now; returns how many rows were looked at."""
        now = self.clock.now()
        async with self.db.read() as session:
            rows = list((await session.exec(
                select(Notification).where(col(Notification.due_at) <= now).order_by(col(Notification.due_at))
                .limit(self.batch))).all())
        for n in rows:
            try:
                await self._step(n, now)
            except Exception as err:
                if isinstance(err, QueryError) or is_transient(err):  # the roster away, the store busy
                    await self._put_back(n, now, err)
                else:  # a bug, a text a builder got wrong: this step only
                    log.exception("due_step_failed", notification_id=str(n.id), kind=n.kind, action=n.due_action)
                    await self._failed(n, now, err)
        return len(rows)

    async def _put_back(self, n: Notification, now: datetime, err: Exception) -> None:
        log.warning("due_step_put_back", notification_id=str(n.id), kind=n.kind, action=n.due_action,
                    error=f"{type(err).__name__}: {err}"[:200])
        self.failed.labels(n.kind, "retried").inc()
        async with self.db.unit_of_work(correlation_id=str(n.id)) as uow:
            await uow.session.exec(update(Notification)  # type: ignore[call-overload]
                                   .where(col(Notification.id) == n.id, col(Notification.version) == n.version)
                                   .values(due_at=now + self.rules.step_retry, version=n.version + 1))

    async def _failed(self, n: Notification, now: datetime, err: Exception) -> None:
        """The notification fails with the step's error, counted once: a pass that finds it changed meanwhile
        (another pass or process failed it first) leaves it, and the count, to that one."""
        reason = f"{n.due_action} failed: {type(err).__name__}: {err}"
        async with self.db.unit_of_work(correlation_id=str(n.id)) as uow:
            row = await uow.session.get(Notification, n.id)
            if row is None or row.version != n.version:
                return  # changed meanwhile: the step will be looked at afresh
            row.failed_reason = reason[:200]
            row.due_at, row.due_action = None, None
            transition(uow, row, "failed", reason, now)
            await notice(uow, key=f"step:{n.kind}:{type(err).__name__}"[:120], region=None, depth=0, now=now,
                         line=f"'{n.kind}' messages could not be prepared ({type(err).__name__}: {err})"[:400])
        self.failed.labels(n.kind, "failed").inc()

    async def _targets(self, n: Notification, level: int) -> tuple[int, list[Recipient]]:
        """Who hears of an escalation: the regional adviser, else (or next) the CMCS desk."""
        if level == 1 and n.region:
            advisers = [r for r in await self.roster.holders("regional_adviser", n.region) if r.person_id != n.person_id]
            if advisers:
                return 1, advisers
        return 2, [r for r in await self.roster.holders("cmcs_desk") if r.person_id != n.person_id]

    async def _step(self, n: Notification, now: datetime) -> None:
        action = n.due_action
        targets: tuple[int, list[Recipient]] | None = None
        if action == "escalate" and n.state in OPEN_STATES:
            targets = await self._targets(n, n.escalation_level + 1)
        async with self.db.unit_of_work(correlation_id=str(n.id)) as uow:
            claimed = await uow.session.exec(update(Notification)  # type: ignore[call-overload]
                                             .where(col(Notification.id) == n.id, col(Notification.version) == n.version)
                                             .values(version=n.version + 1))
            if claimed.rowcount != 1:
                return  # another notify process took this step
            row = await uow.session.get(Notification, n.id)
            assert row is not None
            if row.due_action != action or row.due_at is None or row.due_at > now:
                return  # changed since it was read (the claim above makes this rare)
            await self._perform(uow, row, action, targets, now)
            uow.session.add(row)
        self.done += 1

    async def _perform(self, uow: UnitOfWork, n: Notification, action: str | None,
                       targets: tuple[int, list[Recipient]] | None, now: datetime) -> None:
        n.due_at, n.due_action = None, None
        if action == "tell_desk":  # a step of a store written before daily summaries
            await fail(uow, n, n.failed_reason or "failed", now, self.rules)
            return
        if action == EMAIL:  # its day has come, for someone without Telegram (still: linking sends it there)
            if n.state == "unlinked":
                email(uow, n)
            return
        if n.state not in OPEN_STATES:
            return  # acknowledged, failed or expired meanwhile
        if action in ("send", "renotify"):
            if n.kind == DAILY_SUMMARY:
                text = await daily_summary_text(uow, n)
                if text is None:  # all answered from /pending meanwhile: a summary on screen loses its buttons
                    close_copy(uow, n, "nothing left to list", now)
                    return
                n.text = text
            await send(uow, n, action, now, self.rules)
        elif action == "escalate":
            assert targets is not None
            level, people = targets
            assert n.first_sent_at is not None
            notice, text = notices.english("escalation", name=n.person_name, sent=n.first_sent_at.replace(tzinfo=UTC),
                                           text=n.text)
            await create(uow, Request(
                kind="escalation", about=str(n.id), occurrence=f"level-{level}", region=n.region, text=fit(text),
                notice=notice, group=True,
            ), people, now=now, rules=self.rules, depth=n.depth + 1)
            n.escalation_level = level
            transition(uow, n, "escalated", ROLE_TOLD[level][1], now)
            schedule_next(n, self.rules)
        elif action == "expire":  # a copy on screen loses its buttons: pressed later, they would answer nothing
            close_copy(uow, n, "no answer in time", now)

    # --- the desk's "could not reach" summary ---------------------------------------------------------

    async def tell_unreached(self) -> None:
        """Once a day at most, when a wave of failures has had time to gather: one summary to
        each desk member (everything) and each adviser (their region), then those are told."""
        now = self.clock.now()
        day = now.date().isoformat()
        async with self.db.read() as session:
            oldest = (await session.exec(select(func.min(DeskNotice.first_at))
                                         .where(col(DeskNotice.told_at).is_(None)))).first()
            if oldest is None or oldest > now - self.rules.unreached_gather:
                return
            sent_today = (await session.exec(select(Notification.id).where(
                Notification.kind == UNREACHED_SUMMARY, Notification.occurrence == day).limit(1))).first()
        if sent_today is not None:
            return  # tomorrow's summary takes what came since
        async with self.db.read() as session:
            untold = list((await session.exec(select(DeskNotice).where(col(DeskNotice.told_at).is_(None))
                                               .order_by(col(DeskNotice.first_at)))).all())
        desk = await self.roster.holders("cmcs_desk")
        by_region: dict[str, list[DeskNotice]] = defaultdict(list)
        for row in untold:
            if row.region:
                by_region[row.region].append(row)
        advisers = {region: await self.roster.holders("regional_adviser", region) for region in by_region}
        async with self.db.unit_of_work(correlation_id=f"unreached:{day}") as uow:
            depth = 1 + max(r.depth for r in untold)
            await create(uow, self._summary(untold, day), desk, now=now, rules=self.rules, depth=depth)
            for region, rows in by_region.items():
                await create(uow, self._summary(rows, day, region=region), advisers[region], now=now,
                             rules=self.rules, depth=depth)
            keys = [r.key for r in untold]
            await uow.session.exec(update(DeskNotice)  # type: ignore[call-overload]
                                   .where(col(DeskNotice.key).in_(keys), col(DeskNotice.told_at).is_(None))
                                   .values(told_at=now))
        log.info("unreached_summary_sent", notices=len(untold), desk=len(desk), regions=len(by_region))

    @staticmethod
    def _summary(rows: list[DeskNotice], day: str, *, region: str | None = None) -> Request:
        people = [r for r in rows if r.key.startswith("unreached:")]
        steps = [r for r in rows if not r.key.startswith("unreached:")]

        def write(reader: Recipient) -> str:
            say = partial(notices.say, locale=reader.locale)
            parts = []
            if people:
                parts.append(say("unreached.people.region", region=region, n=len(people)) if region
                             else say("unreached.people", n=len(people)))
            budget = TEXT_MAX - 400
            if people:
                parts.append(bullets([say("unreached.person", line=notices.reasons_in(r.line, reader.locale), n=r.count)
                                      for r in people],
                                     budget=budget // (2 if steps else 1)))
            if steps:
                parts.append(say("unreached.steps"))
                parts.append(bullets([say("unreached.step", line=r.line, n=r.count) for r in steps],
                                     budget=budget // (2 if people else 1)))
            return fit("\n".join(parts))

        return Request(kind=UNREACHED_SUMMARY, about=f"unreached:{region or 'all'}", occurrence=day, region=region,
                       text=write(ENGLISH_READER), writer=write, group=True)
