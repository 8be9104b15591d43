"""Test helpers: waiting on conditions with a deadline, reading streams, processes."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from shared.events import Envelope
from shared.permissions import ADMIN
from shared.supervisor import IDENTITIES
from shared import topology

REPO = Path(__file__).resolve().parent.parent

NATS_PASSWORDS = {identity: f"{identity}-test-password" for identity in IDENTITIES}
ADMIN_AUTH = {"user": ADMIN, "password": NATS_PASSWORDS[ADMIN]}
TEST_ACK_WAIT = 5.0  # the durables' redelivery after a consumer died holding a message

# What a notification says in each language the services write (shared/locales), to find it in a
# chat whoever reads it: someone who never chose a language reads the roster's first one written
# here (the sample roster's ROWCA officers read French, ROMENA's Arabic).
HANDOVER_PROMPT = ("Time to write the handover note", "Il est temps de rédiger la note de passation",
                   "حان وقت كتابة مذكرة التسليم")
CALL_REMINDER = ("Will you join?", "Participerez-vous ?", "هل ستشارك؟")
AAR_REMINDER = ("Your after action review of", "Votre examen après action", "استعراض ما بعد الإجراء الخاص بك")


def nats_credentials_env() -> dict[str, str]:
    """Each identity's NATS user and password as its settings read them (CMCOORD_<IDENTITY>_NATS_…)."""
    env = {}
    for identity, password in NATS_PASSWORDS.items():
        env[f"CMCOORD_{identity.upper()}_NATS_USER"] = identity
        env[f"CMCOORD_{identity.upper()}_NATS_PASSWORD"] = password
    return env


async def declare_topology(url: str, *, replicas: int = 1, ack_wait: float = TEST_ACK_WAIT) -> None:
    """What `cmcoord nats-init` does, as the operator (with the tests' ack wait unless told otherwise)."""
    await topology.declare_topology(url, auth=ADMIN_AUTH, replicas=replicas, ack_wait=ack_wait)


async def eventually(
    predicate: Callable[[], Any | Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what or predicate}; last value {last!r}")
        await asyncio.sleep(interval)


async def reads_in(bus: Any, person_id: Any, locale: str) -> bool:
    """Whether the roster says `person_id` reads `locale` (what notify writes to them in)."""
    from shared.contracts.query import ask
    from shared.contracts.roster import RECIPIENTS, RecipientsRequest

    (found,) = (await ask(bus, RECIPIENTS, RecipientsRequest(person_ids=[person_id]), timeout=5)).root
    return bool(found.locale == locale)


async def stream_messages(js: JetStreamContext, stream: str) -> list[Any]:
    """Every message currently stored in `stream`, oldest first."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    out: list[Any] = []
    if not info.state.messages:
        return out
    for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
        try:
            out.append(await js.get_msg(stream, seq))
        except NotFoundError:
            continue
    return out


async def stream_events(js: JetStreamContext, stream: str, *, type_prefix: str = "") -> list[Envelope]:
    envelopes = [Envelope.from_bytes(m.data) for m in await stream_messages(js, stream)]
    return [e for e in envelopes if e.type.startswith(type_prefix)]


async def published(js: JetStreamContext, stream: str, type_prefix: str, n: int) -> list[Envelope]:
    """The events of this type on the stream once there are at least `n` (a service's relay publishes
    after the commit that wrote them, a moment later); more than `n` shows in the caller's exact check."""
    async def found() -> list[Envelope] | None:
        events = await stream_events(js, stream, type_prefix=type_prefix)
        return events if len(events) >= n else None

    result: list[Envelope] = await eventually(found, what=f"{n} {type_prefix} on {stream}")
    return result


def service_env(home: Path, nats_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMCOORD_")}
    env.update({"CMCOORD_HOME": str(home), "CMCOORD_NATS_URL": nats_url, "CMCOORD_LOG_FORMAT": "json"})
    env.update(nats_credentials_env())  # each settings class reads its own identity's
    env.update(extra)
    return env


def roster_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment a roster process or `cmcoord roster` command needs for these settings."""
    env = service_env(settings.home, settings.nats_url, **extra)
    if settings.database_url:
        env["CMCOORD_ROSTER_DATABASE_URL"] = settings.database_url
    return env


def start_service(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT,
                            cwd=REPO, start_new_session=True)


async def cli(*args: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    """Run `cmcoord ARGS` without blocking the test's event loop; (returncode, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli", *args, env=env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def stop_process(proc: subprocess.Popen[bytes], *, kill: bool = False, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def link_to_telegram(db_url: str, *, first_chat: int, at: Any) -> list[tuple[str, Any, int]]:
    """Every roster person linked to a Telegram chat (first_chat, first_chat + 1, ... in email order):
    [(email, person id, chat id)]. Test setup: registration itself is tested through the bot."""
    from sqlmodel import select

    from services.roster.models import Person, TelegramLink
    from shared.store import Database

    db = Database(db_url)
    async with db.write() as session:
        people = sorted((await session.exec(select(Person))).all(), key=lambda p: p.email)
        session.add_all([TelegramLink(person_id=p.id, telegram_user_id=first_chat + i, linked_at=at)
                         for i, p in enumerate(people)])
    await db.dispose()
    return [(p.email, p.id, first_chat + i) for i, p in enumerate(people)]


async def mark_started(sandbox_url: str, chat_ids: Any) -> None:
    """These users pressed Start earlier: the sandbox lets the bot write to them (Telegram answers
    "chat not found" to a chat that never started the bot)."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(f"{sandbox_url}/sandbox/users",
                                                           json={"started": [int(c) for c in chat_ids]}) as resp:
        assert resp.status == 200, await resp.text()
