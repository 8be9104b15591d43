"""`cmcoord up` as a user runs it: ready line, demo roster, status, crash restart, clean stop."""

import asyncio
import json
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from shared.natsserver import free_port
from tests.helpers import REPO, cli, eventually
from tests.integration.telegram_users import User


def free_block(n: int) -> int:
    """A port whose next n - 1 are free too (as far as can be known before they are used)."""
    while True:
        base = free_port()
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base


def up_ports() -> tuple[int, int, int]:
    """Ports for `cmcoord up`: the first of four health ports, nats-server's, the sandbox's; all apart."""
    health = free_block(4)  # roster, notify, lessons, bot: base + 0..3, all free (another test's port stops `up`)
    nats_port, sandbox = free_port(), free_port()
    while sandbox in range(health, health + 4) or nats_port in range(health, health + 4):
        nats_port, sandbox = free_port(), free_port()
    return health, nats_port, sandbox


def mail_ports(health: int) -> list[str]:
    """`cmcoord up`'s options for the mail catcher's port and notify's public listener's, free and apart."""
    mail, public = free_port(), free_port()
    while {mail, public} & set(range(health, health + 4)):
        mail, public = free_port(), free_port()
    return ["--mail-port", str(mail), "--public-port", str(public)]


async def test_up_demo_directory_status_restart_and_stop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMCOORD_")}
    env["CMCOORD_HOME"] = str(home)
    env.pop("TELEGRAM_BOT_TOKEN", None)
    health, nats_port, sandbox = up_ports()
    bot_secret = "bot-only-webhook-secret"  # a secret of one service, given to `up` by its operator
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli", "up", "--demo", "--nats-port", str(nats_port),
        "--nats-http-port", str(free_port()), "--health-port-base", str(health), "--sandbox-port", str(sandbox), *mail_ports(health),
        env={**env, "CMCOORD_BOT_WEBHOOK_SECRET": bot_secret}, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            lines.append(raw.decode().rstrip())

    reader = asyncio.create_task(read())
    try:
        await eventually(lambda: any(line.startswith("cmcoord ready") for line in lines), timeout=90, what="ready line")
        ready_at = next(i for i, line in enumerate(lines) if "cmcoord ready" in line)
        assert any(line.startswith("nats") and f":{nats_port}" in line for line in lines[:ready_at])
        assert any(line.startswith("roster") and f":{health}/readyz" in line for line in lines[:ready_at])
        assert any(line.startswith("imported: 60 new person") for line in lines[:ready_at])

        # the embedded server is authenticated: generated passwords, 0600 under the home folder
        secrets = home / "secrets"
        assert secrets.stat().st_mode & 0o777 == 0o700
        passwords = {}
        for identity in ("admin", "roster", "notify", "lessons", "bot"):
            path = secrets / f"nats-{identity}.password"
            assert path.stat().st_mode & 0o777 == 0o600
            passwords[identity] = path.read_text().strip()
        assert len(set(passwords.values())) == 5 and all(len(p) >= 24 for p in passwords.values())
        assert (home / "cmcoord-embedded.conf").stat().st_mode & 0o777 == 0o600
        # each child's environment holds its own secrets and no other's
        state = json.loads((home / "up.json").read_text())
        for service, info in state["services"].items():
            child_env = dict(item.split("=", 1) for item in
                             Path(f"/proc/{info['pid']}/environ").read_bytes().decode().split("\0") if "=" in item)
            held = {identity for identity, p in passwords.items() if p in child_env.values()}
            assert held == ({service} if service in passwords else set()), (service, held)
            assert (bot_secret in child_env.values()) == (service == "bot"), service
        code, _, err = await cli("nats-init", env={**env, "CMCOORD_NATS_URL": f"nats://127.0.0.1:{nats_port}",
                                                   "CMCOORD_ADMIN_NATS_PASSWORD": "wrong"})
        assert code == 1 and "cannot reach NATS" in err and "as admin" in err  # no way in without the password

        env["CMCOORD_NATS_URL"] = f"nats://127.0.0.1:{nats_port}"
        code, out, err = await cli("roster", "directory", "--format", "csv", env=env)
        assert code == 0, err
        rows = out.strip().splitlines()
        assert rows[0].startswith("name,email,phone") and len(rows) > 40

        code, out, _ = await cli("status", env=env)
        assert code == 0 and "roster    ready" in out and "notify    ready" in out and "bot       ready" in out
        assert "roster--on_handover_submitted" in out
        assert any(f"sandbox: open http://127.0.0.1:{sandbox}/" in line for line in lines[:ready_at])
        assert any(f"catcher: open http://127.0.0.1:{sandbox}/mail" in line for line in lines[:ready_at])

        # a person invites themself, registers through the sandbox and asks who to call in Mali
        email = next(row.split(",")[1] for row in rows[1:] if ",ML," in row)
        code, out, err = await cli("roster", "invite", email, env=env)
        assert code == 0, err
        token = out.strip().splitlines()[-1]  # the token alone, last
        user = User(f"http://127.0.0.1:{sandbox}", 4711)
        assert "Welcome" in (await user.reply_to(f"/start {token}"))["text"]
        assert ",ML," in "".join(rows) and "Mali" in (await user.reply_to("/contacts Mali"))["text"]

        # what the demo's campaigns tell people without Telegram goes to the mail catcher, links to answer with
        async def caught() -> list[str] | None:  # an alert to acknowledge (a handover prompt's button has no link)
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{sandbox}/sandbox/mail") as got:
                mails = await got.json()
            assert all(m["to"] and m["subject"].startswith("CMCoord Hub: ") for m in mails)
            return [link for m in mails for link in re.findall(r"http://127\.0\.0\.1:\d+/answer/\S+", m["text"])] or None

        links = await eventually(caught, timeout=60, what="a mail with an answer link in the catcher")
        async with aiohttp.ClientSession() as http, http.get(links[0]) as page:
            assert page.status == 200 and '<form method="post">' in await page.text()

        state = json.loads((home / "up.json").read_text())
        old_pid = state["services"]["roster"]["pid"]
        os.kill(old_pid, signal.SIGKILL)
        await eventually(lambda: any("roster exited with code -9; restarting" in line for line in lines), timeout=20)

        async def restarted_and_ready() -> bool:
            pid = json.loads((home / "up.json").read_text())["services"]["roster"]["pid"]
            code, out, _ = await cli("status", env=env)
            return pid != old_pid and code == 0

        await eventually(restarted_and_ready, timeout=60, interval=0.5, what="roster restarted")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        await reader
    assert code == 0
    assert lines[-1] == "cmcoord stopped"
    assert not (home / "up.json").exists()


async def test_up_too_slow_says_what_it_waits_for_in_one_line_and_stops_what_it_started(tmp_path: Path) -> None:
    home, config = tmp_path / "home", tmp_path / "config"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMCOORD_")}
    env.update(CMCOORD_HOME=str(home), XDG_CONFIG_HOME=str(config))
    env.pop("TELEGRAM_BOT_TOKEN", None)
    health, nats_port, sandbox = up_ports()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli", "up", "--ready-timeout", "2", "--nats-port", str(nats_port),
        "--nats-http-port", str(free_port()), "--health-port-base", str(health), "--sandbox-port", str(sandbox), *mail_ports(health),
        env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, err.decode()  # one line, no traceback
    assert lines[0].startswith(("error: not ready after 2 s: ", "error: nats-server not ready after 2 s: "))
    if "error: not ready" in lines[0]:  # the usual case: nats-server is up within 2 s, the services are not
        assert "waiting for" in lines[0] or "not answering /readyz yet" in lines[0]
        assert "--ready-timeout gives more time" in lines[0]
    assert out.decode().strip().splitlines()[-1] == "cmcoord stopped"
    for port in (nats_port, sandbox, *range(health, health + 4)):  # nats-server and every service stopped
        with socket.socket() as s:  # nobody listens there: the port can be bound again (connecting to a free port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # of the ephemeral range may reach itself)
            s.bind(("127.0.0.1", port))
    assert (config / "cmcoord" / "home").read_text().strip() == str(home.resolve())  # recorded for the commands


async def test_a_starting_service_says_on_readyz_what_it_waits_for(tmp_path: Path) -> None:
    """What `cmcoord up` names when a start takes too long: here, streams nobody declared yet."""
    import contextlib

    import aiohttp

    from shared.bus import Bus
    from shared.health import HealthServer
    from shared.natsserver import NatsServer
    from shared.service import topology_when_ready

    async def not_ready() -> dict[str, bool]:
        return {"nats": True, "consumers": False}

    server = NatsServer(store_dir=tmp_path / "jetstream", name="bare", log_file=tmp_path / "nats.log").start()
    health = HealthServer(service="lessons", host="127.0.0.1", port=0, readiness=not_ready)
    port = await health.start()
    bus = await Bus.open(server.url, source="lessons", patience=10)
    waiting = asyncio.create_task(topology_when_ready(bus, "lessons", health))
    try:
        async def said() -> str | None:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                return (await resp.json()).get("waiting") if resp.status == 503 else None

        text = await eventually(said, what="/readyz saying what the start waits for")
        assert text.startswith("NATS topology (missing: stream LESSONS; consumer ")
    finally:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await bus.close()
        await health.stop()
        server.stop()
