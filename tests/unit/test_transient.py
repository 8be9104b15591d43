"""Which handler failures are transient (retried for as long as they last, never dead-lettered)."""

import sqlite3

import asyncpg.exceptions
import nats.errors
import pytest
import sqlalchemy.exc

from shared.bus import PermanentError, TransientError, is_transient


def wrapped(orig: BaseException) -> sqlalchemy.exc.DBAPIError:
    """As SQLAlchemy raises a driver's error: the driver's as `.orig` and as the cause."""
    error = sqlalchemy.exc.OperationalError("INSERT ...", {}, orig)  # type: ignore[arg-type]
    error.__cause__ = orig
    return error


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


def handler_error(cause: BaseException) -> Exception:
    try:
        raise RuntimeError("could not record the notification") from cause
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize("error", [
    TransientError("roster did not answer"),
    sqlite3.OperationalError("database is locked"),
    sqlite_error("database table is locked", 6),
    sqlite_error("busy", 517),  # SQLITE_BUSY_SNAPSHOT: the low byte says busy
    wrapped(sqlite3.OperationalError("database is locked")),
    wrapped(asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout")),
    wrapped(asyncpg.exceptions.SerializationError("could not serialize access")),
    wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock detected")),
    wrapped(asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout")),
    wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")),
    wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
    wrapped(asyncpg.exceptions.TooManyConnectionsError("too many clients")),
    sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
    nats.errors.TimeoutError(),
    nats.errors.NoRespondersError(),
    handler_error(sqlite3.OperationalError("database is locked")),  # raise ... from a lock
    ExceptionGroup("both", [TimeoutError(), sqlite3.OperationalError("database is locked")]),
], ids=lambda e: type(e).__name__ + ":" + str(e)[:30])
def test_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", [
    RuntimeError("bug in handler"),
    ValueError("bad"),
    KeyError("kind"),
    sqlite3.OperationalError("no such table: notification"),
    wrapped(sqlite3.OperationalError("no such column: x")),
    sqlalchemy.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
    wrapped(asyncpg.exceptions.UndefinedTableError("relation does not exist")),
    PermanentError("a notification request names people"),
    ExceptionGroup("one of each", [TimeoutError(), RuntimeError("bug")]),
], ids=lambda e: type(e).__name__ + ":" + str(e)[:30])
def test_not_transient(error: BaseException) -> None:
    assert not is_transient(error)
