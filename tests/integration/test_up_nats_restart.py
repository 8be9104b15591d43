"""`cmcoord up` watches nats-server too: killed with -9, it is started again on
the same store and ports, says so, the services are ready again, and a roster
change still reaches the officer's chat through notify and the bot."""

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from shared.natsserver import free_port
from tests.helpers import REPO, cli, eventually
from tests.integration.telegram_users import User
from tests.integration.test_up import mail_ports, up_ports

pytestmark = pytest.mark.field  # faults as the field brings them: `make test-field` (CI runs it), apart from `make test`

HEADER = "name,email,phone,organisation,country,duty_station,post_title,role,start,planned_end,timezone\n"


def midday_zone() -> str:
    """A zone where it is about noon now: notify holds non-urgent messages in quiet hours."""
    offset = max(-11, min(12, 12 - datetime.now(UTC).hour))
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}" if offset < 0 else "")


def roster_csv(today: date, end: date) -> str:
    return HEADER + (f"Awa Restart,awa.restart@ocha.example,,OCHA,ML,Bamako,CMCoord Officer,cmcoord_officer,"
                     f"{today - timedelta(days=30)},{end},{midday_zone()}\n")


async def test_nats_server_killed_is_restarted_and_events_flow_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMCOORD_")}
    env["CMCOORD_HOME"] = str(home)
    env.pop("TELEGRAM_BOT_TOKEN", None)
    health, nats_port, sandbox = up_ports()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli", "up", "--nats-port", str(nats_port),
        "--nats-http-port", str(free_port()), "--health-port-base", str(health), "--sandbox-port", str(sandbox), *mail_ports(health),
        env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            lines.append(raw.decode().rstrip())

    reader = asyncio.create_task(read())
    env["CMCOORD_NATS_URL"] = f"nats://127.0.0.1:{nats_port}"
    try:
        await eventually(lambda: any(line.startswith("cmcoord ready") for line in lines), timeout=90, what="ready line")
        today = datetime.now(UTC).date()
        roster_file = tmp_path / "roster.csv"
        roster_file.write_text(roster_csv(today, today + timedelta(days=120)))
        code, out, err = await cli("roster", "import", str(roster_file), env=env)
        assert code == 0, out + err
        code, out, err = await cli("roster", "invite", "awa.restart@ocha.example", env=env)
        assert code == 0, err
        token = out.strip().splitlines()[-1]  # the token alone, last
        officer = User(f"http://127.0.0.1:{sandbox}", 4712)
        assert "Welcome" in (await officer.reply_to(f"/start {token}", timeout=30))["text"]

        nats_pid = json.loads((home / "up.json").read_text())["nats_pid"]
        os.kill(nats_pid, signal.SIGKILL)
        killed_at = asyncio.get_running_loop().time()
        await eventually(lambda: any("nats-server exited with code -9; restarting" in line for line in lines),
                         timeout=20, what="the supervisor tells of the crash")
        await eventually(lambda: any(line.startswith("nats-server restarted on") for line in lines), timeout=60,
                         what="the supervisor restarts nats-server")
        assert json.loads((home / "up.json").read_text())["nats_pid"] != nats_pid

        async def all_ready() -> bool:
            code, out, _ = await cli("status", env=env)
            return code == 0 and all(f"{name:<9} ready" in out for name in ("roster", "notify", "lessons", "bot"))

        await eventually(all_ready, timeout=60, interval=0.5, what="every service ready again")
        ready_after = asyncio.get_running_loop().time() - killed_at

        # a roster change after the restart: the deployment now ends within the handover window
        before = len(await officer.messages())
        roster_file.write_text(roster_csv(today, today + timedelta(days=10)))
        code, out, err = await cli("roster", "import", str(roster_file), env=env)
        assert code == 0, out + err
        code, out, err = await cli("roster", "scan", env=env)
        assert code == 0, out + err

        async def prompted() -> bool:
            return len(await officer.messages()) > before

        await eventually(prompted, timeout=60, interval=0.5, what="the handover prompt in the officer's chat")
        print(f"nats-server killed: services ready again after {ready_after:.1f}s")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        await reader
    assert code == 0
    assert lines[-1] == "cmcoord stopped"
    assert not any("write error" in line for line in lines)  # a kill -9 is no JetStream write error
