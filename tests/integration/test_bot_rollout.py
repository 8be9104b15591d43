"""Two bot instances at once, as a rollout makes them: the sandbox answers as Telegram
does (409 to the long poll another getUpdates ended; webhook delivery over HTTPS,
repeated until a 2xx), and the bot answers every update once."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
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

from sqlmodel import col, select

from services.bot.config import SANDBOX_TOKEN
from services.bot.models import InboxUpdate
from services.roster.bootstrap import RosterApp
from services.sandbox.app import build_app
from services.sandbox.state import Faults, Sandbox
from shared.clock import ManualClock
from shared.natsserver import NatsServer, free_port
from shared.store import Database
from tests.helpers import eventually, service_env, start_service, stop_process
from tests.integration.telegram_users import invite

pytestmark = pytest.mark.field  # faults as the field brings them: `make test-field` (CI runs it), apart from `make test`


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


# --- the bot: two processes at once on one database, as in production (one PostgreSQL for all replicas) ------


def bot_env(tmp_path: Path, name: str, nats_url: str, telegram: Telegram, **extra: str) -> dict[str, str]:
    return service_env(tmp_path / name, nats_url, CMCOORD_SANDBOX_URL=telegram.url,
                       CMCOORD_BOT_HEALTH_PORT=str(free_port()), CMCOORD_BOT_POLL_TIMEOUT_SECONDS="2",
                       CMCOORD_BOT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", **extra)


async def ready(env: dict[str, str]) -> bool:
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{env['CMCOORD_BOT_HEALTH_PORT']}/readyz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def start_bot(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    process = start_service("services.bot", env, log)
    await eventually(lambda: ready(env), timeout=60, what=f"{log.name} ready")
    return process


def outgoing(telegram: Telegram, chat_id: int) -> list[dict[str, Any]]:
    return [m for m in telegram.sandbox.chat(chat_id).messages if m["outgoing"]]


async def answered(telegram: Telegram, chat_id: int, count: int) -> dict[str, Any]:
    """The bot's `count`th message in the chat, once there."""
    found = await eventually(lambda: len(outgoing(telegram, chat_id)) >= count and outgoing(telegram, chat_id),
                             timeout=30, what=f"answer {count} in chat {chat_id}")
    return dict(found[count - 1])


@dataclass
class Traffic:
    sent: dict[int, int] = field(default_factory=dict)  # chat -> messages written
    presses: list[str] = field(default_factory=list)  # callback query ids

    async def stranger(self, telegram: Telegram, user_id: int, until: float) -> None:
        """Someone not in the roster, writing again as soon as the bot has answered."""
        loop = asyncio.get_running_loop()
        while loop.time() < until:
            await telegram.sandbox.user_sends(user_id, f"hello {self.sent.get(user_id, 0)}")
            self.sent[user_id] = self.sent.get(user_id, 0) + 1
            await answered(telegram, user_id, self.sent[user_id])

    async def officer(self, telegram: Telegram, user_id: int, rounds: int) -> None:
        """A registered officer searching contacts and turning the page (within the flood allowance)."""
        for _ in range(rounds):
            await telegram.sandbox.user_sends(user_id, "/contacts Mali")
            self.sent[user_id] = self.sent.get(user_id, 0) + 1
            page = await answered(telegram, user_id, self.sent[user_id])
            assert "1–5 of 7" in page["text"]
            nxt = next(b["callback_data"] for row in page["reply_markup"]["inline_keyboard"] for b in row)
            press = await telegram.sandbox.user_presses(user_id, page["message_id"], nxt)
            self.presses.append(press["callback_query"]["id"])
            await eventually(lambda: any(a["id"] == self.presses[-1] for a in telegram.sandbox.callback_answers)
                             and "6–7 of 7" in (telegram.sandbox.find_bot_message(user_id, page["message_id"])
                                                .get("text") or ""),
                             timeout=30, what="the press answered and the page turned")


async def unhandled_in_inbox(db_url: str) -> int:
    db = Database(db_url)
    try:
        async with db.read() as session:
            return len((await session.exec(select(InboxUpdate).where(col(InboxUpdate.handled_at).is_(None)))).all())
    finally:
        await db.dispose()


def log_events(log: Path, event: str) -> int:
    return sum(f'"event": "{event}"' in line for line in log.read_text().splitlines())


async def register(telegram: Telegram, roster_settings: Any, clock: ManualClock, officers: dict[int, str],
                   traffic: Traffic) -> None:
    for user_id, email in officers.items():
        await telegram.sandbox.user_sends(user_id, f"/start {await invite(roster_settings, clock, email)}")
        traffic.sent[user_id] = 1
        await answered(telegram, user_id, 1)


def assert_each_update_answered_once(telegram: Telegram, traffic: Traffic) -> None:
    for chat_id, count in traffic.sent.items():
        texts = [m.get("text") for m in outgoing(telegram, chat_id)]
        assert len(texts) == count, (chat_id, texts)  # one answer per message: none lost, none twice
        assert not any("faster than I can help" in (t or "") for t in texts)
    answers = [a["id"] for a in telegram.sandbox.callback_answers]
    assert sorted(answers) == sorted(traffic.presses)  # each press answered once


OFFICERS = {9301 + i: f"o{i + 1}@ocha.example" for i in range(4)}
STRANGERS = range(9401, 9407)


async def test_a_rollout_with_two_pollers_answers_every_update_once(
    tmp_path: Path, nats_server: NatsServer, telegram: Telegram, roster: RosterApp, roster_people: None,
    roster_settings: Any, clock: ManualClock,
) -> None:
    old_env = bot_env(tmp_path, "old", nats_server.url, telegram)
    new_env = bot_env(tmp_path, "new", nats_server.url, telegram)
    traffic = Traffic()
    old = await start_bot(old_env, tmp_path / "old.log")
    new: subprocess.Popen[bytes] | None = None
    try:
        await register(telegram, roster_settings, clock, OFFICERS, traffic)
        # the new pod starts before the old one goes (maxSurge: 1): two pollers for a while
        new = await start_bot(new_env, tmp_path / "new.log")
        loop = asyncio.get_running_loop()
        users = [asyncio.ensure_future(traffic.stranger(telegram, u, loop.time() + 12)) for u in STRANGERS]
        users += [asyncio.ensure_future(traffic.officer(telegram, u, rounds=4)) for u in OFFICERS]
        await eventually(lambda: log_events(tmp_path / "old.log", "get_updates_conflict")
                         + log_events(tmp_path / "new.log", "get_updates_conflict") > 0,
                         timeout=20, what="the conflict seen")
        await asyncio.wait_for(asyncio.gather(*users[len(STRANGERS):]), 60)  # the officers done, strangers writing
        await asyncio.to_thread(stop_process, old)  # the rollout ends while users still write
        await asyncio.wait_for(asyncio.gather(*users), 60)
        # the old pod's unfinished updates, if any, are taken over by the new one
        await eventually(lambda: _settled(new_env, telegram), timeout=40, what="every update handled and confirmed")
        await asyncio.to_thread(stop_process, new)
        assert_each_update_answered_once(telegram, traffic)
        assert sum(traffic.sent.values()) - len(OFFICERS) > 3 * len(STRANGERS)  # users kept writing throughout
        for log in ("old.log", "new.log"):  # one line per conflict episode, not one per 409
            assert log_events(tmp_path / log, "get_updates_conflict") <= 1
    finally:
        for process in (old, new):
            if process is not None:
                await asyncio.to_thread(stop_process, process)


async def _settled(env: dict[str, str], telegram: Telegram) -> bool:
    return not telegram.sandbox.updates and await unhandled_in_inbox(env["CMCOORD_BOT_DATABASE_URL"]) == 0


@dataclass
class RoundRobin:
    """A TLS reverse proxy in front of the bot's replicas, as an Ingress is: each request to the next one."""

    backends: list[str]
    served: list[int] = field(default_factory=list)  # backend index per request

    async def handle(self, request: web.Request) -> web.Response:
        index = len(self.served) % len(self.backends)
        self.served.append(index)
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-telegram")}
        try:
            async with aiohttp.ClientSession() as http, \
                    http.post(self.backends[index] + request.path, data=await request.read(),
                              headers={**headers, "Content-Type": "application/json"}) as resp:
                return web.Response(status=resp.status, body=await resp.read())
        except aiohttp.ClientError:
            return web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>")


async def test_webhook_mode_two_replicas_behind_one_https_url_answer_every_update_once(
    tmp_path: Path, nats_server: NatsServer, telegram: Telegram, tls: Tls, roster: RosterApp, roster_people: None,
    roster_settings: Any, clock: ManualClock,
) -> None:
    ports = [free_port(), free_port()]
    proxy = RoundRobin([f"http://127.0.0.1:{p}" for p in ports])
    app = web.Application()
    app.router.add_post("/telegram/webhook", proxy.handle)
    runner, base = await serve_https(app, tls.server)
    envs = [bot_env(tmp_path, f"replica{i}", nats_server.url, telegram, CMCOORD_BOT_MODE="webhook",
                    CMCOORD_BOT_WEBHOOK_SECRET="replicas-share-this-secret", CMCOORD_BOT_WEBHOOK_HOST="127.0.0.1",
                    CMCOORD_BOT_WEBHOOK_PORT=str(port), CMCOORD_BOT_WEBHOOK_URL=f"{base}/telegram/webhook")
            for i, port in enumerate(ports)]
    traffic = Traffic()
    replicas: list[subprocess.Popen[bytes]] = []
    try:
        for i, env in enumerate(envs):
            replicas.append(await start_bot(env, tmp_path / f"replica{i}.log"))
        assert telegram.sandbox.webhook is not None and telegram.sandbox.webhook.url == f"{base}/telegram/webhook"
        await register(telegram, roster_settings, clock, OFFICERS, traffic)
        loop = asyncio.get_running_loop()
        users = [asyncio.ensure_future(traffic.stranger(telegram, u, loop.time() + 8)) for u in STRANGERS]
        users += [asyncio.ensure_future(traffic.officer(telegram, u, rounds=4)) for u in OFFICERS]
        await asyncio.wait_for(asyncio.gather(*users), 90)
        await eventually(lambda: not telegram.sandbox.updates, timeout=30, what="every update acknowledged")
        for replica in replicas:
            await asyncio.to_thread(stop_process, replica)
        assert_each_update_answered_once(telegram, traffic)
        assert sum(traffic.sent.values()) - len(OFFICERS) > 3 * len(STRANGERS)
        assert set(proxy.served) == {0, 1}  # both replicas took updates
        assert telegram.sandbox.webhook.stats.failed_attempts == 0  # nothing had to be repeated
    finally:
        for replica in replicas:
            await asyncio.to_thread(stop_process, replica)
        await runner.cleanup()


async def test_an_html_502_from_the_edge_on_get_updates_is_retried_and_the_update_handled_once(
    tmp_path: Path, telegram: Telegram,
) -> None:
    """Telegram's nginx answers an HTML page, not JSON, when its back end is away."""
    from aiogram import Dispatcher
    from aiogram.types import Message
    from structlog.testing import capture_logs

    from services.bot.models import BOT_TABLES
    from services.bot.polling import Poller

    edge_errors = 2

    async def edge(request: web.Request) -> web.Response:
        nonlocal edge_errors
        if request.match_info["method"].lower() == "getupdates" and edge_errors > 0:
            edge_errors -= 1
            return web.Response(status=502, content_type="text/html",
                                text="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
        async with aiohttp.ClientSession() as http, \
                http.post(f"{telegram.url}{request.path}", data=await request.read(),
                          headers={"Content-Type": request.headers.get("Content-Type", "")}) as resp:
            return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", edge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await db.create_tables(BOT_TABLES)
    bot = sandbox_bot(f"http://127.0.0.1:{port}")
    dp = Dispatcher()
    seen: list[int] = []

    @dp.message()
    async def record(message: Message) -> None:
        seen.append(message.message_id)

    stopping = asyncio.Event()
    poller = Poller(bot, dp, db, timeout=1, languages=None)  # type: ignore[arg-type]  # no throttle: never used
    try:
        with capture_logs() as logs:
            polling = asyncio.ensure_future(poller.run(stopping))
            sent = await user_sends(telegram.url, 7101, "hello")
            await eventually(lambda: seen and not telegram.sandbox.updates, timeout=20, what="handled and confirmed")
            stopping.set()
            await asyncio.wait_for(polling, 10)
        assert seen == [sent["message_id"]] and edge_errors == 0
        failures = [e for e in logs if e["event"] == "get_updates_failed"]
        assert [e["kind"] for e in failures] == ["ClientDecodeError"] * 2
    finally:
        await bot.session.close()
        await db.dispose()
        await runner.cleanup()


def test_a_conflict_episode_is_logged_once_and_its_end_after_a_quiet_spell() -> None:
    from structlog.testing import capture_logs

    from services.bot.polling import ConflictEpisodes

    now = [0.0]
    episodes = ConflictEpisodes(quiet_after=20.0, clock=lambda: now[0])
    with capture_logs() as logs:
        for t in (0.0, 1.0, 3.0, 7.0, 15.0):  # the other poller asks again and again
            now[0] = t
            episodes.seen("Conflict: terminated by other getUpdates request")
            assert not episodes.calm()
        now[0] = 30.0
        assert not episodes.calm()  # 15 s without a conflict: the other one may still be backing off
        now[0] = 36.0
        assert episodes.calm()
        now[0] = 40.0
        episodes.seen("Conflict: terminated by other getUpdates request")
    assert [(e["event"], e.get("conflicts")) for e in logs] == [
        ("get_updates_conflict", None), ("get_updates_conflict_ended", 5), ("get_updates_conflict", None)]
    assert episodes.episodes == 2
