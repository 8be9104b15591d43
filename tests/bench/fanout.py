"""A reminder to 1,000 officers with the sandbox's Telegram limits on (30 messages/s per bot,
1/s per chat), and the latency from a roster change to the handover prompt in the chat with
the limits off. Sandbox, roster, notify and bot each run as their own process.

- fanout_rate_fraction_of_ceiling: messages accepted per second, first to last, over 30/s.
  The request is urgent so that no recipient's quiet hours hold it back during the run.
- fanout_lost / fanout_duplicates: chats without the reminder / extra copies.
- rotation_to_prompt: a person's planned end moved into the handover window by an import;
  from the roster's event (`occurred_at`, inside the import's transaction) to the prompt in
  that person's chat. Measured once notify and the bot have worked through the events and
  messages of the roster's own import of 1,000 people (steady state).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import nats.errors
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from nats.js.api import DeliverPolicy

from services.bot.config import SANDBOX_TOKEN
from services.roster.admin import import_text
from services.roster.config import Settings
from services.roster.samples import generate
from shared import events
from shared.bus import Bus
from shared.clock import SystemClock
from shared.events import Envelope
from shared.natsserver import NatsServer, free_port
from shared.topology import DEFAULT_ACK_WAIT
from tests.bench.common import cpu_by_process, percentile, result, wait_ready
from tests.helpers import (
    declare_topology,
    link_to_telegram,
    mark_started,
    service_env,
    start_service,
    stop_process,
)

TEXT = "Regional CMCoord call tomorrow 13:00 GMT: agenda and link to follow."
PEER_TEXT = "Regional CMCoord call moved to 14:00 GMT."
CEILING = 30.0
FIRST_CHAT = 300_000
HEADER = "name,email,phone,organisation,country,duty_station,post_title,role,start,planned_end,timezone\n"


def awake_zone(now: datetime) -> str:
    """A time zone where it is between 09:00 and 18:00 now (a prompt is not held for the night)."""
    for offset in range(-11, 13):
        name = f"Etc/GMT{-offset:+d}" if offset else "UTC"  # Etc/GMT-7 is UTC+7
        if 9 <= now.astimezone(ZoneInfo(name)).hour < 18:
            return name
    raise AssertionError("some zone is always awake")


async def _get(http: aiohttp.ClientSession, url: str, **params: Any) -> Any:
    async with http.get(url, params=params) as resp:
        return await resp.json()


async def measure(work: Path, *, people: int, prompts: int) -> list[dict[str, object]]:
    server = NatsServer(store_dir=work / "nats" / "jetstream", name="bench-fanout", http_port=free_port()).start()
    await declare_topology(server.url, ack_wait=DEFAULT_ACK_WAIT)  # as `cmcoord nats-init`, its ack wait too
    ports = {name: free_port() for name in ("roster", "notify", "bot", "sandbox")}
    settings = Settings(home=work / "home", nats_url=server.url, health_port=ports["roster"])
    clock = SystemClock()
    today = clock.now().date()
    _, errors, _ = await import_text(generate(people=people, today=today), settings=settings, clock=clock,
                                     publish=False)
    assert not errors
    # the people whose planned end the latency part moves, in a time zone where it is day now
    zone = awake_zone(datetime.now(UTC))
    rows = [f"Latency Probe {i},probe{i:03d}@ocha.example,+66 {i},OCHA,TH,Bangkok,Probe Officer {i},cmcoord_officer,"
            f"{today - timedelta(days=100)},{today + timedelta(days=200)},{zone}" for i in range(prompts)]
    _, errors, _ = await import_text(HEADER + "\n".join(rows) + "\n", settings=settings, clock=clock, publish=False)
    assert not errors
    linked = await link_to_telegram(settings.db_url, first_chat=FIRST_CHAT, at=clock.now())
    targets = [person_id for email, person_id, _ in linked if not email.startswith("probe")]
    probes = {email: (person_id, chat) for email, person_id, chat in linked if email.startswith("probe")}
    officers = len(targets)
    env = service_env(settings.home, server.url, CMCOORD_LOG_LEVEL="warning",
                      CMCOORD_SANDBOX_PORT=str(ports["sandbox"]), CMCOORD_SANDBOX_URL=f"http://127.0.0.1:{ports['sandbox']}",
                      CMCOORD_ROSTER_HEALTH_PORT=str(ports["roster"]), CMCOORD_NOTIFY_HEALTH_PORT=str(ports["notify"]),
                      CMCOORD_BOT_HEALTH_PORT=str(ports["bot"]), CMCOORD_ROSTER_SCAN_INTERVAL_SECONDS="3600")
    procs = [start_service(m, env, work / f"{m.split('.')[-1]}.log")
             for m in ("services.sandbox", "services.roster", "services.notify", "services.bot")]
    url = f"http://127.0.0.1:{ports['sandbox']}"
    bus = await Bus.open(server.url, source="bench", instance="bench")
    try:
        for port in ports.values():
            await wait_ready(port, "service")
        await mark_started(url, [chat for _, _, chat in linked])  # they pressed Start earlier
        async with aiohttp.ClientSession() as http:
            # --- fan-out, Telegram's limits on (the sandbox's defaults)
            request = events.NotificationRequested(kind="call.reminder", about="bench-call", occurrence=str(today),
                                                   person_ids=targets, urgent=True, text=TEXT)
            await _drained(bus)  # the import's own events handled: the CPU below is the fan-out's
            # the pipeline's CPU (the sandbox stands for Telegram and is not counted)
            assert server.process is not None
            pids = {"roster": procs[1].pid, "notify": procs[2].pid, "bot": procs[3].pid,
                    "nats-server": server.process.pid}
            cpu_before = cpu_by_process(pids)
            varz_before = await _get(http, f"{server.monitor_url}/varz")
            await bus.publish(Envelope.wrap(request, source="lessons", occurred_at=datetime.now(UTC)))
            deadline = time.monotonic() + officers / CEILING * 3 + 60
            while True:
                got = await _get(http, f"{url}/sandbox/counts", contains=TEXT)
                if len(got["per_chat"]) >= officers or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)  # polling the sandbox with a deadline
            await _drained(bus)  # notify has recorded what the bot reported: the end of the message's path
            cpu_after = cpu_by_process(pids)
            varz_after = await _get(http, f"{server.monitor_url}/varz")
            await asyncio.sleep(3)  # a late duplicate would show now
            got = await _get(http, f"{url}/sandbox/counts", contains=TEXT)
            stats = await _get(http, f"{url}/sandbox/stats")
            per_chat = got["per_chat"]
            sent = sum(per_chat.values())
            rate = (sent - 1) / (got["last_at"] - got["first_at"]) if sent > 1 else 0.0
            lost = officers - len(per_chat)
            duplicates = sent - len(per_chat)

            # --- the peer: a bare aiogram loop to the same chats through the same sandbox, limits on
            peer_cpu_ms = await _peer(url, [chat for email, _, chat in linked if not email.startswith("probe")])
            peer = await _get(http, f"{url}/sandbox/counts", contains=PEER_TEXT)
            peer_sent = sum(peer["per_chat"].values())
            peer_rate = (peer_sent - 1) / (peer["last_at"] - peer["first_at"]) if peer_sent > 1 else 0.0

            # --- roster change -> prompt in the chat, limits off
            async with http.post(f"{url}/sandbox/faults", json={"global_per_sec": 0, "per_chat_per_sec": 0}):
                pass
            latencies, stages = await _prompts(http, url, bus, settings, clock, rows=rows, probes=probes)
    finally:
        await bus.close()
        for proc in procs:
            stop_process(proc)
        server.stop()
    detail = {"officers": officers, "sent": sent, "rate_per_s": round(rate, 2), "rate_limited": stats["rate_limited"],
              "rate_limited_in_chat": stats["rate_limited_in_chat"],
              "telegram_limits": "on: 30/s per bot, 1/s per chat"}
    cpu_ms = {name: round((cpu_after[name] - cpu_before[name]) * 1000 / max(sent, 1), 2) for name in cpu_before}
    # what nats-server handled per delivered message (publishes, pulls, acks, in-progress notices; and what it sent)
    nats_per_message = {key: round((varz_after[key] - varz_before[key]) / max(sent, 1), 2)
                        for key in ("in_msgs", "out_msgs", "in_bytes", "out_bytes")}
    per_message = sum(cpu_ms.values())
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    latency_detail = {"samples": len(latencies), "telegram_limits": "off",
                      "stage_p50_ms": {name: round(percentile(v, 0.5), 1) for name, v in stages.items() if v}}
    return [
        result("fanout_rate_fraction_of_ceiling", rate / CEILING, "ratio", ">= 0.9", rate / CEILING >= 0.9, **detail),
        result("fanout_cpu_ms_per_message", per_message, "ms", "<= 10", per_message <= 10, by_process=cpu_ms,
               sent=sent, nats_per_message=nats_per_message, measured="/proc utime+stime from the request's publication until every consumer has caught up"),
        result("fanout_peer_fraction_of_ceiling", peer_rate / CEILING, "ratio", "informational", True,
               sent=peer_sent, cpu_ms_per_message=peer_cpu_ms,
               peer="a bare aiogram loop, at most 30 sends in any second, waiting out any 429, to the same chats"),
        result("fanout_lost", lost, "messages", "0", lost == 0, **detail),
        result("fanout_duplicates", duplicates, "messages", "0", duplicates == 0, **detail),
        result("rotation_to_prompt_p50_ms", p50, "ms", "<= 50", p50 <= 50, **latency_detail),
        result("rotation_to_prompt_p99_ms", p99, "ms", "<= 250", p99 <= 250, **latency_detail),
    ]


async def _prompts(http: aiohttp.ClientSession, url: str, bus: Bus, settings: Settings, clock: SystemClock, *,
                   rows: list[str], probes: dict[str, tuple[Any, int]]) -> tuple[list[float], dict[str, list[float]]]:
    """One probe at a time: move its planned end into the handover window, wait for its prompt. The
    latencies, and where each went, in ms: the roster's event stored in its stream (from `occurred_at`),
    notify's deliver command written (its `occurred_at`), that command stored, the prompt in the chat."""
    latencies: list[float] = []
    stages: dict[str, list[float]] = {"roster_event_stored": [], "deliver_written": [], "deliver_stored": [],
                                      "in_the_chat": []}
    today = clock.now().date()
    await _drained(bus)
    sub = await bus.js.subscribe("cmcoord.roster.deployment.ending_soon.v1", ordered_consumer=True)
    deliveries = await bus.js.subscribe(events.DeliverTelegram.subject(), ordered_consumer=True,
                                        deliver_policy=DeliverPolicy.NEW)
    try:
        for row in rows:
            start, _, zone = row.rsplit(",", 2)
            moved = f"{start},{today + timedelta(days=20)},{zone}"
            email = row.split(",")[1]
            person_id, chat = probes[email]
            await import_text(HEADER + moved + "\n", settings=settings, clock=clock)
            while True:  # the stream also holds the sample roster's own ending_soon events
                msg = await sub.next_msg(timeout=10)
                envelope = Envelope.from_bytes(msg.data)
                if envelope.data["person_id"] == str(person_id):
                    break
            command, deliver = await _deliver_command(deliveries, person_id)
            occurred = envelope.occurred_at
            waited = await _get(http, f"{url}/sandbox/chats/{chat}/wait", after=0, timeout=10)
            arrived = datetime.now(UTC)
            if waited:
                latencies.append((arrived - occurred).total_seconds() * 1000)
                if command is not None and deliver is not None:
                    marks = [occurred, msg.metadata.timestamp, deliver.occurred_at, command.metadata.timestamp, arrived]
                    for name, (a, b) in zip(stages, itertools.pairwise(marks), strict=True):
                        stages[name].append((b - a).total_seconds() * 1000)
    finally:
        await sub.unsubscribe()
        await deliveries.unsubscribe()
    return latencies, stages


async def _deliver_command(deliveries: Any, person_id: Any) -> tuple[Any, Envelope | None]:
    """Notify's deliver command for the person, as stored in its stream; (None, None) if none came in 10 s
    (the prompt is still timed, without its stages)."""
    deadline = time.monotonic() + 10
    while (left := deadline - time.monotonic()) > 0:
        try:
            command = await deliveries.next_msg(timeout=left)
        except nats.errors.TimeoutError:
            break
        deliver = Envelope.from_bytes(command.data)
        if deliver.data["person_id"] == str(person_id):
            return command, deliver
    return None, None


async def _drained(bus: Bus) -> None:
    """Steady state: notify has worked through the roster's events (the big import's, the fan-out's),
    and the bot through the messages they made; a figure measured behind that backlog would time the
    backlog."""
    deadline = time.monotonic() + 300
    drained = (("ROSTER", "notify--on_facts"), ("NOTIFY", "notify--on_requests"), ("NOTIFY", "bot--on_deliver"),
               ("BOT", "notify--on_bot_reports"))
    while time.monotonic() < deadline:
        infos = [await bus.js.consumer_info(stream, durable) for stream, durable in drained]
        if all(info.num_pending == 0 and info.num_ack_pending == 0 for info in infos):
            return
        await asyncio.sleep(0.5)  # polling the consumers' lag with a deadline
    raise TimeoutError("the services did not work through their backlog in 300 s")


async def _peer(url: str, chats: list[int]) -> float:
    """The same messages sent by the simplest correct aiogram program: one after another, never more
    than 30 in any second by its own clock (a sliding window, as Telegram counts), a 429 waited out
    and the message sent again; its CPU ms per message."""
    bot = Bot(SANDBOX_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    cpu = time.process_time()
    sent: collections.deque[float] = collections.deque(maxlen=int(CEILING))
    try:
        for chat in chats:
            if len(sent) == sent.maxlen:  # the 30th send ago must be a second old (and a little: the network)
                await asyncio.sleep(max(0.0, sent[0] + 1.01 - time.monotonic()))  # the pace, not a synchronisation
            while True:
                try:
                    sent.append(time.monotonic())
                    await bot.send_message(chat, PEER_TEXT)
                    break
                except TelegramRetryAfter as err:
                    await asyncio.sleep(err.retry_after)
    finally:
        await bot.session.close()
    return round((time.process_time() - cpu) * 1000 / max(len(chats), 1), 2)
