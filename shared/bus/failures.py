"""Whether a handler's failure is worth retrying: the one place the consumer runner asks."""

from __future__ import annotations

import sqlite3

import nats.errors
import nats.js.errors
import sqlalchemy.exc


class TransientError(Exception):
    """A handler failure worth retrying after a delay (database busy, peer down)."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(Exception):
    """A handler refuses this message for good: it is dead-lettered at once."""


# SQLite result codes (the low byte of an extended code): the database or a table is locked.
_SQLITE_BUSY_OR_LOCKED = {5, 6}
_SQLITE_LOCK_MESSAGES = ("database is locked", "database table is locked", "database is busy")
# PostgreSQL SQLSTATEs worth waiting out: connection lost or refused (class 08), serialization
# failure, deadlock, lock_not_available (lock_timeout), query_canceled (statement_timeout, most often
# spent waiting on a lock), server shutting down or starting, too many connections.
_PG_TRANSIENT_STATES = {"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "53300"}
_NATS_TRANSIENT = (
    nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError, nats.errors.ConnectionDrainingError, nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError, nats.errors.FlushTimeoutError, nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a handler's failure says "not now" rather than "never": worth retrying, with a
    delay, for as long as it lasts. The one place the consumer runner asks.

    Transient: `TransientError`; a database lock or busy timeout (SQLite "database is locked",
    SQLAlchemy's `OperationalError` around it, PostgreSQL lock timeout, serialization failure,
    deadlock, a connection lost or refused, the pool exhausted); NATS timeouts, no responders,
    a reconnecting connection; a builtin `TimeoutError` or `ConnectionError`. The wrapped
    exception (`.orig`, `raise ... from`) is looked at too. Anything else is not.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        if isinstance(current, PermanentError):
            return False
        if isinstance(current, BaseExceptionGroup):
            return all(is_transient(e) for e in current.exceptions)
        if _transient_itself(current):
            return True
        pending += [getattr(current, "orig", None), current.__cause__]
    return False


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, (TransientError, TimeoutError, ConnectionError, *_NATS_TRANSIENT)):
        return True
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no connection free in the pool
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _SQLITE_BUSY_OR_LOCKED:
            return True
        return any(m in str(exc).lower() for m in _SQLITE_LOCK_MESSAGES)
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)  # asyncpg, psycopg / psycopg2
    if isinstance(state, str):
        return state in _PG_TRANSIENT_STATES or state.startswith("08")
    return False


def short_error(exc: BaseException) -> str:
    """An exception in one line of at most 500 characters, for a log or a dead letter's reason."""
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")[:500]
