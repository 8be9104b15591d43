"""The bot's store locked by someone else (a backup, a probe) for longer than its
busy timeout: the update intake waits it out, says so once, is not ready
meanwhile, and answers everyone once the lock is gone; an outage longer than
it may wait ends the process with code 1, for its supervisor to restart it."""

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.bot.models import InboxUpdate
from services.roster.bootstrap import RosterApp
from services.roster.config import Settings
from shared.clock import ManualClock
from shared.natsserver import NatsServer, free_port
from shared.store import Database
from tests.helpers import eventually, service_env, start_service, stop_process
from tests.integration.telegram_users import User, invite

pytestmark = pytest.mark.field  # faults as the field brings them: `make test-field` (CI runs it), apart from `make test`

LOCK_SECONDS = 12.0  # well past the bot's busy timeout below


@contextmanager
def exclusive_lock(db_file: Path) -> Iterator[sqlite3.Connection]:
    """What a careless backup does: the database's write lock, held."""
    connection = sqlite3.connect(db_file, timeout=5, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    try:
        yield connection
    finally:
        connection.execute("ROLLBACK")
        connection.close()


async def readiness(port: int) -> dict[str, Any] | None:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz",
                                                              timeout=aiohttp.ClientTimeout(total=3)) as resp:
            return await resp.json()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def is_ready(port: int) -> bool:
    body = await readiness(port)
    return bool(body and body["ready"])


def log_events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


async def pending_updates(sandbox_url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{sandbox_url}/sandbox/stats") as resp:
        return int((await resp.json())["pending_updates"])


async def inbox(db_file: Path) -> list[InboxUpdate]:
    db = Database(f"sqlite+aiosqlite:///{db_file}")
    try:
        async with db.read() as session:
            return list((await session.exec(InboxUpdate.__table__.select())).all())  # type: ignore[attr-defined]
    finally:
        await db.dispose()


def bot_env(home: Path, nats_url: str, sandbox_url: str, port: int, **extra: str) -> dict[str, str]:
    return service_env(home, nats_url, CMCOORD_SANDBOX_URL=sandbox_url, CMCOORD_BOT_HEALTH_PORT=str(port),
                       CMCOORD_BOT_POLL_TIMEOUT_SECONDS="1", CMCOORD_BOT_DB_BUSY_TIMEOUT_SECONDS="1", **extra)


async def test_intake_rides_out_a_locked_store_and_answers_everyone_once(
    tmp_path: Path, nats_server: NatsServer, sandbox_url: str, roster: RosterApp, roster_people: None,
    roster_settings: Settings, clock: ManualClock,
) -> None:
    home, port = tmp_path / "bot-home", free_port()
    log = tmp_path / "bot.log"
    bot = start_service("services.bot", bot_env(home, nats_server.url, sandbox_url, port), log)
    officer = User(sandbox_url, 9201)
    strangers = [User(sandbox_url, 9300 + i) for i in range(6)]
    try:
        await eventually(lambda: is_ready(port), timeout=30, what="bot ready")
        await officer.reply_to(f"/start {await invite(roster_settings, clock, 'o1@ocha.example')}", timeout=30)
        before = {u.id: len(await u.messages()) for u in [officer, *strangers]}

        not_ready_seen: list[dict[str, Any]] = []
        with exclusive_lock(home / "bot.db"):
            locked_at = time.monotonic()
            await officer.send("/contacts Mali")
            for n, user in enumerate(strangers):
                await user.send("/help" if n % 2 else "hello")

            async def not_ready() -> bool:
                body = await readiness(port)
                if body is not None and not body["ready"]:
                    not_ready_seen.append(body)
                return bool(not_ready_seen)

            await eventually(not_ready, timeout=LOCK_SECONDS - 2, interval=0.2, what="readiness false while locked")
            assert bot.poll() is None
            # nothing is answered while the updates cannot be stored (nor confirmed to Telegram)
            assert [len(await u.messages()) for u in [officer, *strangers]] == list(before.values())
            remaining = LOCK_SECONDS - (time.monotonic() - locked_at)
            await eventually(lambda: time.monotonic() - locked_at >= LOCK_SECONDS or bot.poll() is not None,
                             timeout=remaining + 1, interval=0.2, what="the lock held its time")
            assert bot.poll() is None, log.read_text()[-3000:]
        released_at = time.monotonic()

        async def everyone_answered() -> bool:
            return all([len(await u.messages()) > before[u.id] for u in [officer, *strangers]])

        await eventually(everyone_answered, timeout=30, interval=0.2, what="every user answered after the lock")
        answered_in = time.monotonic() - released_at
        await eventually(lambda: is_ready(port), timeout=15, interval=0.2, what="ready again")
        await eventually(lambda: _all_handled(home / "bot.db"), timeout=15, what="every update marked handled")
        await eventually(lambda: _confirmed(sandbox_url), timeout=15, what="updates confirmed to Telegram")

        # once each: exactly one answer per message
        for user in [officer, *strangers]:
            assert len(await user.messages()) == before[user.id] + 1, user.id
        assert "1–5 of 7" in (await officer.messages())[-1]["text"]
        checks = not_ready_seen[0]["checks"]
        assert checks["store"] is False or checks["updates"] is False
        events = [e["event"] for e in log_events(log)]
        assert events.count("bot_store_unwritable") == 1  # once per outage, not per attempt
        assert events.count("bot_store_writable_again") == 1
        print(f"answered everyone {answered_in:.1f}s after a {LOCK_SECONDS:.0f}s lock")
    finally:
        stop_process(bot)
    assert bot.returncode == 0


async def _all_handled(db_file: Path) -> bool:
    rows = await inbox(db_file)
    return bool(rows) and all(r.handled_at is not None for r in rows)


async def _confirmed(sandbox_url: str) -> bool:
    return await pending_updates(sandbox_url) == 0


async def test_store_unwritable_too_long_exits_non_zero(
    tmp_path: Path, nats_server: NatsServer, sandbox_url: str, roster: RosterApp,
) -> None:
    home, port = tmp_path / "bot-home", free_port()
    log = tmp_path / "bot.log"
    bot = start_service("services.bot", bot_env(home, nats_url=nats_server.url, sandbox_url=sandbox_url, port=port,
                                                CMCOORD_BOT_STORE_OUTAGE_EXIT_SECONDS="3"), log)
    user = User(sandbox_url, 9401)
    try:
        await eventually(lambda: is_ready(port), timeout=30, what="bot ready")
        with exclusive_lock(home / "bot.db"):
            await user.send("hello")
            await eventually(lambda: bot.poll() is not None, timeout=20, interval=0.2, what="the bot exits")
        assert bot.returncode == 1
        events = [e["event"] for e in log_events(log)]
        assert "bot_store_outage_too_long" in events and "service_failed_exiting" in events
        assert "bot_stopped" in events
        # the message was never confirmed: Telegram still holds it for the restarted bot
        assert await pending_updates(sandbox_url) == 1
    finally:
        stop_process(bot)
