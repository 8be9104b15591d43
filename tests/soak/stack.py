"""`cmcoord up --demo` on a shared clock that the test moves, with what a soak needs to
watch it: when the system has caught up with the clock, who got what, and at what cost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import nats
from sqlalchemy import func
from sqlmodel import col, select

from services.lessons.models import Aar
from services.notify.models import Notification
from services.roster.models import ScanClock
from shared.clock import SharedClock, shift_shared_clock
from shared.natsserver import free_port
from shared.settings import nats_secret_file
from shared.store import Database, OutboxMessage
from tests.helpers import REPO, eventually
from tests.integration.test_up import mail_ports, up_ports

SERVICES = ("roster", "notify", "lessons", "bot")


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    nats_port: int = 0
    sandbox_port: int = 0
    proc: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    offset: timedelta = timedelta(0)
    dbs: dict[str, Database] = field(default_factory=dict)
    up_args: tuple[str, ...] = ()  # more options of `cmcoord up` (training: --speed N)

    @classmethod
    def demo(cls, home: Path, **settings: str) -> Stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CMCOORD_")}
        env.pop("TELEGRAM_BOT_TOKEN", None)
        env.update({"CMCOORD_HOME": str(home), "CMCOORD_CLOCK_FILE": str(home / "clock"), "CMCOORD_LOG_FORMAT": "json",
                    **settings})
        return cls(home=home, env=env)

    @property
    def clock(self) -> SharedClock:
        return SharedClock(self.home / "clock")

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    async def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        shift_shared_clock(self.home / "clock", self.offset)
        health, self.nats_port, self.sandbox_port = up_ports()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shared.cli", "up", "--demo", "--nats-port", str(self.nats_port),
            "--nats-http-port", str(free_port()), "--health-port-base", str(health),
            "--sandbox-port", str(self.sandbox_port), *mail_ports(health), *self.up_args,
            env=self.env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
        asyncio.get_running_loop().create_task(self._read())
        await eventually(lambda: any(line.startswith("cmcoord ready") for line in self.lines), timeout=120,
                         what="cmcoord ready")
        await eventually(lambda: any(line.startswith("imported:") for line in self.lines), timeout=60,
                         what="the demo roster imported")
        self.dbs = {name: Database(f"sqlite+aiosqlite:///{self.home / f'{name}.db'}") for name in SERVICES}

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode().rstrip())

    async def stop(self) -> None:
        for db in self.dbs.values():
            await db.dispose()
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()

    def shift(self, delta: timedelta) -> datetime:
        """Every service's clock moves `delta` forward at once; returns the new time."""
        self.offset += delta
        shift_shared_clock(self.home / "clock", self.offset)
        return self.clock.now()

    def pids(self) -> dict[str, int]:
        state = json.loads((self.home / "up.json").read_text())
        return {name: int(s["pid"]) for name, s in state["services"].items()}

    # --- has the system caught up with the clock? -------------------------------------------------

    async def caught_up(self, now: datetime) -> bool:
        """The roster scanned at this time, notify and lessons have no step due, every outbox is
        published and every durable consumer has nothing pending or unacknowledged."""
        async with self.dbs["roster"].read() as session:
            scanned = (await session.exec(select(ScanClock.last_scan_at))).first()
        if scanned is None or scanned < now:
            return False
        if await self.oldest_due(now) is not None:
            return False
        async with self.dbs["lessons"].read() as session:  # AAR reminders and escalations due
            if (await session.exec(select(Aar.id).where(Aar.state == "open", col(Aar.next_at) <= now).limit(1))).first():
                return False
        for db in self.dbs.values():
            async with db.read() as session:
                unpublished = (await session.exec(select(func.count()).select_from(OutboxMessage).where(
                    col(OutboxMessage.published_at).is_(None)))).one()
            if unpublished:
                return False
        return await self.consumers_idle()

    async def oldest_due(self, now: datetime) -> datetime | None:
        async with self.dbs["notify"].read() as session:
            return (await session.exec(select(func.min(Notification.due_at)).where(
                col(Notification.due_at) <= now))).first()

    async def consumers_idle(self) -> bool:
        password = nats_secret_file(self.home, "admin").read_text().strip()  # `cmcoord up`'s operator
        nc = await nats.connect(self.nats_url, user="admin", password=password)
        try:
            js = nc.jetstream()
            for stream in await js.streams_info():
                for consumer in await js.consumers_info(stream.config.name):
                    if consumer.num_pending or consumer.num_ack_pending:
                        return False
            return True
        finally:
            await nc.close()

    # --- what people got ----------------------------------------------------------------------

    async def messages(self, http: aiohttp.ClientSession, chat: int) -> list[dict[str, Any]]:
        async with http.get(f"{self.sandbox_url}/sandbox/chats/{chat}/messages") as resp:
            return list(await resp.json())

    async def send(self, http: aiohttp.ClientSession, chat: int, text: str, *, username: str = "") -> None:
        """`text` from the Telegram user `chat` (with the @username the roster knows them by, if any)."""
        body = {"user_id": chat, "text": text, "username": username or None}
        async with http.post(f"{self.sandbox_url}/sandbox/send", json=body) as resp:
            assert resp.status == 200, await resp.text()

    async def press(self, http: aiohttp.ClientSession, chat: int, message_id: int, data: str) -> bool:
        """The button pressed; False when the message no longer has it (the bot took it off just
        before: a phone shows the message without it)."""
        async with http.post(f"{self.sandbox_url}/sandbox/press",
                             json={"user_id": chat, "message_id": message_id, "data": data}) as resp:
            if resp.status == 400 and "no such button" in await resp.text():
                return False
            assert resp.status == 200, await resp.text()
            return True

    async def faults(self, http: aiohttp.ClientSession, **faults: Any) -> None:
        async with http.post(f"{self.sandbox_url}/sandbox/faults", json=faults) as resp:
            assert resp.status == 200, await resp.text()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle_cpu_percent(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Each process's CPU use over `seconds` of wall time, in percent of one core."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    await asyncio.sleep(seconds)  # measuring a duration, not waiting for a condition
    elapsed = time.monotonic() - started
    return {name: round(100 * (cpu_seconds(pid) - before[name]) / elapsed, 2) for name, pid in pids.items()}


def log_exceptions(home: Path, services: Sequence[str] = SERVICES) -> list[str]:
    """Log lines of the services that carry an exception (a traceback): none is expected. Each is
    told by its event and the traceback's end, where the error is named."""
    found = []
    for name in services:
        path = home / "logs" / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        for number, line in enumerate(lines):
            if line.startswith("Traceback"):  # loose text: what follows, up to the next JSON line
                tail = [text for text in lines[number + 1:number + 60] if not text.startswith("{")]
                found.append(f"{name}: {' | '.join([*lines[max(0, number - 1):number + 1], *tail[-4:]])[:600]}")
            elif '"exception"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    found.append(f"{name}: {line[:600]}")
                    continue
                found.append(f"{name}: {record.get('event')}: ...{str(record.get('exception'))[-400:]}")
    return found
