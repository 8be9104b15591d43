"""`cmcoord up`: the embedded stack on one machine.

Starts the real nats-server (JetStream under $CMCOORD_HOME, loopback only),
then each service as its own process; prints the URLs and one `ready` line
once every service answers /readyz; restarts a service that crashes, and
nats-server too (same store folder, same ports: the services reconnect by
themselves), and restarts nats-server when JetStream has been stuck on a write
error (disk full) for a while and there is room again; stops everything on
Ctrl-C or SIGTERM. Services are launched by module name, so this
file imports none of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.bus import OWNERS
from shared.natsserver import NatsServer, jetstream_room_after_start, jetstream_write_errors
from shared.permissions import ADMIN, authorization
from shared.settings import nats_secret_file, secret_file
from shared.topology import declare_topology

MIB = 1024 * 1024


class UpSettings(BaseSettings):
    """`cmcoord up`'s own knobs, prefix CMCOORD_UP_."""

    model_config = SettingsConfigDict(env_prefix="CMCOORD_UP_", extra="ignore")

    nats_write_error_restart_seconds: float = Field(
        default=15.0, gt=0, description="how long nats-server's /healthz reports a JetStream write error before it "
        "is restarted (doubled for each such restart within 10 minutes, up to 32x)")
    nats_restart_room_mb: float = Field(
        default=16.0, ge=0, description="restart only once JetStream would have this much room after the restart "
        "(3/4 of the free space under its store, less what the streams hold): on a still-full disk it waits")
    ready_timeout_seconds: float = Field(
        default=300.0, gt=0, description="how long nats-server may take to listen, the streams to be declared, then "
        "every service to answer /readyz, each, before `up` stops what it started and says what is slow; a first "
        "start on a busy machine takes minutes")


class NotReady(Exception):
    """`cmcoord up` gave up starting: the message says what was slow and what it was waiting for."""


# What a /readyz check that is still false waits for, in words.
CHECK_WORDS = {"nats": "the NATS connection", "store": "its store", "consumers": "its NATS consumers",
               "queries": "its query service", "updates": "Telegram updates"}


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port_env: str | None = None  # the variable naming the port /readyz answers on, if not <NAME>_HEALTH_PORT
    port_offset: int = 0  # health port = base + offset: each service keeps its port as others are added


# Started in this order; health ports 8101 roster, 8102 notify, 8103 lessons, 8104 bot, 8105
# hns4d (each service's default).
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("roster", "services.roster", port_offset=0),
    ServiceSpec("notify", "services.notify", port_offset=1),
    ServiceSpec("lessons", "services.lessons", port_offset=2),
    ServiceSpec("hns4d", "services.hns4d", port_offset=4),
    ServiceSpec("bot", "services.bot", port_offset=3),
)
# The local Telegram stand-in, run when no TELEGRAM_BOT_TOKEN is set.
SANDBOX = ServiceSpec("sandbox", "services.sandbox", port_env="CMCOORD_SANDBOX_PORT")

STATE_FILE = "up.json"
IDENTITIES = (ADMIN, *OWNERS)  # the operator and each service


def nats_passwords(home: Path) -> dict[str, str]:
    """Each NATS identity's password, generated once and kept under `home/secrets` (folder 0700,
    files 0600): the same across restarts, read by `cmcoord` commands run against this stack."""
    passwords = {}
    for identity in IDENTITIES:
        path = nats_secret_file(home, identity)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        passwords[identity] = secret_file(path, lambda: secrets.token_urlsafe(24))
    return passwords


@dataclass
class Child:
    spec: ServiceSpec
    health_port: int
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    log_path: Path | None = None


@dataclass
class Supervisor:
    home: Path
    nats_port: int = 4222
    nats_http_port: int = 8222
    health_port_base: int = 8101
    sandbox_port: int | None = 8081  # None: a real Telegram token is set, no sandbox
    mail_port: int | None = 8025  # the sandbox's mail catcher (SMTP), which notify e-mails to; None: no e-mail
    public_port: int | None = 8091  # notify's public listener: calendar feeds and the e-mails' answer links
    services: tuple[ServiceSpec, ...] = SERVICES
    env: dict[str, str] = field(default_factory=dict)
    out: object = sys.stdout
    children: list[Child] = field(default_factory=list)
    nats: NatsServer | None = None
    nats_restarts: int = 0
    nats_started_at: float = 0.0
    settings: UpSettings = field(default_factory=UpSettings)
    nats_write_error_since: float | None = None  # monotonic: first /healthz with a JetStream write error
    nats_write_error_restarts: int = 0  # restarts for a write error in a row (within 10 minutes of each other)
    nats_write_error_restarted_at: float = 0.0
    nats_health_checked_at: float = 0.0
    nats_waiting_for_room: bool = False  # said once per outage
    passwords: dict[str, str] = field(default_factory=dict)  # NATS identity -> password (nats_passwords)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)  # type: ignore[call-overload]

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    def base_env(self) -> dict[str, str]:
        """What every process of this stack is told: data folder, NATS, sandbox."""
        env = dict(os.environ)
        env.update(self.env)
        env["CMCOORD_HOME"] = str(self.home)
        env["CMCOORD_NATS_URL"] = self.nats_url
        env.setdefault("CMCOORD_LOG_FORMAT", "json")
        if self.sandbox_port is not None:
            env["CMCOORD_SANDBOX_URL"] = self.sandbox_url
            if self.mail_port is not None:  # notify e-mails the sandbox's catcher (unless told another server)
                env["CMCOORD_SANDBOX_SMTP_PORT"] = str(self.mail_port)
                if "CMCOORD_NOTIFY_SMTP_HOST" not in env:
                    env.update({"CMCOORD_NOTIFY_SMTP_HOST": "127.0.0.1", "CMCOORD_NOTIFY_SMTP_PORT": str(self.mail_port),
                                "CMCOORD_NOTIFY_SMTP_STARTTLS": "false"})
        if self.public_port is not None:
            env.setdefault("CMCOORD_NOTIFY_CALENDAR_PORT", str(self.public_port))
        return env

    def child_env(self, child: Child) -> dict[str, str]:
        """The base environment, less every other identity's settings (its NATS password,
        database URL, the bot token: `CMCOORD_<OTHER>_…`, `TELEGRAM_BOT_TOKEN`), plus this
        service's own NATS user and password."""
        others = [f"CMCOORD_{name.upper()}_" for name in IDENTITIES if name != child.spec.name]
        env = {k: v for k, v in self.base_env().items()
               if not k.startswith(tuple(others)) and (child.spec.name == "bot" or k != "TELEGRAM_BOT_TOKEN")}
        if child.spec.name in self.passwords:
            env[f"CMCOORD_{child.spec.name.upper()}_NATS_USER"] = child.spec.name
            env[f"CMCOORD_{child.spec.name.upper()}_NATS_PASSWORD"] = self.passwords[child.spec.name]
        env[child.spec.port_env or f"CMCOORD_{child.spec.name.upper()}_HEALTH_PORT"] = str(child.health_port)
        if child.spec.port_env is None:  # a service: its store follows its migrations (a store from before is adopted)
            env.setdefault(f"CMCOORD_{child.spec.name.upper()}_MIGRATE_ON_START", "true")
        return env

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    async def start_child(self, child: Child) -> None:
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        child.log_path = logs / f"{child.spec.name}.log"
        log_file = open(child.log_path, "ab")  # noqa: SIM115 - handed to the child process
        child.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", child.spec.module, env=self.child_env(child), stdout=log_file, stderr=log_file
        )
        log_file.close()
        child.started_at = time.monotonic()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until every child answers /readyz; NotReady naming the slow ones and what each waits for
        after `timeout` (the ready timeout setting), or at once when one exits."""
        timeout = self.settings.ready_timeout_seconds if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pending = {c.spec.name: c for c in self.children}
        async with aiohttp.ClientSession() as http:
            while pending:
                for name, child in list(pending.items()):
                    if await _ready(http, child.health_port):
                        del pending[name]
                    elif child.process is not None and child.process.returncode is not None:
                        raise NotReady(f"{name} exited with code {child.process.returncode} before it was ready; "
                                       f"see {child.log_path}")
                if pending and time.monotonic() > deadline:
                    slow: dict[str, list[str]] = {}  # what they wait for -> who
                    for name, child in pending.items():
                        slow.setdefault(await _waiting_for(http, child), []).append(name)
                    raise NotReady(f"not ready after {timeout:g} s: "
                                   + "; ".join(f"{', '.join(names)} {why}" for why, names in slow.items())
                                   + f" (logs in {self.home / 'logs'}; CMCOORD_UP_READY_TIMEOUT_SECONDS or "
                                   "--ready-timeout gives more time)")
                if pending:
                    await asyncio.sleep(0.1)  # polling health endpoints with a deadline

    def write_state(self) -> None:
        state = {
            "nats_url": self.nats_url,
            "nats_monitor": f"http://127.0.0.1:{self.nats_http_port}",
            "nats_pid": self.nats.process.pid if self.nats is not None and self.nats.process is not None else None,
            "services": {
                c.spec.name: {"health": f"http://127.0.0.1:{c.health_port}", "pid": c.process.pid if c.process else None}
                for c in self.children
            },
            "supervisor_pid": os.getpid(),
        }
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2))

    async def run(self, *, after_ready: list[list[str]] | None = None, stop: asyncio.Event | None = None) -> int:
        """Until Ctrl-C or SIGTERM, or until `stop` is set when one is given (an embedding caller, a test).
        NotReady when the start takes longer than the ready timeout: what it started is stopped first."""
        self.home.mkdir(parents=True, exist_ok=True)
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        self.passwords = nats_passwords(self.home)
        self.nats = NatsServer(
            store_dir=self.home / "jetstream",
            port=self.nats_port,
            http_port=self.nats_http_port,
            name="cmcoord-embedded",
            log_file=self.home / "logs" / "nats-server.log",
            extra_config=authorization(self.passwords),  # the production permissions, generated passwords
        )
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        timeout = self.settings.ready_timeout_seconds
        try:
            await self.start_nats(timeout)
            self.children = [Child(spec, self.health_port_base + spec.port_offset) for spec in self.services]
            if self.sandbox_port is not None:
                self.children.insert(0, Child(SANDBOX, self.sandbox_port))
            for child in self.children:
                await self.start_child(child)
            await self.wait_ready()
            self.write_state()
            self.say(f"nats      {self.nats_url}  (monitoring http://127.0.0.1:{self.nats_http_port})")
            for child in self.children:
                self.say(f"{child.spec.name:<9} http://127.0.0.1:{child.health_port}/readyz  log {child.log_path}")
            if self.sandbox_port is not None:
                self.say(f"telegram  sandbox: open {self.sandbox_url}/ to chat with the bot as any user")
                if self.mail_port is not None:
                    self.say(f"mail      catcher: open {self.sandbox_url}/mail to read what notify e-mailed")
            for command in after_ready or []:
                proc = await asyncio.create_subprocess_exec(*command, env=self.base_env())
                await proc.wait()
            self.say(f"cmcoord ready (data in {self.home}; Ctrl-C stops)")
            await self.watch(stop)
        finally:
            await self.shutdown()
        return 0

    async def start_nats(self, timeout: float) -> None:
        """nats-server listening, then the streams declared, each within `timeout` (NotReady saying which not)."""
        assert self.nats is not None
        log = self.nats.log_file
        try:
            await asyncio.to_thread(self.nats.start, wait=timeout)
        except TimeoutError as exc:
            raise NotReady(f"nats-server not ready after {timeout:g} s: waiting for it to listen on port "
                           f"{self.nats_port}; see {log}") from exc
        except (OSError, RuntimeError) as exc:
            raise NotReady(f"nats-server did not start: {exc}; see {log}") from exc
        self.nats_started_at = time.monotonic()
        try:
            await asyncio.wait_for(self.init_topology(), timeout)
        except TimeoutError as exc:
            raise NotReady(f"nats-server not ready after {timeout:g} s: waiting for JetStream to take the streams "
                           f"and consumers; see {log}") from exc
        except Exception as exc:  # refused, or the connection lost: said in one line too
            raise NotReady(f"nats-server did not take the streams and consumers: {str(exc) or type(exc).__name__}; "
                           f"see {log}") from exc

    async def init_topology(self) -> None:
        """`cmcoord nats-init` for this stack, as the operator: the services only check."""
        await declare_topology(self.nats_url, auth={"user": ADMIN, "password": self.passwords[ADMIN]})

    async def watch(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as http:
            await self._watch(stop, http)

    async def _watch(self, stop: asyncio.Event, http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            await self.watch_nats(stop)
            await self.watch_nats_writes(stop, http)
            for child in self.children:
                proc = child.process
                if proc is not None and proc.returncode is not None:
                    child.restarts += 1
                    backoff = min(2 ** min(child.restarts, 5), 30) if time.monotonic() - child.started_at < 60 else 1
                    self.say(f"{child.spec.name} exited with code {proc.returncode}; restarting in {backoff}s")
                    await asyncio.sleep(backoff)
                    await self.start_child(child)
                    self.write_state()
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                pass

    async def watch_nats(self, stop: asyncio.Event) -> None:
        """nats-server gone (killed, crashed): start it again on the same store and ports,
        with back-off while it fails to come up (its ports may still be held a moment)."""
        nats = self.nats
        if nats is None or nats.process is None or nats.running:
            return
        self.nats_restarts += 1
        quick = time.monotonic() - self.nats_started_at < 60
        backoff = min(2 ** min(self.nats_restarts, 5), 30) if quick else 1
        self.say(f"nats-server exited with code {nats.process.returncode}; restarting in {backoff}s")
        await self.start_nats_again(stop, backoff)

    async def start_nats_again(self, stop: asyncio.Event, backoff: float) -> None:
        """Start nats-server on the same store and ports after `backoff` seconds, and
        again with a longer back-off while it fails to come up."""
        nats = self.nats
        assert nats is not None
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=backoff)  # back-off, cut short by Ctrl-C
                return
            except TimeoutError:
                pass
            try:
                await asyncio.to_thread(nats.start)
            except (OSError, RuntimeError, TimeoutError) as exc:
                backoff = min(backoff * 2, 30)
                self.say(f"nats-server did not start again ({exc}); retrying in {backoff}s")
                if nats.running:
                    await asyncio.to_thread(nats.stop)
                continue
            self.nats_started_at = time.monotonic()
            self.write_state()
            self.say(f"nats-server restarted on {self.nats_url}")
            return

    async def watch_nats_writes(self, stop: asyncio.Event, http: aiohttp.ClientSession) -> None:
        """A stream that hit a write error (disk full) stores nothing more until nats-server
        restarts, though the process stays up: its /healthz names the error. Restart it
        once that has lasted `nats_write_error_restart_seconds` and there is room again
        (a restart on a still-full disk would leave JetStream no storage at all)."""
        nats = self.nats
        now = time.monotonic()
        if nats is None or not nats.running or nats.monitor_url is None or now - self.nats_health_checked_at < 1.0:
            return
        self.nats_health_checked_at = now
        health = await _get_json(http, f"{nats.monitor_url}/healthz?details=true")
        if health is None:  # not answering: starting, or gone (watch_nats sees to that)
            return
        errors = jetstream_write_errors(health)
        if not errors:
            self.nats_write_error_since = None
            self.nats_waiting_for_room = False
            return
        if self.nats_write_error_since is None:
            self.nats_write_error_since = now
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            self.say(f"nats-server: {errors[0]}{more}; JetStream stores nothing more there until nats-server restarts")
        if now - self.nats_write_error_restarted_at > 600:
            self.nats_write_error_restarts = 0
        wait = self.settings.nats_write_error_restart_seconds * 2 ** min(self.nats_write_error_restarts, 5)
        if now - self.nats_write_error_since < wait:
            return
        jsz = await _get_json(http, f"{nats.monitor_url}/jsz")
        if jsz is None:
            return
        room = jetstream_room_after_start(nats.store_dir, int(jsz.get("storage") or 0))
        needed = self.settings.nats_restart_room_mb * MIB
        if room < needed:
            if not self.nats_waiting_for_room:
                self.nats_waiting_for_room = True
                self.say(f"nats-server restart waits for free space under {nats.store_dir}: JetStream would get "
                         f"{max(room, 0) / MIB:.1f} MiB, needs {needed / MIB:.1f} MiB")
            return
        self.nats_write_error_restarts += 1
        self.nats_write_error_restarted_at = now
        self.say(f"nats-server: JetStream write error for {now - self.nats_write_error_since:.0f}s and "
                 f"{room / MIB:.1f} MiB of room now; restarting nats-server")
        self.nats_write_error_since = None
        self.nats_waiting_for_room = False
        await asyncio.to_thread(nats.stop)
        await self.start_nats_again(stop, 0.5)

    async def shutdown(self) -> None:
        for child in self.children:
            if child.process is not None and child.process.returncode is None:
                child.process.terminate()
        for child in self.children:
            if child.process is not None:
                try:
                    await asyncio.wait_for(child.process.wait(), timeout=15)
                except TimeoutError:
                    child.process.kill()
                    await child.process.wait()
        if self.nats is not None:
            await asyncio.to_thread(self.nats.stop)
        state = self.home / STATE_FILE
        if state.exists():
            state.unlink()
        self.say("cmcoord stopped")


async def _get_json(http: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    """A monitoring endpoint's JSON body whatever the status (/healthz says 503 when unhealthy); None if it
    does not answer."""
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            body = await resp.json(content_type=None)
            return body if isinstance(body, dict) else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def _waiting_for(http: aiohttp.ClientSession, child: Child) -> str:
    """What a service not yet ready says it waits for (its /readyz), in a few words."""
    body = await _get_json(http, f"http://127.0.0.1:{child.health_port}/readyz")
    if body is None:
        return "not answering /readyz yet (still loading, or migrating a store)"
    if body.get("waiting"):
        return f"waiting for {body['waiting']}"
    checks = body.get("checks") or {}
    missing = [CHECK_WORDS.get(name, name) for name, ok in checks.items() if not ok]
    return "waiting for " + (", ".join(missing) if missing else "its start to finish")


async def _ready(http: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz", timeout=aiohttp.ClientTimeout(total=1)) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False
