"""Schema migrations (Alembic): one history per service, each in its own package
(`services/<name>/migrations`) and with its own version table
(`alembic_version_<name>`), so services sharing a database server never mix them.

`cmcoord <service> migrate` upgrades a store; with `CMCOORD_<SERVICE>_MIGRATE_ON_START`
a service does it at start. A store created before migrations existed (tables made at
start) is adopted: stamped at the first revision, then upgraded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Table, inspect

from shared.store import Database

FIRST = "0001"


def version_table(service: str) -> str:
    return f"alembic_version_{service}"


def _config(package: str, service: str, connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", f"{package}:migrations")
    cfg.attributes.update(connection=connection, service=service)
    return cfg


def _filters(tables: Sequence[Table], unmapped: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Only this service's tables (the metadata holds every service's when they share a process),
    and not the columns the database keeps beside the models."""
    names = {t.name for t in tables}
    skip = set(unmapped)

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in names
        table = getattr(obj, "table", None)
        if table is not None and table.name not in names:
            return False
        if type_ == "index":  # an index on such a column belongs with it
            return not any((c.table.name, c.name) in skip for c in obj.columns)
        return not (type_ == "column" and table is not None and (table.name, name) in skip)

    return {"include_object": include_object}


def run_env(service: str, tables: Sequence[Table], *, unmapped: Iterable[tuple[str, str]] = ()) -> None:
    """The body of a service's migrations/env.py: migrate on the connection it was given."""
    from alembic import context

    connection: Connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=tables[0].metadata,
                      version_table=version_table(service), render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True, **_filters(tables, unmapped))
    with context.begin_transaction():
        context.run_migrations()


def _upgrade(connection: Connection, package: str, service: str, tables: Sequence[Table], revision: str) -> None:
    cfg = _config(package, service, connection)
    current = MigrationContext.configure(connection, opts={"version_table": version_table(service)})
    if current.get_current_revision() is None and inspect(connection).has_table(tables[-1].name):
        # tables made at start, without migrations: by this version (they match the models: the last
        # revision), or by an earlier one (the first revision, upgraded from there)
        matches = not compare_metadata(MigrationContext.configure(connection, opts={
            "compare_type": True, **_filters(tables, ())}), tables[0].metadata)
        command.stamp(cfg, "head" if matches else FIRST)
    command.upgrade(cfg, revision)


async def migrate(db: Database, *, package: str, service: str, tables: Sequence[Table], revision: str = "head") -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade, package, service, tables, revision)


async def current_revision(db: Database, service: str) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(
            c, opts={"version_table": version_table(service)}).get_current_revision())


async def drift(db: Database, tables: Sequence[Table], *, unmapped: Iterable[tuple[str, str]] = ()) -> list[Any]:
    """What differs between the store and the models (empty when the migrations made the models' tables)."""
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True, **_filters(tables, unmapped)})
        return list(compare_metadata(context, tables[0].metadata))

    async with db.engine.connect() as conn:
        return await conn.run_sync(compare)


def upgrade_store(db_url: str, *, package: str, service: str, tables: Sequence[Table], revision: str = "head") -> str:
    """`cmcoord <service> migrate`: upgrade the store, return the revision it is at."""
    import asyncio

    async def run() -> str:
        db = Database(db_url)
        try:
            await migrate(db, package=package, service=service, tables=tables, revision=revision)
            return await current_revision(db, service) or "none"
        finally:
            await db.dispose()

    return asyncio.run(run())
