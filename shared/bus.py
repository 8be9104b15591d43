"""The event bus over NATS JetStream, and request/reply over core NATS.

- `connect` reconnects forever (nats-py's defaults give up after ~2 minutes);
- `ensure_streams` creates or updates each owner's file-backed stream with an
  explicit duplicate window (run by `cmcoord nats-init`, shared/topology.py);
- `Bus.publish` sends an envelope with `Nats-Msg-Id` = event id, so JetStream
  drops a re-publish of the same event inside the window;
- `ConsumerRunner` is a durable pull consumer with explicit acks. A transient
  failure (`is_transient`: a database locked or away, NATS timing out) is
  retried with a capped backoff for as long as it lasts and never dead-lettered;
  a message that fails validation, has no handler, or fails with an unknown
  error `max_deliver` times is copied to the dead-letter stream with the reason
  and terminated, and the runner keeps consuming. `cmcoord deadletter replay`
  gives a dead letter back to its consumer on the consumer's own replay subject.
  The runner binds to a durable `cmcoord nats-init` declared (it creates none), and
  dead-letters an event whose source does not own its subject. It re-binds its
  pull subscription after every reconnect, and whenever
  fetches stop answering, so it resumes after a nats-server restart of any
  length (see nats.py issue #504).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import nats
import nats.errors
import nats.js.api
import nats.js.errors
import sqlalchemy.exc
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)
from pydantic import BaseModel, ValidationError

from shared.events import SUBJECT_ROOT, Envelope, Event

log = structlog.get_logger("bus")

DEAD_LETTER_PREFIX = f"{SUBJECT_ROOT}.deadletter"


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


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    duplicate_window: timedelta = timedelta(minutes=2)
    max_age: timedelta = timedelta(days=30)
    replicas: int = 1


def owner_stream(owner: str, *, replicas: int = 1) -> StreamSpec:
    # Events have five tokens: cmcoord.<owner>.<entity>.<event>.v<N>. Queries use
    # four (cmcoord.<owner>.svc.<verb>) and so are never captured by a stream.
    return StreamSpec(name=owner.upper(), subjects=(f"{SUBJECT_ROOT}.{owner}.*.*.*",), replicas=replicas)


def dead_letter_stream(*, replicas: int = 1) -> StreamSpec:
    return StreamSpec(
        name="DEADLETTER", subjects=(f"{DEAD_LETTER_PREFIX}.>",), max_age=timedelta(days=90), replicas=replicas
    )


OWNERS = ("roster", "notify", "lessons", "bot")


def all_streams(*, replicas: int = 1) -> list[StreamSpec]:
    return [owner_stream(o, replicas=replicas) for o in OWNERS] + [dead_letter_stream(replicas=replicas)]


def inbox_prefix(identity: str) -> str:
    """Where replies to `identity`'s requests come: `_INBOX.<identity>.…`."""
    return f"_INBOX.{identity}"


async def connect(
    url: str,
    *,
    name: str,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
    connect_timeout: float = 2.0,
    auth: dict[str, Any] | None = None,
) -> NATS:
    async def error_cb(exc: Exception) -> None:
        log.warning("nats_error", error=str(exc) or type(exc).__name__)

    async def disconnected_cb() -> None:
        log.warning("nats_disconnected")
        if on_disconnect is not None:
            await on_disconnect()

    async def reconnected_cb() -> None:
        log.info("nats_reconnected")
        if on_reconnect is not None:
            await on_reconnect()

    user = (auth or {}).get("user")
    return await nats.connect(
        servers=[u.strip() for u in url.split(",")],
        name=name,
        # Replies to this identity's requests (queries, JetStream acks, pulled messages) come to
        # its own inboxes, which only it may subscribe to (shared/permissions.py).
        inbox_prefix=inbox_prefix(user) if user else "_INBOX",
        allow_reconnect=True,
        max_reconnect_attempts=-1,  # forever: an outage of any length is survived
        reconnect_time_wait=1,
        connect_timeout=connect_timeout,
        ping_interval=10,
        max_outstanding_pings=3,
        # A publish during an outage waits in the client up to this many bytes;
        # the outbox remains the real buffer, so keep it modest.
        pending_size=8 * 1024 * 1024,
        error_cb=error_cb,
        disconnected_cb=disconnected_cb,
        reconnected_cb=reconnected_cb,
        **(auth or {}),  # user and password, TLS
    )


# JetStream's answer when a stream's replicas cannot be placed (yet): too few peers known.
JS_NO_SUITABLE_PEERS = 10005


def raise_if_placement_pending(exc: nats.js.errors.BadRequestError) -> None:
    """A cluster still forming has not met all its peers: that refusal means "not ready yet"
    (ServiceUnavailableError, waited for like a JetStream without a leader), not a conflict."""
    if exc.err_code == JS_NO_SUITABLE_PEERS:
        raise nats.js.errors.ServiceUnavailableError(code=503, err_code=exc.err_code,
                                                     description=exc.description) from exc


async def ensure_streams(js: JetStreamContext, specs: Sequence[StreamSpec]) -> None:
    for spec in specs:
        config = StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            storage=StorageType.FILE,
            duplicate_window=spec.duplicate_window.total_seconds(),
            max_age=spec.max_age.total_seconds(),
            num_replicas=spec.replicas,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            raise_if_placement_pending(exc)
            # It exists with another configuration: bring it to this one.
            await js.update_stream(config)


class Bus:
    """One service's NATS connection with JetStream publishing and queries."""

    def __init__(self, nc: NATS, *, source: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.source = source
        self._reconnect_listeners: list[Callable[[], None]] = []
        self._connected = asyncio.Event()
        if nc.is_connected:
            self._connected.set()

    @classmethod
    async def open(cls, url: str, *, source: str, instance: str = "", patience: float | None = None,
                   auth: dict[str, Any] | None = None) -> Bus:
        """Connect, waiting for the server if it is not up yet (forever by default)."""
        holder: dict[str, Bus] = {}

        async def on_reconnect() -> None:
            if "bus" in holder:
                holder["bus"]._connected.set()
                holder["bus"]._fire_reconnect()

        async def on_disconnect() -> None:
            if "bus" in holder:
                holder["bus"]._connected.clear()

        deadline = None if patience is None else time.monotonic() + patience
        delay = 0.2
        # nats-py's first connect with unlimited reconnects never returns while
        # no server answers, so wait for one to listen before connecting.
        while not await _any_listening(url):
            if deadline is not None and time.monotonic() > deadline:
                raise ConnectionError(f"no NATS server reachable at {url}")
            log.warning("nats_unavailable_waiting", url=_without_credentials(url))
            await asyncio.sleep(delay)  # back-off between probes, not synchronisation
            delay = min(delay * 2, 5.0)
        name = f"{source}:{instance}" if instance else source
        connecting = connect(url, name=name, on_reconnect=on_reconnect, on_disconnect=on_disconnect, auth=auth)
        if deadline is None:
            nc = await connecting
        else:
            nc = await asyncio.wait_for(connecting, timeout=max(deadline - time.monotonic(), 0) + 5)
        bus = cls(nc, source=source)
        holder["bus"] = bus
        return bus

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect_listeners.append(callback)

    def _fire_reconnect(self) -> None:
        for callback in self._reconnect_listeners:
            callback()

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until connected. While disconnected, nats-py buffers every
        publish (pull requests included) and replays them on reconnect, where
        a stale pull request would swallow a message until its ack_wait; so
        consumers and the relay wait here instead of talking to a dead socket."""
        if self.nc.is_connected:
            return True
        if self.nc.is_closed:
            return False
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return self.nc.is_connected

    async def publish(self, envelope: Envelope, *, timeout: float = 5.0) -> int:
        """Publish to JetStream; returns the stream sequence. Re-publishing the
        same envelope id inside the duplicate window is a no-op."""
        return await self.publish_raw(envelope.subject, envelope.to_bytes(), msg_id=str(envelope.id), timeout=timeout)

    async def publish_raw(
        self, subject: str, payload: bytes, *, msg_id: str, headers: dict[str, str] | None = None, timeout: float = 5.0
    ) -> int:
        ack = await self.js.publish(subject, payload, timeout=timeout, headers={**(headers or {}), "Nats-Msg-Id": msg_id})
        return ack.seq

    async def publish_many(self, messages: Sequence[tuple[str, bytes, str]], *, timeout: float = 10.0) -> list[bool]:
        """Publish (subject, payload, msg_id) triples pipelined, in order; which were acknowledged."""
        if not self.nc.is_connected:
            return [False] * len(messages)
        futures = []
        for n, (subject, payload, msg_id) in enumerate(messages, start=1):
            futures.append(await self.js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id}))
            if n % 50 == 0:
                await asyncio.sleep(0)  # a backlog of thousands goes out without holding the queries
        try:
            results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout)
        except TimeoutError:
            return [f.done() and not f.cancelled() and f.exception() is None for f in futures]
        return [not isinstance(r, BaseException) for r in results]

    async def request(self, subject: str, payload: BaseModel | dict[str, Any], *, timeout: float = 5.0) -> Any:
        """A query to another service; raises QueryError on an error reply."""
        body = payload.model_dump_json().encode() if isinstance(payload, BaseModel) else json.dumps(payload).encode()
        reply = await self.nc.request(subject, body, timeout=timeout)
        return decode_reply(reply)

    async def close(self) -> None:
        """Drain (finish what was sent); with NATS away, just close: shutdown never fails on it."""
        if self.nc.is_closed:
            return
        try:
            await asyncio.wait_for(self.nc.drain(), timeout=5)
        except Exception as exc:  # connection lost or server away during shutdown
            log.warning("nats_drain_skipped", error=str(exc) or type(exc).__name__)
            await _quietly(self.nc.close())


async def _any_listening(url: str) -> bool:
    for server in url.split(","):
        parsed = urlparse(server.strip() if "://" in server else f"nats://{server.strip()}")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=2
            )
        except (OSError, TimeoutError):
            continue
        writer.close()
        return True
    return False


def _without_credentials(url: str) -> str:
    return ",".join(urlparse(u.strip())._replace(netloc=urlparse(u.strip()).hostname or "").geturl() for u in url.split(","))


class QueryFailure(Exception):
    """Raised by a query handler to answer with a specific error code."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class QueryError(Exception):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


def decode_reply(reply: Msg) -> Any:
    headers = reply.headers or {}
    if "Nats-Service-Error-Code" in headers:
        raise QueryError(headers["Nats-Service-Error-Code"], headers.get("Nats-Service-Error", ""))
    return json.loads(reply.data) if reply.data else None


QueryHandler = Callable[[dict[str, Any]], Awaitable[Any]]


def json_endpoint(handler: QueryHandler, *, name: str, at_once: int = 16) -> Callable[[Any], Awaitable[None]]:
    """Wrap `handler(payload) -> result` as a nats.micro endpoint speaking JSON.

    QueryFailure -> its code, LookupError -> 404, PermissionError -> 403,
    ValueError/ValidationError -> 400; anything else -> 500 and logged.

    nats-py hands a subscription's messages to its callback one at a time, so
    each request is answered in a task of its own, up to `at_once` side by side
    (more wait for a slot): a slow question does not hold up the others, and
    database work overlaps.
    """
    slots = asyncio.Semaphore(at_once)
    answering: set[asyncio.Task[None]] = set()

    async def endpoint(request: Any) -> None:
        await slots.acquire()
        task = asyncio.create_task(answer(request), name=f"query:{name}")
        answering.add(task)

        def done(t: asyncio.Task[None]) -> None:
            answering.discard(t)
            slots.release()
            if not t.cancelled() and t.exception() is not None:  # the reply could not be sent
                log.warning("query_not_answered", query=name, error=_short(t.exception()))  # type: ignore[arg-type]

        task.add_done_callback(done)

    async def answer(request: Any) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(query=name)
        try:
            payload = json.loads(request.data or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("a query payload is a JSON object")
            result = await handler(payload)
        except QueryFailure as exc:
            await request.respond_error(str(exc.code), exc.description)
            return
        except LookupError as exc:
            await request.respond_error("404", _short(exc))
            return
        except PermissionError as exc:
            await request.respond_error("403", _short(exc))
            return
        except (ValueError, ValidationError) as exc:
            await request.respond_error("400", _short(exc))
            return
        except Exception:
            log.exception("query_failed")
            await request.respond_error("500", "internal error")
            return
        if isinstance(result, BaseModel):
            body = result.model_dump_json().encode()
        else:
            body = json.dumps(result, default=_json_default).encode()
        await request.respond(body)

    return endpoint


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


Handler = Callable[[Envelope, Event], Awaitable[None]]
BatchHandler = Callable[[Sequence[tuple[Envelope, Event]]], Awaitable[None]]


@dataclass
class ConsumerStats:
    handled: int = 0
    failed: int = 0  # every failed attempt, transient or not
    transient: int = 0  # of which transient: retried for as long as it lasts
    dead_lettered: int = 0
    redelivered: int = 0


class TopologyMissing(Exception):
    """A stream or durable consumer this process needs is not there, or not as declared
    (shared/topology.py): `cmcoord nats-init` creates it."""


def explain_missing(problems: Sequence[str]) -> str:
    return "missing on NATS: " + "; ".join(problems) + " (run `cmcoord nats-init` with the operator's credentials)"


def filters_of(info: nats.js.api.ConsumerInfo) -> list[str]:
    """The subjects a durable consumer on the server takes, sorted."""
    config = info.config
    return sorted(config.filter_subjects or ([config.filter_subject] if config.filter_subject else []))


def durable_config(name: str, filter_subjects: Sequence[str], *, ack_wait: float) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=name,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        # Unbounded: a database locked for an hour is waited out, and the consumer dead-letters
        # real failures itself (a server-side limit would drop a message without a trace).
        max_deliver=-1,
        ack_wait=ack_wait,
        filter_subjects=list(filter_subjects),
        max_ack_pending=10_000,
    )


def replay_subject(stream: str, durable: str) -> str:
    """The subject on which `cmcoord deadletter replay` gives a dead letter back to one durable
    consumer of `stream`, and to no other: five tokens, so the owner's stream captures it."""
    return f"{SUBJECT_ROOT}.{stream.lower()}.replay.{durable}.v1"


class PullRequests:
    """A durable pull consumer's requests for messages, each with its own reply inbox.

    Every request asks with `no_wait` and `expires`: the server answers at once with what is
    there, or with the first message to come within `expires`, and then ends the request with
    a status. A status is taken as the end of a request only when it comes to that request's
    inbox, so one that arrives late for an earlier request (a 408 after the client gave up)
    is ignored. nats-py's `fetch` can take such a late status for its own and then wait for
    its whole timeout with messages in hand (nats-io/nats.py#933, #986, still in 2.16): a
    message then waits up to two seconds for no reason.
    """

    def __init__(self, bus: Bus, *, stream: str, durable: str) -> None:
        self.bus, self.stream, self.durable = bus, stream, durable
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._prefix = bus.nc.new_inbox()
        self._sub: Subscription | None = None
        self._n = 0

    async def start(self) -> PullRequests:
        self._sub = await self.bus.nc.subscribe(f"{self._prefix}.*")
        return self

    async def fetch(self, batch: int, *, timeout: float, stop: asyncio.Event | None = None) -> list[Msg]:
        """Up to `batch` messages: those there now, else the first to come within `timeout`
        (and any with it); an empty list when none came, or at once when `stop` is set while
        none has come (a service stopping does not wait out the request)."""
        assert self._sub is not None
        self._n += 1
        reply = f"{self._prefix}.{self._n}"
        request = {"batch": batch, "expires": int(timeout * 1e9), "no_wait": True}
        await self.bus.nc.publish(self._subject, json.dumps(request).encode(), reply=reply)
        msgs: list[Msg] = []
        deadline = time.monotonic() + timeout + 1.0  # the server ends the request by then
        while len(msgs) < batch:
            try:
                msg = await self._next(max(deadline - time.monotonic(), 0.001), None if msgs else stop)
            except (nats.errors.TimeoutError, TimeoutError):
                break
            if msg is None:  # stopping, nothing in hand
                break
            status = msg.headers.get(nats.js.api.Header.STATUS) if msg.headers else None
            if status is None:
                msgs.append(msg)
            elif msg.subject == reply and status in ("404", "408"):
                break  # this request is over: nothing (more) for now
            elif msg.subject == reply and status != "100":
                description = msg.headers.get(nats.js.api.Header.DESCRIPTION, "") if msg.headers else ""
                if msgs:
                    break
                raise ConnectionError(f"pull request refused: {status} {description}")  # consumer gone: rebind
            # else: a heartbeat, or a late status for an earlier request
        return msgs

    async def _next(self, timeout: float, stop: asyncio.Event | None) -> Msg | None:
        assert self._sub is not None
        if stop is None:
            return await self._sub.next_msg(timeout=timeout)
        if stop.is_set():
            return None
        receiving = asyncio.ensure_future(self._sub.next_msg(timeout=timeout))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not receiving.done():
            receiving.cancel()
            return None
        return receiving.result()

    async def consumer_info(self) -> object:
        return await self.bus.js.consumer_info(self.stream, self.durable)

    async def unsubscribe(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


@dataclass
class ConsumerRunner:
    """A durable pull consumer bound to a table of event classes -> handlers.

    Ack policy lives here and only here:
    - decoded and handled -> ack (handlers commit before returning);
    - envelope or payload fails validation, or no handler -> dead-letter + term;
    - PermanentError -> dead-letter + term;
    - transient (`is_transient`: TransientError, a database locked or away, NATS timing out)
      -> nak with a backoff growing with the deliveries up to `max_retry_delay`, for as long
      as it lasts: never dead-lettered. The other messages of the same fetch are put back
      with the same delay without being tried (they would wait on the same lock);
    - anything else -> nak with backoff, and dead-letter + term at its `max_deliver`-th such
      failure. Only these failures count: they are counted here, per message, since the
      server's delivery count also holds the transient ones. The count starts again after a
      restart (more tries, never fewer), and the server itself bounds no deliveries
      (`max_deliver` -1 on the JetStream consumer), so it never drops a message silently.

    The consumer also takes its own replay subject (`replay_subject`), where
    `cmcoord deadletter replay` puts back what it dead-lettered.
    """

    bus: Bus
    stream: str
    durable: str
    handlers: dict[type[Event], Handler]
    max_deliver: int = 5
    ack_wait: float = 30.0
    batch_handler: BatchHandler | None = None
    batch: int = 64
    fetch_timeout: float = 2.0
    stats: ConsumerStats = field(default_factory=ConsumerStats)
    # Keyed concurrency: messages with different keys are handled side by side, those with
    # the same key in order, each acked when done. For work that waits on someone else's pace
    # (Telegram's one message a second per chat). At most `batch` keys are worked on at once,
    # and at most `in_hand` messages held: a key with a long queue (the CMCS desk told of sixty
    # gapped posts) does not hold up the others. A message in hand tells the server it is
    # still in progress, so it is not redelivered meanwhile.
    key: Callable[[Event], Hashable] | None = None
    in_hand: int = 1000
    max_retry_delay: float = 30.0  # the longest wait between two tries of a transient failure
    # Create or update the durable when it is missing or differs: for tools and tests holding the
    # operator's identity. Services leave it to `cmcoord nats-init` and only bind.
    declare: bool = False

    def __post_init__(self) -> None:
        self._by_subject = {cls.subject(): (cls, h) for cls, h in self.handlers.items()}
        self._in_hand: set[asyncio.Task[None]] = set()
        self._tails: dict[Hashable, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._rebind = asyncio.Event()
        self._bound = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures: OrderedDict[int, int] = OrderedDict()  # stream seq -> non-transient failures so far
        self.replay_subject = replay_subject(self.stream, self.durable)
        self.bus.on_reconnect(self._rebind.set)

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    def config(self) -> ConsumerConfig:
        return durable_config(self.durable, [*sorted(self._by_subject), self.replay_subject], ack_wait=self.ack_wait)

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"consumer:{self.durable}")
        return self._task

    async def stop(self) -> None:
        """Stop pulling, finish the messages in hand, return."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        if self._in_hand:
            await asyncio.wait(set(self._in_hand))

    async def wait_bound(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._bound.wait(), timeout)

    async def _bind(self) -> PullRequests:
        """Bind to the durable consumer as `cmcoord nats-init` declared it: a service does not
        create or change consumers (its NATS user may not). A durable missing or taking other
        subjects is said clearly and retried (an init step may still be running)."""
        wanted = self.config()
        try:
            info = await self.bus.js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            if not self.declare:
                raise TopologyMissing(f"consumer {self.stream}/{self.durable}") from None
            info = await self.bus.js.add_consumer(self.stream, wanted)
        have = filters_of(info)
        if have != sorted(wanted.filter_subjects or []):
            if not self.declare:
                raise TopologyMissing(f"consumer {self.stream}/{self.durable} takes {have}, this version "
                                      f"handles {sorted(wanted.filter_subjects or [])}")
            info = await self.bus.js.add_consumer(self.stream, wanted)
        if info.config.ack_wait:
            self.ack_wait = float(info.config.ack_wait)  # the server's: in-progress notices keep within it
        sub = await PullRequests(self.bus, stream=self.stream, durable=self.durable).start()
        self._bound.set()
        log.info("consumer_bound", consumer=self.durable, stream=self.stream)
        return sub

    async def run(self) -> None:
        sub: PullRequests | None = None
        backoff = 0.5
        idle_since = time.monotonic()
        while not self._stopping.is_set():
            try:
                if not self.bus.connected:
                    self._bound.clear()
                    if self.bus.nc.is_closed:
                        return
                    await self.bus.wait_connected(timeout=1.0)
                    continue
                if sub is None or self._rebind.is_set():
                    self._rebind.clear()
                    if sub is not None:
                        await _quietly(sub.unsubscribe())
                    self._bound.clear()
                    sub = await self._bind()
                    backoff = 0.5
                    idle_since = time.monotonic()
                if self.key is not None and (len(self._tails) >= self.batch or len(self._in_hand) >= self.in_hand):
                    await asyncio.wait(set(self._in_hand), return_when=asyncio.FIRST_COMPLETED)
                    continue
                wanted = (min(self.batch - len(self._tails), self.in_hand - len(self._in_hand)) if self.key is not None
                          else self.batch)  # each message fetched adds at most one key
                msgs = await sub.fetch(wanted, timeout=self.fetch_timeout, stop=self._stopping)
                if not msgs:
                    if time.monotonic() - idle_since > 30:
                        # Long idle: make sure the consumer still exists and our
                        # subscription is still the one it delivers to.
                        await sub.consumer_info()
                        idle_since = time.monotonic()
                    continue
                idle_since = time.monotonic()
                await self._handle_fetched(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost, consumer gone, server restarting
                self._bound.clear()
                structlog.contextvars.clear_contextvars()
                structlog.contextvars.bind_contextvars(service=self.bus.source, consumer=self.durable)
                if self.bus.nc.is_closed:
                    # closed on purpose (shutdown), not merely disconnected
                    log.info("consumer_stopped_connection_closed", consumer=self.durable)
                    return
                if isinstance(exc, TopologyMissing):
                    log.error("consumer_missing", consumer=self.durable, error=explain_missing([str(exc)]))
                else:
                    log.warning("consumer_rebinding", consumer=self.durable, error=str(exc) or type(exc).__name__)
                sub = None
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)
        if sub is not None:
            await _quietly(sub.unsubscribe())

    def _bind_log(self, msg: Msg, envelope: Envelope | None = None) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            service=self.bus.source, consumer=self.durable, subject=msg.subject, stream_seq=msg.metadata.sequence.stream
        )
        if envelope is not None:
            structlog.contextvars.bind_contextvars(event_id=str(envelope.id), correlation_id=envelope.correlation_id)

    async def _decode(self, msg: Msg) -> tuple[Envelope, Event, Handler] | None:
        """The envelope, payload and handler; None if the message was dead-lettered."""
        self._bind_log(msg)
        if msg.metadata.num_delivered > 1:
            self.stats.redelivered += 1
        try:
            envelope = Envelope.from_bytes(msg.data)
            self._bind_log(msg, envelope)
            entry = self._by_subject.get(envelope.subject)
            if entry is None or msg.subject not in (envelope.subject, self.replay_subject):
                raise PermanentError(f"no handler for {envelope.subject} on {msg.subject}")
            cls, owner = entry[0], entry[0].owner()
            if envelope.source not in (owner, *cls.senders) or msg.metadata.stream != owner.upper():
                # a consistency check: an event attributed to a service that does not own it (a bug, a
                # message replayed by hand to the wrong place) is refused. The envelope is the publisher's
                # word: what keeps a login off another's subjects is the NATS permissions.
                raise PermanentError(f"{envelope.subject} from {envelope.source!r} in stream {msg.metadata.stream}: "
                                     f"only {', '.join((owner, *cls.senders))} may publish it, in {owner.upper()}")
            return envelope, entry[0].model_validate(envelope.data), entry[1]
        except (ValidationError, ValueError, PermanentError) as exc:
            await self._dead_letter(msg, reason=f"invalid: {_short(exc)}")
            return None

    def _hand_over(self, msg: Msg, envelope: Envelope, event: Event, handler: Handler) -> None:
        """Keyed mode: handle after the previous message with the same key, without waiting here."""
        assert self.key is not None
        k = self.key(event)
        previous = self._tails.get(k)

        async def after() -> None:
            keep = asyncio.create_task(self._keep_in_progress(msg))
            try:
                if previous is not None:
                    await asyncio.wait({previous})
                await self._apply_one(msg, envelope, event, handler)
            except Exception as exc:  # the ack could not be sent (connection lost): it comes again, idempotent
                log.warning("event_ack_failed", error=_short(exc))
            finally:
                keep.cancel()

        task = asyncio.create_task(after(), name=f"{self.durable}:{msg.metadata.sequence.stream}")  # log context copied
        self._in_hand.add(task)
        self._tails[k] = task

        def done(t: asyncio.Task[None]) -> None:
            self._in_hand.discard(t)
            if self._tails.get(k) is t:
                del self._tails[k]

        task.add_done_callback(done)

    async def _keep_in_progress(self, msg: Msg) -> None:
        """While a message waits behind its key, or for its turn to reach Telegram, the server
        hears it is in progress: it is not redelivered meanwhile."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            with contextlib.suppress(Exception):  # connection lost: it may come again, handled idempotently
                await msg.in_progress()

    async def _handle_fetched(self, msgs: list[Msg]) -> None:
        decoded = [(msg, item) for msg in msgs if (item := await self._decode(msg)) is not None]
        if self.key is not None:
            for msg, (envelope, event, handler) in decoded:
                self._bind_log(msg, envelope)
                self._hand_over(msg, envelope, event, handler)
            return
        if self.batch_handler is not None and len(decoded) > 1:
            started = time.perf_counter()
            try:
                await self.batch_handler([(envelope, event) for _, (envelope, event, _) in decoded])
            except Exception as exc:
                if is_transient(exc):
                    # one by one would wait on the same lock once per message: all come back later
                    delay = self._retry_delay(max(m.metadata.num_delivered for m, _ in decoded), exc)
                    log.warning("batch_retry_transient", size=len(decoded), delay=round(delay, 3), error=_short(exc))
                    self.stats.failed += len(decoded)
                    self.stats.transient += len(decoded)
                    for msg, (envelope, _, _) in decoded:
                        await msg.nak(delay=delay)
                    return
                log.warning("batch_failed_one_by_one", size=len(decoded), error=_short(exc))
            else:
                ms = round((time.perf_counter() - started) * 1000 / len(decoded), 3)
                for msg, (envelope, _, _) in decoded:
                    await msg.ack()
                    self._failures.pop(msg.metadata.sequence.stream, None)
                    self.stats.handled += 1
                    self._bind_log(msg, envelope)
                    log.info("event_handled", delivered=msg.metadata.num_delivered, ms=ms, batch=len(decoded))
                return
        put_back: float | None = None  # a transient failure: the rest of this fetch waits as long
        for msg, (envelope, event, handler) in decoded:
            self._bind_log(msg, envelope)
            if put_back is not None:
                await msg.nak(delay=put_back)
                log.info("event_put_back", delivered=msg.metadata.num_delivered, delay=round(put_back, 3))
                continue
            put_back = await self._apply_one(msg, envelope, event, handler)

    async def _apply_one(self, msg: Msg, envelope: Envelope, event: Event, handler: Handler) -> float | None:
        """Handle, then ack, nak or dead-letter; the delay of a transient failure, else None."""
        delivered = msg.metadata.num_delivered
        seq = msg.metadata.sequence.stream
        started = time.perf_counter()
        try:
            await handler(envelope, event)
        except PermanentError as exc:
            self._failures.pop(seq, None)
            await self._dead_letter(msg, reason=f"refused: {_short(exc)}")
            return None
        except Exception as exc:
            self.stats.failed += 1
            if is_transient(exc):
                self.stats.transient += 1
                delay = self._retry_delay(delivered, exc)
                log.warning("event_retry_transient", delivered=delivered, delay=round(delay, 3), error=_short(exc))
                await msg.nak(delay=delay)
                return delay
            failures = self._failures.pop(seq, 0) + 1
            log.error("event_failed", delivered=delivered, failures=failures, exc_info=exc)
            if failures >= self.max_deliver:
                await self._dead_letter(msg, reason=f"failed {failures} times: {_short(exc)}")
                return None
            self._failures[seq] = failures
            while len(self._failures) > _FAILURES_REMEMBERED:
                self._failures.popitem(last=False)
            await msg.nak(delay=min(2.0**failures * 0.2, 10.0))
            return None
        await msg.ack()
        self._failures.pop(seq, None)
        self.stats.handled += 1
        log.info("event_handled", delivered=delivered, ms=round((time.perf_counter() - started) * 1000, 3))
        return None

    def _retry_delay(self, delivered: int, exc: BaseException) -> float:
        """Doubling from the error's own delay (a TransientError's) or half a second, up to
        `max_retry_delay`; spread a little so a backlog put back at once does not return at once."""
        first = exc.delay if isinstance(exc, TransientError) else 0.5
        delay = min(first * 2.0 ** min(max(delivered - 1, 0), 16), max(self.max_retry_delay, first))
        return delay * random.uniform(0.8, 1.0)

    async def _dead_letter(self, msg: Msg, *, reason: str) -> None:
        meta = msg.metadata
        headers = {
            "Cmcoord-Reason": reason[:1000],
            "Cmcoord-Consumer": self.durable,
            "Cmcoord-Original-Subject": msg.subject,
            "Cmcoord-Stream": meta.stream,
            "Cmcoord-Stream-Seq": str(meta.sequence.stream),
            "Cmcoord-Delivered": str(meta.num_delivered),
        }
        # Dead-letter first, then term: if we die in between, the redelivered
        # message is dead-lettered again under the same id and JetStream drops it.
        await self.bus.publish_raw(
            f"{DEAD_LETTER_PREFIX}.{self.durable}",
            msg.data,
            msg_id=f"dlq:{self.durable}:{meta.stream}:{meta.sequence.stream}",
            headers=headers,
        )
        await msg.term()
        self.stats.dead_lettered += 1
        log.error("event_dead_lettered", reason=reason)


_FAILURES_REMEMBERED = 20_000  # messages with non-transient failures counted at once (max_ack_pending is 10,000)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")[:500]


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception as exc:  # tearing down a subscription on a dead connection
        log.debug("teardown_ignored", error=str(exc) or type(exc).__name__)
