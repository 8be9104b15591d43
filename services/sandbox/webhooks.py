"""Webhook delivery as Telegram does it: each update POSTed to the bot's HTTPS URL
with the secret header, repeated with back-off until a 2xx answer, then forgotten
(never sent again). Updates of one chat go one at a time, in order; chats go side
by side, up to `max_connections` requests at once.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

if TYPE_CHECKING:
    from services.sandbox.state import Sandbox

log = structlog.get_logger("sandbox")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def update_chat(update: dict[str, Any]) -> int:
    if "message" in update:
        return int(update["message"]["chat"]["id"])
    if "callback_query" in update:
        return int(update["callback_query"]["from"]["id"])
    return 0


@dataclass
class WebhookStats:
    delivered: int = 0
    failed_attempts: int = 0
    last_error: str | None = None


@dataclass
class Webhook:
    sandbox: Sandbox
    url: str
    secret: str | None
    ssl_context: ssl.SSLContext
    max_connections: int = 40
    first_backoff: float = 0.2
    max_backoff: float = 10.0
    request_timeout: float = 60.0
    stats: WebhookStats = field(default_factory=WebhookStats)
    _assigned: set[int] = field(default_factory=set)
    _lanes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    _lane_tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sandbox-webhook")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._lane_tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self.ssl_context, limit=self.max_connections)
        async with aiohttp.ClientSession(connector=connector) as http:
            limit = asyncio.Semaphore(self.max_connections)
            while True:
                fresh = await self.sandbox.wait_for_updates(lambda u: u["update_id"] not in self._assigned)
                for update in fresh:
                    self._assigned.add(update["update_id"])
                    chat = update_chat(update)
                    self._lanes.setdefault(chat, []).append(update)
                    if chat not in self._lane_tasks:
                        self._lane_tasks[chat] = asyncio.create_task(self._lane(http, limit, chat))

    async def _lane(self, http: aiohttp.ClientSession, limit: asyncio.Semaphore, chat: int) -> None:
        queue = self._lanes[chat]
        try:
            while queue:
                await self._deliver(http, limit, queue[0])
                queue.pop(0)
        finally:
            del self._lane_tasks[chat]
            self._lanes.pop(chat, None)

    async def _deliver(self, http: aiohttp.ClientSession, limit: asyncio.Semaphore, update: dict[str, Any]) -> None:
        headers = {SECRET_HEADER: self.secret} if self.secret else {}
        backoff = self.first_backoff
        while True:
            try:
                async with limit, http.post(self.url, json=update, headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=self.request_timeout)) as resp:
                    if 200 <= resp.status < 300:
                        await self.sandbox.acknowledge(update["update_id"])
                        self.stats.delivered += 1
                        return
                    error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"Connection failed: {type(exc).__name__}"
            self.stats.failed_attempts += 1
            self.stats.last_error = error
            log.info("sandbox_webhook_retry", update_id=update["update_id"], error=error[:200])
            await asyncio.sleep(backoff)  # Telegram's back-off before it repeats the request
            backoff = min(backoff * 2, self.max_backoff)


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificates checked as Telegram checks them; `ca_file` adds a CA to trust (a test's own)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context
