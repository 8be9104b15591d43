"""SIGTERM while Telegram and NATS are unreachable: every service stops within
10 s, with code 0, and says so — the bot does not sit out its send retries."""

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text

from services.bot.models import Delivery
from services.sandbox.app import build_app
from services.sandbox.state import Faults, Sandbox
from shared import events
from shared.bus import Bus
from shared.events import Envelope
from shared.natsserver import NatsServer, free_port
from shared.store import Database
from tests.helpers import ADMIN_AUTH, eventually, service_env, start_service, stop_process

pytestmark = pytest.mark.field  # faults as the field brings them: `make test-field` (CI runs it), apart from `make test`

STOP_LIMIT_S = 10.0


@asynccontextmanager
async def sandbox(port: int) -> AsyncIterator[web.AppRunner]:
    runner = web.AppRunner(build_app(Sandbox(bot_username="CMCoordHubBot", faults=Faults())))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield runner
    finally:
        await runner.cleanup()


async def ready(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def delivery_in_flight(db_file: Path) -> bool:
    """The bot has begun the send (its row is written). Not yet while the store or its table
    is missing: if the bot never made them, the wait fails saying so."""
    if not db_file.exists():
        return False
    db = Database(f"sqlite+aiosqlite:///{db_file}")
    try:
        async with db.read() as session:
            made = (await session.exec(text(  # type: ignore[call-overload]
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'delivery'"))).first()
            return made is not None and bool(
                (await session.exec(Delivery.__table__.select())).all())  # type: ignore[attr-defined]
    finally:
        await db.dispose()


def logged(path: Path, event: str) -> bool:
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("event") == event:
                return True
        except ValueError:
            continue
    return False


@pytest.mark.parametrize("telegram", ["refusing", "silent"])
async def test_sigterm_stops_each_service_within_10s_with_telegram_and_nats_gone(
    tmp_path: Path, nats_server: NatsServer, telegram: str
) -> None:
    sandbox_port = free_port()
    bot_home = tmp_path / "bot-home"
    bot_port, roster_port = free_port(), free_port()
    bot_log, roster_log = tmp_path / "bot.log", tmp_path / "roster.log"
    procs = {}
    silent: asyncio.Server | None = None
    async with sandbox(sandbox_port) as telegram_stand_in:
        procs["roster"] = start_service("services.roster", service_env(
            tmp_path / "roster-home", nats_server.url, CMCOORD_ROSTER_HEALTH_PORT=str(roster_port)), roster_log)
        procs["bot"] = start_service("services.bot", service_env(
            bot_home, nats_server.url, CMCOORD_SANDBOX_URL=f"http://127.0.0.1:{sandbox_port}",
            CMCOORD_BOT_HEALTH_PORT=str(bot_port), CMCOORD_BOT_POLL_TIMEOUT_SECONDS="1"), bot_log)
        try:
            await eventually(lambda: ready(roster_port), timeout=30, what="roster ready")
            await eventually(lambda: ready(bot_port), timeout=30, what="bot ready")
            await telegram_stand_in.cleanup()  # Telegram is gone ...
            if telegram == "silent":  # ... or worse: it takes the connection and never answers
                silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", sandbox_port)

            bus = await Bus.open(nats_server.url, source="notify", patience=10, auth=ADMIN_AUTH)
            now = datetime.now(UTC)
            await bus.publish(Envelope.wrap(events.DeliverTelegram(
                notification_id=uuid.uuid4(), person_id=uuid.uuid4(), chat_id=9501, kind="test",
                text="A reminder that cannot reach Telegram", urgent=True), source="notify", occurred_at=now))
            await bus.close()
            await eventually(lambda: delivery_in_flight(bot_home / "bot.db"), timeout=20, what="send in flight")
            if telegram == "refusing":
                await eventually(lambda: logged(bot_log, "telegram_retry"), timeout=10, what="the bot retrying")

            nats_server.stop()  # NATS is gone too
            await eventually(lambda: _nats_down(bot_port), timeout=15, what="the bot sees NATS down")

            started = time.monotonic()
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            took = {}
            while len(took) < len(procs) and time.monotonic() - started < STOP_LIMIT_S + 5:
                for name, proc in procs.items():
                    if name not in took and proc.poll() is not None:
                        took[name] = time.monotonic() - started
                await asyncio.sleep(0.05)  # polling the processes' exit with a deadline
            print(f"stop times with Telegram {telegram} and NATS down: "
                  + ", ".join(f"{n} {t:.2f}s" for n, t in took.items()))
            for name, proc in procs.items():
                log_text = (tmp_path / f"{name}.log").read_text()[-3000:]
                assert name in took and took[name] < STOP_LIMIT_S, (name, took, log_text)
                assert proc.returncode == 0, (name, log_text)
                assert logged(tmp_path / f"{name}.log", f"{name}_stopped"), log_text
        finally:
            for proc in procs.values():
                stop_process(proc, kill=True)
            if silent is not None:
                silent.close()


async def _nats_down(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            return (await resp.json())["checks"]["nats"] is False
    except aiohttp.ClientError:
        return False
