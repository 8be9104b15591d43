"""Each service's Alembic history, on SQLite and PostgreSQL: from nothing to the models' tables,
a second run changes nothing, a store made before migrations is adopted, versions kept apart."""

import uuid
from pathlib import Path

import pytest
from sqlalchemy import Table, inspect, text
from sqlalchemy.exc import DBAPIError

from services.bot.models import BOT_TABLES
from services.hns4d.models import HNS4D_TABLES
from services.lessons import bootstrap as lessons_bootstrap
from services.lessons.config import Settings as LessonsSettings
from services.lessons.models import LESSONS_TABLES, UNMAPPED_COLUMNS
from services.notify.models import NOTIFY_TABLES
from services.roster.models import ROSTER_TABLES
from shared.migrations import current_revision, drift, migrate, version_table
from shared.natsserver import NatsServer, free_port
from shared.store import Database
from tests.helpers import cli, service_env

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
STORES: dict[str, tuple[tuple[Table, ...], tuple[tuple[str, str], ...]]] = {
    "roster": (ROSTER_TABLES, ()), "notify": (NOTIFY_TABLES, ()), "lessons": (LESSONS_TABLES, UNMAPPED_COLUMNS),
    "hns4d": (HNS4D_TABLES, ()), "bot": (BOT_TABLES, ())}
HEADS = {"roster": "0005", "notify": "0005", "lessons": "0002", "hns4d": "0002", "bot": "0003"}  # each history's last revision


async def url(backend: str, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    """A new database: a SQLite file, or one on the test's PostgreSQL cluster."""
    if backend == "postgresql":
        return await request.getfixturevalue("postgres").create_database(f"m_{name}_{uuid.uuid4().hex[:8]}")
    return f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}"


@pytest.mark.parametrize("service", list(STORES))
async def test_a_store_migrates_from_nothing_to_the_models(backend: str, request: pytest.FixtureRequest,
                                                           tmp_path: Path, service: str) -> None:
    tables, unmapped = STORES[service]
    db = Database(await url(backend, request, tmp_path, service))
    try:
        await migrate(db, package=f"services.{service}", service=service, tables=tables)
        assert await current_revision(db, service) == HEADS[service]
        assert await drift(db, tables, unmapped=unmapped) == []
        await migrate(db, package=f"services.{service}", service=service, tables=tables)  # again: nothing to do
        async with db.engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert version_table(service) in names and "alembic_version" not in names  # each service's own
        if service == "lessons":
            assert ("item_fts" in names) == db.is_sqlite  # the full-text index came with the migration
        if service == "hns4d":  # the audit log is append-only in the database itself
            async with db.write() as session:
                await session.exec(text("INSERT INTO hns4d_audit (at, who, action, detail) "  # type: ignore[call-overload]
                                        "VALUES ('2026-07-01 08:00:00', 'person:x', 'viewed', '')"))
            for change in ("UPDATE hns4d_audit SET who = 'someone else'", "DELETE FROM hns4d_audit"):
                with pytest.raises(DBAPIError, match="append-only"):
                    async with db.write() as session:
                        await session.exec(text(change))  # type: ignore[call-overload]
    finally:
        await db.dispose()


async def test_a_store_made_before_migrations_is_adopted(backend: str, request: pytest.FixtureRequest,
                                                         tmp_path: Path) -> None:
    db = Database(await url(backend, request, tmp_path, "old"))
    try:
        await db.create_tables(NOTIFY_TABLES)  # as a service does at start when not told to migrate
        await migrate(db, package="services.notify", service="notify", tables=NOTIFY_TABLES)
        assert await current_revision(db, "notify") == HEADS["notify"]  # the models' tables: the last revision
        assert await drift(db, NOTIFY_TABLES) == []
    finally:
        await db.dispose()


async def test_the_migrate_command(database_url: str, tmp_path: Path) -> None:
    env = service_env(tmp_path / "home", "nats://127.0.0.1:1")
    if database_url:
        env["CMCOORD_ROSTER_DATABASE_URL"] = database_url
    code, out, err = await cli("roster", "migrate", env=env)
    assert code == 0 and f"roster store at revision {HEADS['roster']}" in out, err


async def test_a_service_migrates_its_store_at_start_when_told(backend: str, request: pytest.FixtureRequest,
                                                               tmp_path: Path, nats_server: NatsServer) -> None:
    settings = LessonsSettings(home=tmp_path / "home", nats_url=nats_server.url, health_port=free_port(),
                               database_url=await url(backend, request, tmp_path, "lessons"), migrate_on_start=True)
    app = lessons_bootstrap.build(settings)
    await app.start()
    try:
        assert await current_revision(app.db, "lessons") == HEADS["lessons"]
        assert (await app.readiness())["store"]
    finally:
        await app.stop()
