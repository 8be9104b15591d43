"""Two bot instances at once, as a rollout makes them: the sandbox answers as Telegram
does (409 to the long poll another getUpdates ended; webhook delivery over HTTPS,
repeated until a 2xx), and the bot answers every update once."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiohttp import web

from services.bot.config import SANDBOX_TOKEN
from services.sandbox.app import build_app
from services.sandbox.state import Faults, Sandbox
from shared.natsserver import free_port
from tests.helpers import eventually


@dataclass
class Tls:
    ca_file: Path
    server: ssl.SSLContext


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    """A throwaway CA and a certificate for 127.0.0.1, as a reverse proxy in front of the bot would hold."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return Tls(ca_file=tmp_path / "ca.pem", server=server)


@dataclass
class Telegram:
    url: str
    sandbox: Sandbox


@pytest.fixture
async def telegram(tls: Tls) -> AsyncIterator[Telegram]:
    """The sandbox on a free port, trusting the test's CA for its webhook calls."""
    sandbox = Sandbox(bot_username="CMCoordHubBot", faults=Faults(), webhook_ca=str(tls.ca_file))
    port = free_port()
    runner = web.AppRunner(build_app(sandbox))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Telegram(f"http://127.0.0.1:{port}", sandbox)
    await sandbox.delete_webhook(drop_pending=False)
    await runner.cleanup()


def sandbox_bot(url: str) -> Bot:
    return Bot(SANDBOX_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))


async def user_sends(url: str, user_id: int, text: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/sandbox/send",
                                                           json={"user_id": user_id, "text": text}) as resp:
        body: dict[str, Any] = await resp.json()
        return body


# --- the sandbox, as strict as Telegram ---------------------------------------------------------------------


async def test_a_second_get_updates_ends_the_first_long_poll_with_409(telegram: Telegram) -> None:
    first, second = sandbox_bot(telegram.url), sandbox_bot(telegram.url)
    try:
        waiting = asyncio.ensure_future(first.get_updates(timeout=20))
        # the first call holds the long poll once it has ended any poll before it
        await eventually(lambda: telegram.sandbox._poll_generation == 1, what="the first long poll waiting")
        assert await second.get_updates(timeout=0) == []
        with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request; make sure that "
                                                        "only one bot instance is running"):
            await waiting
        sent = await user_sends(telegram.url, 7001, "hello")
        for bot in (second, first, second):  # either caller gets it until an offset confirms it
            assert [u.update_id for u in await bot.get_updates(timeout=0)] == [sent["update_id"]]
        assert await first.get_updates(offset=sent["update_id"] + 1, timeout=0) == []
    finally:
        await first.session.close()
        await second.session.close()


@dataclass
class Receiver:
    """An HTTPS endpoint that fails the first `failures` requests of each update, then takes it."""

    failures: int = 0
    seen: list[tuple[int, str | None]] = field(default_factory=list)
    taken: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        update = await request.json()
        self.seen.append((update["update_id"], request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        if sum(uid == update["update_id"] for uid, _ in self.seen) <= self.failures:
            return web.Response(status=502)
        self.taken.append(update["update_id"])
        return web.Response(status=200)


async def serve_https(app: web.Application, context: ssl.SSLContext) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    return runner, f"https://127.0.0.1:{port}"


async def test_webhook_over_https_repeated_until_2xx_then_never_again(telegram: Telegram, tls: Tls) -> None:
    receiver = Receiver(failures=2)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner, base = await serve_https(app, tls.server)
    bot = sandbox_bot(telegram.url)
    try:
        with pytest.raises(TelegramBadRequest, match="An HTTPS URL must be provided"):
            await bot.set_webhook(base.replace("https://", "http://") + "/hook", secret_token="s" * 20)
        await bot.set_webhook(f"{base}/hook", secret_token="s" * 20)
        with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook is active"):
            await bot.get_updates(timeout=0)
        ids = [(await user_sends(telegram.url, 7002 + i % 2, f"m{i}"))["update_id"] for i in range(4)]
        await eventually(lambda: sorted(receiver.taken) == ids, timeout=20, what="every update taken")
        assert all(secret == "s" * 20 for _, secret in receiver.seen)
        assert len(receiver.seen) == 3 * len(ids)  # two 502s each, then the 2xx
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0 and info.url == f"{base}/hook"
        # confirmed by the 2xx: neither the webhook nor a poller after deleteWebhook sees them again
        await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == []
        assert sorted(receiver.taken) == ids
    finally:
        await bot.session.close()
        await runner.cleanup()
