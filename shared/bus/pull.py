"""Pull requests for a durable consumer, each with its own reply inbox."""

from __future__ import annotations

import asyncio
import json
import time

import nats.errors
import nats.js.api
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared.bus.connection import Bus


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
