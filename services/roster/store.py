"""The roster's reads and repository functions (the import's all-or-nothing swap among them);
what changes the roster's state and says so in events is services/roster/handlers.py.
Functions take a session or unit of work and keyword-only arguments; nothing here talks to NATS."""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import structlog
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    bindparam,
    func,
    insert,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import DropTable
from sqlalchemy.sql.expression import Executable
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.roster import rotation
from services.roster.importer import (
    Change,
    ImportPlan,
    PlannedDeployment,
    PlannedEvent,
    PlannedPerson,
    PlannedPost,
    Progress,
    RosterRow,
    RowError,
    Snapshot,
    StoredDeployment,
    StoredPerson,
    StoredPost,
    plan_import,
)
from services.roster.models import (
    CounterpartContact,
    Deployment,
    HandoverNote,
    Person,
    Post,
    RegistrationToken,
    RosterRevision,
    ScanClock,
    TelegramLink,
    TelegramLinkHold,
    Training,
)
from shared import events
from shared.clock import Clock
from shared.store import Database, OutboxMessage, UnitOfWork

SOURCE = "roster"  # the source of the roster's events


def open_store(url: str, *, clock: Clock) -> Database:
    """The roster store, as its service and its commands open it: its units of work write events as
    `SOURCE`, at `clock`'s time."""
    return Database(url, source=SOURCE, clock=clock)


log = structlog.get_logger("roster.store")


async def bump_revision(session: AsyncSession) -> None:
    row = await session.get(RosterRevision, 1)
    if row is None:
        session.add(RosterRevision(id=1, revision=1))
    else:
        # an SQL increment, not read-modify-write: concurrent writers never share a revision
        await session.exec(
            update(RosterRevision).where(col(RosterRevision.id) == 1).values(revision=col(RosterRevision.revision) + 1)
        )


async def revision_now(db: Database) -> int:
    """The roster revision with the least overhead (checked on every query)."""
    async with db.engine.connect() as conn:
        value = (await conn.exec_driver_sql("SELECT revision FROM roster_revision WHERE id = 1")).scalar()
    return int(value or 0)


# How an import of 50,000 rows stays all-or-nothing without holding the store's write
# lock for more than a moment (issue 16):
#
# 1. the file is read and validated before any connection is opened (importer.py);
# 2. `_read_snapshot`: one read transaction (no lock: SQLite's WAL and PostgreSQL's MVCC
#    never block writers for a reader) loads what the rows may touch, and a fingerprint
#    of the store: the roster revision (every write to people, posts or deployments
#    bumps it) and the rotation scan's clock (every accepted scan moves it);
# 3. `importer.plan_import` (pure) decides every row to write and every event;
# 4. `_stage`: the planned rows and outbox rows go, a few thousand per statement, into
#    TEMPORARY tables of this one connection. SQLite keeps those in a database of their
#    own, so staging takes no lock on the store; no other connection can see them on
#    either backend, and they vanish with the connection if the process dies. A small
#    plan (`DIRECT_WRITE_ROWS`) is not staged;
# 5. `_swap_in`: one short write transaction checks the fingerprint — if anything was
#    committed since step 2, nothing is written and the import starts again from 2
#    (three times at most) — then copies the staged rows into the tables and the
#    events into the outbox with INSERT … SELECT and UPDATE … FROM, inside the database
#    engine (a small plan's rows are inserted and updated as they are), and bumps the
#    revision. Readers see the roster before it or after it, never between; the relay
#    publishes the events once that transaction commits, as for any unit of work (the
#    outbox contract of shared/store.py, in batches).

STAGE_BATCH = 5000  # rows per executemany while staging (and per IN (...) while reading)
# A plan of at most this many rows and events (a file of a few people) is written straight into the
# tables in the swap's transaction, without staging tables: creating and dropping those took longer
# than writing it (a one-row change to a 1,000-person roster: ~150 ms, most of it spent on them).
DIRECT_WRITE_ROWS = 500
_IMPORT_ATTEMPTS = 3
_STAGE = MetaData()


def _staging_table(name: str, source: Table, *extra: Column[Any]) -> Table:
    columns = [Column(c.name, c.type, nullable=True) for c in source.columns]
    return Table(name, _STAGE, *columns, *extra, prefixes=["TEMPORARY"])


_PERSON: Table = Person.__table__  # type: ignore[attr-defined]
_POST: Table = Post.__table__  # type: ignore[attr-defined]
_DEPLOYMENT: Table = Deployment.__table__  # type: ignore[attr-defined]
_TRAINING: Table = Training.__table__  # type: ignore[attr-defined]
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
_SCAN_CLOCK: Table = ScanClock.__table__  # type: ignore[attr-defined]
_REVISION: Table = RosterRevision.__table__  # type: ignore[attr-defined]

_STAGED_PERSON = _staging_table("import_person", _PERSON, Column("is_new", Boolean))
_STAGED_POST = _staging_table("import_post", _POST, Column("is_new", Boolean))
# updated_at is NULL on a deployment whose rotation marks alone changed: it keeps its own
_STAGED_DEPLOYMENT = _staging_table("import_deployment", _DEPLOYMENT, Column("is_new", Boolean))
_STAGED_TRAINING = _staging_table("import_training", _TRAINING)  # id NULL: a new training
_STAGED_OUTBOX = Table("import_outbox", _STAGE, Column("n", Integer, primary_key=True),
                       *(Column(c.name, c.type) for c in _OUTBOX.columns if c.name in ("event_id", "subject", "payload",
                                                                                          "created_at")),
                       prefixes=["TEMPORARY"])
_STAGED = (_STAGED_PERSON, _STAGED_POST, _STAGED_DEPLOYMENT, _STAGED_TRAINING, _STAGED_OUTBOX)


class RosterChangedDuringImport(Exception):
    """The roster kept changing while the import was planned; nothing was written."""


@dataclass
class ImportOutcome:
    changes: list[Change]
    errors: list[RowError]
    written: bool = False
    events: int = 0
    attempts: int = 0
    lock_seconds: float = 0.0  # how long the write transaction that swapped the import in took
    counts: dict[str, int] = field(default_factory=dict)


async def import_rows(
    db: Database,
    *,
    rows: list[RosterRow] | Callable[[], list[RosterRow]],
    clock: Clock,
    policy: rotation.RotationPolicy,
    source: str,
    dry_run: bool = False,
    progress: Progress | None = None,
    list_changes: bool = True,
) -> ImportOutcome:
    """Plan the validated rows against the store and (unless `dry_run`) write them, all or
    nothing, as the comment above this section describes; rows that conflict with stored
    deployments come back as errors and nothing is written.

    `rows` may be a function that reads them: each attempt then takes a fresh list and
    lets go of its rows as they are planned (a large file's rows and its plan are not
    held together); a list is read as it is, and kept."""
    now = clock.now()
    async with db.engine.connect() as conn:
        cache: Any = None
        staged = False
        try:
            for attempt in range(1, _IMPORT_ATTEMPTS + 1):
                batch = rows() if callable(rows) else rows
                if progress is not None:
                    progress("checking", 0, len(batch))
                snapshot, fingerprint = await _read_snapshot(conn, rows=batch)
                plan = plan_import(batch, snapshot, today=now.date(), policy=policy, list_changes=list_changes,
                                   consume=callable(rows))
                del batch, snapshot
                if progress is not None:
                    progress("checking", 1, 1)
                outcome = ImportOutcome(plan.changes, plan.conflicts, attempts=attempt, counts=plan.counts)
                if plan.conflicts or dry_run:
                    return outcome
                outcome.events = len(plan.events)
                if _plan_size(plan) <= DIRECT_WRITE_ROWS:
                    statements = list(_direct_statements(plan, now=now, source=source))
                    statements += [(statement, None) for statement in _epoch_taken_back(plan)]
                else:
                    if not staged:
                        cache, staged = await _larger_page_cache(conn), True
                    await _stage(conn, plan, now=now, source=source, progress=progress)
                    statements = [(statement, None) for statement in _swap_statements(plan)]
                    plan.release()  # all of it is in the staging tables now
                try:
                    swapped = await _swap_in(conn, statements, fingerprint, progress=progress)
                except IntegrityError:
                    # a scanner announced the same fact (the same event id) meanwhile: plan again
                    swapped = None
                if swapped is not None:
                    outcome.written, outcome.lock_seconds = True, swapped
                    if plan.taken_back:
                        log.warning("rotation_announcements_taken_back_by_import", count=len(plan.taken_back))
                    return outcome
                log.info("roster_import_replanned", attempt=attempt)
                del plan, outcome
            raise RosterChangedDuringImport(
                f"the roster changed {_IMPORT_ATTEMPTS} times while the import was being prepared; nothing was "
                "written: run it again")
        finally:
            if staged:
                await _drop_staging(conn)
            elif conn.in_transaction():
                await conn.rollback()
            if cache is not None:
                async with conn.begin():
                    await conn.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")


# SQLite's page cache for the import's connection: the copy into five indexed tables at once
# thrashes the default 2 MB (the swap took 2.5 times as long); restored afterwards.
IMPORT_PAGE_CACHE_KIB = 8192


async def _larger_page_cache(conn: AsyncConnection) -> Any:
    if conn.dialect.name != "sqlite":
        return None
    async with conn.begin():
        before = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar()
        await conn.exec_driver_sql(f"PRAGMA cache_size=-{IMPORT_PAGE_CACHE_KIB}")
    return before


def _chunks(items: list[Any], size: int = STAGE_BATCH) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# Above this many people in a file, whole tables are read once rather than through
# thousands of IN (...) lists (each deployment would also come twice: by person and by post).
WHOLE_TABLE_READ = 5000


class _Raw:
    """On SQLite, UUID and date columns are read as the stored text and converted once per
    distinct value: the same ids come back as keys and as references, and 50,000
    deployments share a few thousand dates (SQLAlchemy would parse every cell)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.raw = conn.dialect.name == "sqlite"
        self._ids: dict[Any, uuid.UUID] = {}
        self._dates: dict[Any, date] = {}

    def column(self, column: Column[Any]) -> Any:
        return type_coerce(column, String) if self.raw else column

    def id(self, value: Any) -> Any:
        if not self.raw or value is None:
            return value
        found = self._ids.get(value)
        if found is None:
            found = self._ids[value] = uuid.UUID(hex=value)
        return found

    def date(self, value: Any) -> Any:
        if not self.raw or value is None:
            return value
        found = self._dates.get(value)
        if found is None:
            found = self._dates[value] = date.fromisoformat(value)
        return found


def _stored_posts(raw: _Raw) -> Any:
    """Posts as a StoredPost's fields (`_stored_post` makes one of a row): what an import plans
    against and what a rotation scan assesses."""
    t = _POST.c
    return core_select(raw.column(t.id), t.country, t.duty_station, t.region, t.title, raw.column(t.gapped_since),
                       t.gap_alerts_sent)


def _stored_post(raw: _Raw, found: Any) -> StoredPost:
    return StoredPost(raw.id(found[0]), *found[1:5], raw.date(found[5]), found[6])


async def _read_snapshot(conn: AsyncConnection, *, rows: list[RosterRow]) -> tuple[Snapshot, tuple[Any, ...]]:
    """What the rows may touch, read in one transaction, and the store's fingerprint."""
    snapshot = Snapshot()
    raw = _Raw(conn)
    async with conn.begin():
        fingerprint = await _fingerprint(conn, lock=False)
        scan = fingerprint[1]
        if scan is not None:
            snapshot.jump_from, snapshot.epoch = scan[1], scan[2]
        emails = {r.person.email for r in rows}
        whole = len(emails) > WHOLE_TABLE_READ

        async def read(query: Any, column: Any, keys: Iterable[Any]) -> AsyncIterator[Any]:
            if whole:
                for found in await conn.execute(query):
                    yield found
                return
            for chunk in _chunks(list(keys)):
                for found in await conn.execute(query.where(column.in_(chunk))):
                    yield found

        p = _PERSON.c
        async for found in read(core_select(raw.column(p.id), p.email, p.name, p.phone, p.telegram_username,
                                            p.organisation, p.languages, p.timezone, p.liaison), p.email, emails):
            if found.email in emails:
                snapshot.people[found.email] = StoredPerson(raw.id(found[0]), *found[1:-1])
                if found.liaison:
                    snapshot.liaisons.add(found.email)
        post_ids: dict[tuple[str, str, str], uuid.UUID] = {}
        t = _POST.c
        post_keys = {(r.deployment.country, r.deployment.duty_station, r.deployment.title) for r in rows
                     if r.deployment is not None}
        # the posts the file names (a small file does not read a large roster's every post)
        async for found in read(_stored_posts(raw), tuple_(t.country, t.duty_station, t.title), post_keys):
            post = _stored_post(raw, found)
            snapshot.posts[post.id] = post
            post_ids[(post.country, post.duty_station, post.title)] = post.id
        named = {post_ids[k] for k in post_keys if k in post_ids}
        person_ids = {p.id for p in snapshot.people.values()}
        d = _DEPLOYMENT.c
        query = core_select(raw.column(d.id), raw.column(d.person_id), raw.column(d.post_id), d.role,
                            raw.column(d.start), raw.column(d.planned_end), raw.column(d.actual_end), d.hats,
                            d.started_announced, raw.column(d.ending_soon_announced_for), d.ended_announced)
        for column, keys in ((d.person_id, person_ids), (d.post_id, named)):
            async for found in read(query, column, keys):
                dep = StoredDeployment(raw.id(found[0]), raw.id(found[1]), raw.id(found[2]), found[3],
                                       raw.date(found[4]), raw.date(found[5]), raw.date(found[6]), found[7], found[8],
                                       raw.date(found[9]), found[10])
                if dep.person_id in person_ids or dep.post_id in named:
                    snapshot.deployments[dep.id] = dep
            if whole:
                break  # one pass over the whole table found both kinds
        # ... and those the deployments read are on (the plan weighs each deployment's post)
        elsewhere = {dep.post_id for dep in snapshot.deployments.values()} - snapshot.posts.keys()
        if elsewhere:
            async for found in read(_stored_posts(raw), t.id, elsewhere):
                post = _stored_post(raw, found)
                snapshot.posts[post.id] = post
        tr = _TRAINING.c
        async for found in read(core_select(tr.id, raw.column(tr.person_id), tr.course, raw.column(tr.completed_on)),
                                tr.person_id, person_ids):
            person_id = raw.id(found[1])
            if person_id in person_ids:
                snapshot.trainings[(person_id, found[2])] = (found[0], raw.date(found[3]))
    return snapshot, fingerprint


async def _fingerprint(conn: AsyncConnection, *, lock: bool) -> tuple[Any, ...]:
    """(revision, scan clock) — on PostgreSQL, with `lock`, both rows stay locked until commit,
    so a scan or another import waits for this transaction instead of slipping in."""
    revision = core_select(_REVISION.c.revision).where(_REVISION.c.id == 1)
    c = _SCAN_CLOCK.c
    scan = core_select(c.last_scan_at, c.jump_from, c.epoch).where(c.id == 1)
    if lock:
        revision, scan = revision.with_for_update(), scan.with_for_update()
    found_scan = (await conn.execute(scan)).first()
    return (await conn.execute(revision)).scalar(), None if found_scan is None else tuple(found_scan)


async def _drop_staging(conn: AsyncConnection) -> None:
    """The staging tables gone from this connection (IF EXISTS: no catalogue query per table first)."""
    if conn.in_transaction():
        await conn.rollback()
    async with conn.begin():
        for table in reversed(_STAGE.sorted_tables):
            await conn.execute(DropTable(table, if_exists=True))


async def _stage(conn: AsyncConnection, plan: ImportPlan, *, now: datetime, source: str,
                 progress: Progress | None) -> None:
    """Write the plan into this connection's temporary tables."""
    total = _plan_size(plan)
    done = 0
    dialect = conn.dialect

    async def put(table: Table, values: Iterable[tuple[Any, ...]]) -> None:
        """Rows as tuples in the table's column order, sent a batch per executemany straight
        to the driver: the column types' own conversions are applied here, without building a
        statement per row (SQLAlchemy's per-row parameter handling took most of the time)."""
        names = [c.name for c in table.columns]
        compiled = insert(table).compile(dialect=dialect, column_keys=names)
        order = [names.index(name) for name in (compiled.positiontup or names)]
        processors = [_processor(table.columns[names[i]], dialect) for i in order]
        plain = all(p is None for p in processors) and order == list(range(len(names)))
        steps = list(zip(order, processors, strict=True))
        batch: list[tuple[Any, ...]] = []

        async def send() -> None:
            nonlocal done, batch
            await conn.exec_driver_sql(compiled.string, batch)  # type: ignore[arg-type]
            done += len(batch)
            batch = []
            if progress is not None:
                progress("writing", done, total)

        for value in values:
            batch.append(value if plain else tuple([value[i] if p is None else p(value[i]) for i, p in steps]))
            if len(batch) == STAGE_BATCH:
                await send()
        if batch:
            await send()

    await _drop_staging(conn)
    async with conn.begin():
        await conn.run_sync(lambda sync: _STAGE.create_all(sync, checkfirst=False))  # just dropped
    async with conn.begin():  # a deferred transaction on the temp tables only: the store is not locked
        for table, values in _planned_rows(plan, now=now, source=source):
            await put(table, values)


def _planned_rows(plan: ImportPlan, *, now: datetime,
                  source: str) -> Iterator[tuple[Table, Iterable[tuple[Any, ...]]]]:
    """The plan's rows, each a tuple in its staging table's column order (made as they are read)."""
    yield _STAGED_PERSON, (
        (p.id, p.email, p.name, p.phone, p.telegram_username, p.organisation, p.languages, p.timezone, now, now,
         None, False, p.new) for p in plan.people)  # locale: the bot's to set; liaison: not an import's
    yield _STAGED_POST, ((t.id, t.country, t.duty_station, t.region, t.title, t.gapped_since, t.gap_alerts_sent, t.new)
                         for t in plan.posts)
    yield _STAGED_DEPLOYMENT, (
        (d.id, d.person_id, d.post.id, d.role, d.start, d.planned_end, d.actual_end, d.hats, now,
         now if d.changed else None, d.started_announced, d.ending_soon_announced_for,
         d.ended_announced, d.new) for d in plan.deployments)
    yield _STAGED_TRAINING, (
        (None, person_id, course, completed) for (person_id, course), completed in plan.new_trainings.items())
    yield _STAGED_TRAINING, (
        (training_id, None, None, completed) for training_id, completed in plan.changed_trainings.items())
    envelopes = _Envelopes(source=source, occurred_at=now, epoch=plan.epoch)
    yield _STAGED_OUTBOX, ((n, *envelopes.row(event)) for n, event in enumerate(plan.events))


def _plan_size(plan: ImportPlan) -> int:
    return (len(plan.people) + len(plan.posts) + len(plan.deployments) + len(plan.new_trainings)
            + len(plan.changed_trainings) + len(plan.events))


def _processor(column: Column[Any], dialect: Any) -> Callable[[Any], Any] | None:
    """The column type's conversion to the driver's value; remembered per value for dates,
    times and flags (an import's rows share a few thousand dates and one timestamp)."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is None or isinstance(column.type, (Uuid, String)):
        return process
    return functools.lru_cache(maxsize=8192)(process)


async def _swap_in(conn: AsyncConnection, statements: list[tuple[Executable, list[dict[str, Any]] | None]],
                   fingerprint: tuple[Any, ...], progress: Progress | None) -> float | None:
    """Run the statements that write the plan (copies of the staged rows, or a small plan's own
    rows) in one write transaction; how long it held the write lock, or None (nothing written) if
    the store changed since `fingerprint` was read."""
    if progress is not None:
        progress("committing", 0, 1)
    await conn.execution_options(cmcoord_write=True)  # BEGIN IMMEDIATE on SQLite (shared/store.py)
    started = time.perf_counter()
    try:
        async with conn.begin():
            if await _fingerprint(conn, lock=True) != fingerprint:
                return None
            for statement, parameters in statements:
                await conn.execute(statement, parameters)
            await _bump_revision(conn)
    finally:
        await conn.execution_options(cmcoord_write=False)
    held = time.perf_counter() - started
    if progress is not None:
        progress("committing", 1, 1)
    return held


# What an import changes of a stored row (the rest is the row's own: its e-mail, when it was made, its
# locale); a deployment whose rotation marks alone changed keeps its updated_at (staged as NULL).
_UPDATED: dict[str, tuple[str, ...]] = {
    "person": ("name", "phone", "telegram_username", "organisation", "languages", "timezone", "updated_at"),
    "post": ("region", "gapped_since", "gap_alerts_sent"),
    "deployment": ("role", "planned_end", "actual_end", "hats", "started_announced", "ending_soon_announced_for",
                   "ended_announced", "updated_at"),
    "training": ("completed_on",),
}
_TARGETS: dict[Table, Table] = {_STAGED_PERSON: _PERSON, _STAGED_POST: _POST, _STAGED_DEPLOYMENT: _DEPLOYMENT,
                                _STAGED_TRAINING: _TRAINING, _STAGED_OUTBOX: _OUTBOX}


def _updated(target: Table, value: Callable[[str], Any]) -> dict[str, Any]:
    """The SET clause of an import's update of `target`, each column from `value(name)`."""
    return {name: func.coalesce(value(name), target.c.updated_at) if target is _DEPLOYMENT and name == "updated_at"
            else value(name) for name in _UPDATED[target.name]}


def _swap_statements(plan: ImportPlan) -> Iterator[Executable]:
    """INSERT … SELECT and UPDATE … FROM from the staged rows: parents before children."""
    for staged in (_STAGED_PERSON, _STAGED_POST, _STAGED_DEPLOYMENT):
        target, s = _TARGETS[staged], staged.c
        columns = [c.name for c in target.columns]
        yield insert(target).from_select(columns, core_select(*(s[n] for n in columns)).where(s.is_new).order_by(s.id))
        yield (update(target).where(target.c.id == s.id, s.is_new.is_(False))
               .values(_updated(target, lambda name, s=s: s[name])))
    st, so = _STAGED_TRAINING.c, _STAGED_OUTBOX.c
    yield insert(_TRAINING).from_select(["person_id", "course", "completed_on"],
                                        core_select(st.person_id, st.course, st.completed_on).where(st.id.is_(None)))
    yield update(_TRAINING).where(_TRAINING.c.id == st.id, st.id.is_not(None)).values(_updated(_TRAINING, st.get))
    yield insert(_OUTBOX).from_select(["event_id", "subject", "payload", "created_at"],
                                      core_select(so.event_id, so.subject, so.payload, so.created_at).order_by(so.n))
    yield from _epoch_taken_back(plan)


def _epoch_taken_back(plan: ImportPlan) -> Iterator[Executable]:
    if plan.taken_back:  # a confirmed clock jump proved wrong: a new epoch, as the scan does
        yield update(_SCAN_CLOCK).where(_SCAN_CLOCK.c.id == 1).values(epoch=plan.epoch, jump_from=None)


@functools.cache
def _direct_update(target: Table) -> Executable:
    """UPDATE of one stored row of `target` by its id, from parameters named after the columns with `u_`."""
    return update(target).where(target.c.id == bindparam("u_id", type_=target.c.id.type)).values(
        _updated(target, lambda name: bindparam(f"u_{name}", type_=target.c[name].type)))


def _direct_statements(plan: ImportPlan, *, now: datetime,
                       source: str) -> Iterator[tuple[Executable, list[dict[str, Any]]]]:
    """The plan's rows as INSERTs and UPDATEs with their parameters, parents before children: a
    small plan is written so inside the swap's transaction, without staging tables."""
    for staged, values in _planned_rows(plan, now=now, source=source):
        target = _TARGETS[staged]
        names = [c.name for c in staged.columns]
        rows = [dict(zip(names, value, strict=True)) for value in values]
        if staged is _STAGED_OUTBOX:
            if rows:
                yield insert(target), [{k: v for k, v in row.items() if k != "n"} for row in rows]
            continue
        # a training staged without an id is a new one; the others say whether they are
        is_new: Callable[[dict[str, Any]], bool] = ((lambda row: row["id"] is None) if staged is _STAGED_TRAINING
                                                     else (lambda row: bool(row["is_new"])))
        dropped = {"id", "is_new"} if staged is _STAGED_TRAINING else {"is_new"}
        new = [{k: v for k, v in row.items() if k not in dropped} for row in rows if is_new(row)]
        if new:
            yield insert(target), new
        stored = [{"u_id": row["id"], **{f"u_{n}": row[n] for n in _UPDATED[target.name]}}
                  for row in rows if not is_new(row)]
        if stored:
            yield _direct_update(target), stored


async def _bump_revision(conn: AsyncConnection) -> None:
    bumped = await conn.execute(update(_REVISION).where(_REVISION.c.id == 1)
                                .values(revision=_REVISION.c.revision + 1))
    if not bumped.rowcount:
        await conn.execute(insert(_REVISION).values(id=1, revision=1))


class _Envelopes:
    """Outbox rows for planned events, built without a pydantic model per event.

    Byte for byte what `Envelope.wrap(event, ...).to_bytes()` gives (compact JSON in the
    field order of the models): 100,000 events go in about a second instead of eight.
    The first event of each type in every import is also built the ordinary way and
    compared, and its payload decoded against the contract, so a change to an event's
    fields fails the import loudly instead of publishing something else."""

    def __init__(self, *, source: str, occurred_at: datetime, epoch: int) -> None:
        self.source, self.occurred_at, self.epoch = source, occurred_at, epoch
        sample = events.Envelope.wrap(events.PersonChanged(person_id=uuid.UUID(int=0), created=True), source=source,
                                      occurred_at=occurred_at).model_dump(mode="json")
        self._occurred, self._source = _json(sample["occurred_at"]), _json(source)
        self._checked: set[str] = set()

    def row(self, planned: PlannedEvent) -> tuple[uuid.UUID, str, bytes, datetime]:
        event_id: uuid.UUID
        if isinstance(planned, PlannedPerson):
            cls: type[events.Event] = events.PersonChanged
            event_id = uuid.uuid4()
            data = f'"person_id":"{planned.id}","created":{"true" if planned.new else "false"}'
        elif isinstance(planned, PlannedDeployment):
            cls, event_id = events.DeploymentAssigned, events.deterministic_id("deployment.assigned", planned.id)
            data = _facts(planned, planned.post)
        else:
            decision, post = planned
            cls, data = _decision_event(decision, post)
            event_id = rotation.announcement_id(decision, self.epoch)
        text_id = str(event_id)
        payload = (f'{{"id":"{text_id}","type":"{cls.type}","version":{cls.version},"occurred_at":{self._occurred},'
                   f'"source":{self._source},"correlation_id":"{text_id}","data":{{{data}}}}}').encode()
        if cls.type not in self._checked:
            self._check(cls, data, event_id, payload)
        return event_id, f"{events.SUBJECT_ROOT}.{cls.type}.v{cls.version}", payload, self.occurred_at

    def _check(self, cls: type[events.Event], data: str, event_id: uuid.UUID, payload: bytes) -> None:
        decoded = events.Envelope.from_bytes(payload)
        expected = events.Envelope.wrap(decoded.decode(), source=self.source, occurred_at=self.occurred_at,
                                        id=event_id).to_bytes()
        if expected != payload:
            raise AssertionError(f"the import's {cls.type} payload differs from the event contract:\n"
                                 f"{payload!r}\n{expected!r}")
        self._checked.add(cls.type)


@functools.lru_cache(maxsize=4096)
def _json(text: str) -> str:
    """A JSON string as pydantic writes it (UTF-8 kept, not escaped)."""
    return json.dumps(text, ensure_ascii=False)


def _id(value: uuid.UUID | None) -> str:
    return "null" if value is None else f'"{value}"'


def _facts(dep: PlannedDeployment, post: PlannedPost) -> str:
    """The facts every deployment event carries, as JSON members in the contract's order (_DeploymentFacts)."""
    return (f'"deployment_id":"{dep.id}","person_id":"{dep.person_id}","post_id":"{post.id}",'
            f'"country":{_json(post.country)},"region":{_json(post.region)},"role":{_json(dep.role)},'
            f'"start":"{dep.start}","planned_end":"{dep.planned_end}"')


def _decision_event(decision: rotation.Decision, post: PlannedPost) -> tuple[type[events.Event], str]:
    """The event a rotation decision announces (as `_record` does for the scan), as JSON members."""
    match decision:
        case rotation.Started(deployment=view):
            return events.DeploymentStarted, _facts(_on(post, view.id), post)
        case rotation.EndingSoon(deployment=view, days_left=days_left, successor_person_id=successor):
            return events.DeploymentEndingSoon, (f'{_facts(_on(post, view.id), post)},"days_left":{int(days_left)},'
                                                 f'"successor_person_id":{_id(successor)}')
        case rotation.Ended(deployment=view):
            dep = _on(post, view.id)
            return events.DeploymentEnded, f'{_facts(dep, post)},"ended_on":"{dep.end}"'
        case rotation.Gapped(gapped_since=since, alert_number=n, last_deployment_id=last):
            return events.PostGapped, (f'"post_id":"{post.id}","country":{_json(post.country)},'
                                       f'"region":{_json(post.region)},"title":{_json(post.title)},'
                                       f'"duty_station":{_json(post.duty_station)},"gapped_since":"{since}",'
                                       f'"alert_number":{int(n)},"last_deployment_id":{_id(last)}')
        case rotation.Filled(gapped_since=since, deployment=view):
            return events.PostFilled, (f'"post_id":"{post.id}","country":{_json(post.country)},'
                                       f'"region":{_json(post.region)},"deployment_id":"{view.id}",'
                                       f'"person_id":"{view.person_id}","filled_on":"{max(view.start, since)}",'
                                       f'"gapped_since":"{since}"')
    raise AssertionError(f"unhandled decision {decision!r}")


def _on(post: PlannedPost, deployment_id: uuid.UUID) -> PlannedDeployment:
    return next(dep for dep in post.deployments if dep.id == deployment_id)


def deployment_facts(dep: rotation.DeploymentView, post: StoredPost, *, role: str) -> dict[str, object]:
    """What a deployment event says of a deployment and its post."""
    return {"deployment_id": dep.id, "person_id": dep.person_id, "post_id": post.id, "country": post.country,
            "region": post.region, "role": role, "start": dep.start, "planned_end": dep.planned_end}


# The rotation columns a scan writes back, for the rows whose values changed.
_MARK_DEPLOYMENT = (update(_DEPLOYMENT).where(_DEPLOYMENT.c.id == bindparam("row_id"))
                    .values(started_announced=bindparam("started_announced"),
                            ending_soon_announced_for=bindparam("ending_soon_announced_for"),
                            ended_announced=bindparam("ended_announced")))
_MARK_POST = (update(_POST).where(_POST.c.id == bindparam("row_id"))
              .values(gapped_since=bindparam("gapped_since"), gap_alerts_sent=bindparam("gap_alerts_sent")))


class ScanDeployment(NamedTuple):
    """A deployment as the rotation scan reads it: what the rules look at, and the role its events name."""

    view: rotation.DeploymentView
    role: str


async def rotation_rows(session: AsyncSession) -> list[tuple[StoredPost, list[ScanDeployment]]]:
    """Every post with its deployments, read in the session's transaction as plain rows, not ORM
    objects (fifty thousand of those took seconds to make). On SQLite the ids and dates are read as
    the stored text and converted once per distinct value (`_Raw`): a deployment's post id is its
    post's, and fifty thousand deployments share a few thousand dates. The deployments are read
    straight into the rules' view (not as StoredDeployments: their hats and a second object each
    cost the scan about a tenth of its time here)."""
    conn = await session.connection()
    raw = _Raw(conn)
    ident, day = raw.id, raw.date
    d = _DEPLOYMENT.c
    deployments = core_select(raw.column(d.id), raw.column(d.person_id), raw.column(d.post_id), raw.column(d.start),
                              raw.column(d.planned_end), raw.column(d.actual_end), d.started_announced,
                              raw.column(d.ending_soon_announced_for), d.ended_announced, d.role)
    by_post: dict[uuid.UUID, list[ScanDeployment]] = {}
    for dep_id, person_id, post_id, start, planned_end, actual_end, started, soon_for, ended, role in (
            await conn.execute(deployments)):
        view = rotation.DeploymentView(
            id=ident(dep_id), person_id=ident(person_id), post_id=ident(post_id), start=day(start),
            planned_end=day(planned_end), actual_end=day(actual_end), started_announced=started,
            ending_soon_announced_for=day(soon_for), ended_announced=ended)
        by_post.setdefault(view.post_id, []).append(ScanDeployment(view, role))
    return [(post, by_post.get(post.id, [])) for post in
            (_stored_post(raw, found) for found in await conn.execute(_stored_posts(raw)))]


async def mark_rotation(session: AsyncSession, *, deployments: dict[uuid.UUID, dict[str, object]],
                        posts: dict[uuid.UUID, dict[str, object]]) -> None:
    """Write the rotation columns given for each deployment (started_announced, ending_soon_announced_for,
    ended_announced) and post (gapped_since, gap_alerts_sent): one UPDATE per table, executed for every row."""
    conn = await session.connection()
    for statement, rows in ((_MARK_DEPLOYMENT, deployments), (_MARK_POST, posts)):
        if rows:
            await conn.execute(statement, [{"row_id": row_id, **columns} for row_id, columns in rows.items()])


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for a bulk step that makes hundreds of thousands of
    objects and no reference cycles (an import, a rotation scan): its passes over them, and over
    everything else the process holds, took a third of the import's time and half the scan's. The
    pause is the whole process's: in the roster service, what runs beside a scan runs without the
    collector for those seconds too (reference counting still frees everything but cycles)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def scan_clock(session: AsyncSession) -> ScanClock:
    """The scan clock's row, locked until the transaction ends (PostgreSQL; SQLite writes are serial anyway)."""
    row = (await session.exec(select(ScanClock).where(ScanClock.id == 1).with_for_update())).first()
    if row is None:
        row = ScanClock(id=1)
        session.add(row)
    elif row.last_scan_at is not None:
        row.last_scan_at = as_utc(row.last_scan_at)
    return row


async def load_deployments(uow: UnitOfWork, *, ids: list[uuid.UUID]) -> list[Deployment]:
    """Bring these deployments into the session in one query (batch prefetch)."""
    return list((await uow.session.exec(select(Deployment).where(col(Deployment.id).in_(ids)))).all())


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def person_by_email(session: AsyncSession, email: str) -> Person:
    person = (await session.exec(select(Person).where(Person.email == email.strip().lower()))).first()
    if person is None:
        raise LookupError(f"nobody on the roster has the email {email!r}")
    return person


async def person_and_link(session: AsyncSession, *, email: str) -> tuple[Person, TelegramLink | None]:
    """The person with this email (LookupError: nobody) and their Telegram link, if registered."""
    person = await person_by_email(session, email)
    return person, await session.get(TelegramLink, person.id)


async def revoke_invites(session: AsyncSession, *, person_id: uuid.UUID, now: datetime) -> int:
    """The person's unused invitations stop working; how many there were."""
    rows = (await session.exec(select(RegistrationToken).where(
        RegistrationToken.person_id == person_id, col(RegistrationToken.used_at).is_(None),
        col(RegistrationToken.revoked_at).is_(None)))).all()
    for row in rows:
        row.revoked_at = now
        session.add(row)
    return len(rows)


def as_utc(value: datetime) -> datetime:
    # SQLite (and PostgreSQL's timestamp without time zone) hand datetimes back naive; they are UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def same_username(a: str, b: str) -> bool:
    """Telegram usernames compare without the @ and case-insensitively."""
    return a.strip().lstrip("@").casefold() == b.strip().lstrip("@").casefold()


async def person_by_telegram(session: AsyncSession, *, telegram_user_id: int) -> Person | None:
    link = (await session.exec(select(TelegramLink).where(TelegramLink.telegram_user_id == telegram_user_id))).first()
    return None if link is None else await session.get(Person, link.person_id)


async def handover_note(session: AsyncSession, *, deployment_id: uuid.UUID) -> HandoverNote | None:
    return (await session.exec(select(HandoverNote).where(HandoverNote.deployment_id == deployment_id))).first()


@dataclass(frozen=True)
class RecipientRow:
    person: Person
    regions: tuple[str, ...]
    telegram_user_id: int | None


async def people_by_email(session: AsyncSession, emails: list[str]) -> list[uuid.UUID]:
    wanted = [e.strip().lower() for e in emails]
    return list((await session.exec(select(Person.id).where(col(Person.email).in_(wanted)))).all())


async def deployed_in(session: AsyncSession, *, region: str, day: date) -> list[uuid.UUID]:
    """Everyone with a deployment in the region that day (a regional call's participants)."""
    rows = await session.exec(
        select(Deployment.person_id).join(Post)
        .where(Post.region == region, Deployment.on(day)))
    return list(dict.fromkeys(rows.all()))


async def recipients_by_id(session: AsyncSession, person_ids: list[uuid.UUID], *, day: date) -> list[RecipientRow]:
    """People by id with the regions they are deployed in on `day`, read straight from the
    tables (three small queries): telling a few people never waits for a directory rebuild."""
    people = {p.id: p for p in (await session.exec(select(Person).where(col(Person.id).in_(person_ids)))).all()}
    regions: dict[uuid.UUID, set[str]] = {}
    active = await session.exec(
        select(Deployment.person_id, Post.region).join(Post)
        .where(col(Deployment.person_id).in_(person_ids), Deployment.on(day)))
    for person_id, region in active.all():
        regions.setdefault(person_id, set()).add(region)
    links = await telegram_links(session, list(people))
    return [RecipientRow(person=people[pid], regions=tuple(sorted(regions.get(pid, ()))),
                         telegram_user_id=links.get(pid)) for pid in person_ids if pid in people]


async def linked_members(session: AsyncSession, *, day: date, grace: timedelta) -> list[uuid.UUID]:
    """Everyone with a linked Telegram account who is a member on `day` (messages to everyone)."""
    rows = await session.exec(
        select(TelegramLink.person_id).join(Deployment, col(Deployment.person_id) == col(TelegramLink.person_id))
        .join(Person, col(Person.id) == col(TelegramLink.person_id))
        .where(Deployment.keeps_member(day, grace), col(Person.liaison).is_(False)).distinct())
    return list(rows.all())


async def members_among(session: AsyncSession, person_ids: list[uuid.UUID], *, day: date,
                        grace: timedelta) -> set[uuid.UUID]:
    """Those of the people who are members of the community on `day`: a deployment not ended,
    or ended at most `grace` before (models.Deployment.keeps_member); a party's liaison never is."""
    if not person_ids:
        return set()
    rows = await session.exec(select(Deployment.person_id).join(Person, col(Person.id) == col(Deployment.person_id))
                              .where(col(Deployment.person_id).in_(person_ids), Deployment.keeps_member(day, grace),
                                     col(Person.liaison).is_(False)).distinct())
    return set(rows.all())


async def is_member(session: AsyncSession, person_id: uuid.UUID, *, day: date, grace: timedelta) -> bool:
    return bool(await members_among(session, [person_id], day=day, grace=grace))


async def telegram_links(session: AsyncSession, person_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not person_ids:
        return {}
    rows = await session.exec(select(TelegramLink).where(col(TelegramLink.person_id).in_(person_ids)))
    return {link.person_id: link.telegram_user_id for link in rows.all()}


async def counterparts_in(session: AsyncSession, *, country: str) -> list[CounterpartContact]:
    result = await session.exec(
        select(CounterpartContact).where(CounterpartContact.country == country).order_by(col(CounterpartContact.unit))
    )
    return list(result.all())


@dataclass(frozen=True)
class Unlinked:
    """A member of the community with no Telegram link: the deployment that makes them one (the
    one running on the day, else the latest), their newest invitation still valid (its expiry),
    and whether a link opened from another account waits for the desk (`confirm-link`)."""

    person: Person
    deployment: Deployment
    post: Post
    invited_until: datetime | None
    held: bool


async def unlinked_members(session: AsyncSession, *, day: date, now: datetime, grace: timedelta,
                           region: str | None = None) -> list[Unlinked]:
    """Everyone with a deployment that keeps them a member on `day` (running, assigned to start, or
    ended within `grace`) and no linked Telegram account; only deployments in `region` when given.
    By region, then name."""
    stmt = (select(Person, Deployment, Post)
            .join(Deployment, col(Deployment.person_id) == col(Person.id))
            .join(Post, col(Post.id) == col(Deployment.post_id))
            .where(Deployment.keeps_member(day, grace), col(Person.id).not_in(select(TelegramLink.person_id))))
    if region is not None:
        stmt = stmt.where(Post.region == region)

    def rank(d: Deployment) -> tuple[bool, date]:
        return (d.start <= day <= d.end, d.start)

    best: dict[uuid.UUID, tuple[Person, Deployment, Post]] = {}
    for person, dep, post in (await session.exec(stmt)).all():
        kept = best.get(person.id)
        if kept is None or rank(dep) > rank(kept[1]):
            best[person.id] = (person, dep, post)
    ids = list(best)
    invited: dict[uuid.UUID, datetime] = {}
    holds: set[uuid.UUID] = set()
    if ids:
        tokens = await session.exec(select(RegistrationToken).where(
            col(RegistrationToken.person_id).in_(ids), col(RegistrationToken.used_at).is_(None),
            col(RegistrationToken.revoked_at).is_(None)))
        for token in tokens.all():
            expires = as_utc(token.expires_at)
            if expires > now and (token.person_id not in invited or expires > invited[token.person_id]):
                invited[token.person_id] = expires
        holds = set((await session.exec(select(TelegramLinkHold.person_id).where(
            col(TelegramLinkHold.person_id).in_(ids)))).all())
    found = [Unlinked(person=p, deployment=d, post=post, invited_until=invited.get(p.id), held=p.id in holds)
             for p, d, post in best.values()]
    found.sort(key=lambda u: (u.post.region, u.person.name.casefold(), u.person.email))
    return found
