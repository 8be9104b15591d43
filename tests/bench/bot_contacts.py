"""/contacts answered through the bot and the sandbox, 10,000 people on the roster,
20 concurrent users. Every part is its own process (roster, bot, sandbox); each
user asks at a person's pace (a little over a second apart, so the bot's own
flood throttle never drops a question). Telegram's limits are off, in the
sandbox and in the bot's own pacing: this measures the system, not Telegram's
one message per second per chat (with them on, the answer to a question asked
right after the welcome waits for the welcome's second to pass).
Users start spread over one pace interval (20 users pressing within the same millisecond
is not how people behave; that herd took the first answers to 80-160 ms).
Latency: from the user's message reaching the sandbox to the bot's answer in the chat."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import time
from datetime import timedelta
from pathlib import Path

import aiohttp

from services.roster.admin import import_text
from services.roster.config import Settings
from services.roster.samples import LAST, STATIONS, generate
from services.roster.handlers import create_invite
from shared.clock import SystemClock
from shared.heap import freeze_long_lived
from shared.natsserver import NatsServer, free_port
from shared.store import Database
from shared.topology import DEFAULT_ACK_WAIT
from tests.bench.common import percentile, result, wait_ready
from tests.bench.contacts import QUERIES
from tests.helpers import declare_topology, service_env, start_service, stop_process


async def measure(work: Path, *, people: int, users: int, per_user: int) -> list[dict[str, object]]:
    server = NatsServer(store_dir=work / "nats" / "jetstream", name="bench-bot").start()
    await declare_topology(server.url, ack_wait=DEFAULT_ACK_WAIT)  # as `cmcoord nats-init`, its ack wait too
    roster_port, bot_port, sandbox_port = free_port(), free_port(), free_port()
    settings = Settings(home=work / "home", nats_url=server.url, health_port=roster_port, scan_interval_seconds=3600)
    clock = SystemClock()
    text = generate(people=people, today=clock.now().date())
    _, errors, _ = await import_text(text, settings=settings, clock=clock, publish=False)
    assert not errors
    rows = list(csv.DictReader(io.StringIO(text)))[:users]
    emails = [row["email"] for row in rows]
    usernames = [row["telegram"] for row in rows]  # registering from another username is held for the desk
    db = Database(settings.db_url)
    tokens = []
    async with db.unit_of_work(source="bench", clock=clock) as uow:
        for email in emails:
            tokens.append((await create_invite(uow, email=email, ttl=timedelta(days=1)))[1])
    await db.dispose()
    env = service_env(settings.home, server.url, CMCOORD_ROSTER_HEALTH_PORT=str(roster_port),
                      CMCOORD_ROSTER_SCAN_INTERVAL_SECONDS="3600", CMCOORD_SANDBOX_PORT=str(sandbox_port),
                      CMCOORD_SANDBOX_URL=f"http://127.0.0.1:{sandbox_port}", CMCOORD_BOT_HEALTH_PORT=str(bot_port),
                      CMCOORD_SANDBOX_GLOBAL_PER_SEC="0", CMCOORD_SANDBOX_PER_CHAT_PER_SEC="0",
                      CMCOORD_BOT_SEND_PER_SECOND="0", CMCOORD_BOT_SEND_CHAT_INTERVAL_SECONDS="0",
                      CMCOORD_LOG_LEVEL="warning")
    procs = [start_service(m, env, work / f"{m.split('.')[-1]}.log")
             for m in ("services.sandbox", "services.roster", "services.bot")]
    url = f"http://127.0.0.1:{sandbox_port}"
    latencies: list[float] = []
    try:
        for port in (sandbox_port, roster_port, bot_port):
            await wait_ready(port, "service")
        rng = random.Random(11)
        queries = QUERIES + [rng.choice(LAST) for _ in range(8)] + [s[2] for s in STATIONS[:8]]
        async with aiohttp.ClientSession() as http:

            async def ask(user_id: int, text: str, after: int) -> tuple[float, int]:
                t0 = time.perf_counter()
                username = usernames[user_id - 700_000] or None
                await http.post(f"{url}/sandbox/send", json={"user_id": user_id, "text": text, "username": username})
                async with http.get(f"{url}/sandbox/chats/{user_id}/wait", params={"after": after, "timeout": 20}) as r:
                    got = await r.json()
                assert got, f"no answer to {text!r}"
                return (time.perf_counter() - t0) * 1000, got[-1]["message_id"]

            async def user(i: int) -> None:
                user_id = 700_000 + i
                await asyncio.sleep(i * 1.1 / users)  # people do not all press at the same millisecond
                _, last = await ask(user_id, f"/start {tokens[i]}", 0)
                for k in range(per_user):
                    started = time.perf_counter()
                    ms, last = await ask(user_id, f"/contacts {queries[(i * 5 + k) % len(queries)]}", last)
                    latencies.append(ms)
                    await asyncio.sleep(max(0.0, 1.1 - (time.perf_counter() - started)))  # a person's pace

            freeze_long_lived(full=True)  # this client's own heap (the roster it made): its collector's pauses are not the bot's
            await asyncio.gather(*(user(i) for i in range(users)))
            async with http.get(f"{url}/sandbox/stats") as r:
                stats = await r.json()
    finally:
        for proc in procs:
            stop_process(proc)
        server.stop()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    detail = {"people": people, "users": users, "requests": len(latencies), "rate_limited": stats["rate_limited"],
              "telegram_limits": "off in the sandbox"}
    return [
        result("bot_contacts_p50_ms", p50, "ms", "informational (p99 <= 100)", True, **detail),
        result("bot_contacts_p99_ms", p99, "ms", "<= 100", p99 <= 100, **detail),
    ]
