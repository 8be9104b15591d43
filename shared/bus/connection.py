"""The connection to NATS: `connect` reconnects forever, `Bus` publishes envelopes and asks queries."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import nats
import structlog
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from shared.bus.rpc import decode_reply
from shared.events import Envelope

log = structlog.get_logger("bus")


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
        while not await any_listening(url):
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
            await quietly(self.nc.close())


async def any_listening(url: str) -> bool:
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


async def quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception as exc:  # tearing down a subscription on a dead connection
        log.debug("teardown_ignored", error=str(exc) or type(exc).__name__)
