"""NATS over TLS, as production runs it: a server requiring TLS with a certificate from the
operator's own CA. Every service connects with the CA (`CMCOORD_NATS_TLS_CA`) and does its work
under its own user; a client without the CA, or without TLS, is refused."""

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
import trustme
from nats.errors import Error as NatsError

from services.bot import bootstrap as bot_bootstrap
from services.bot.config import Settings as BotSettings
from services.lessons import bootstrap as lessons_bootstrap
from services.lessons.config import Settings as LessonsSettings
from services.notify import bootstrap as notify_bootstrap
from services.notify.config import Settings as NotifySettings
from services.roster.bootstrap import RosterApp
from shared.bus import Bus
from shared.clock import ManualClock
from shared.natsserver import NatsServer, free_port
from shared.permissions import authorization
from shared.topology import init_topology_when_ready
from tests.helpers import ADMIN_AUTH, NATS_PASSWORDS, TEST_ACK_WAIT
from tests.integration.telegram_users import User

AWA = 9801


@pytest.fixture
def ca_file(tmp_path: Path) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture
async def nats_server(tmp_path: Path, nats_credentials: None, ca_file: tuple[trustme.CA, Path],
                      monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[NatsServer]:
    """This module's server requires TLS; the services find the CA where production puts it."""
    ca, ca_path = ca_file
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    tls = f'tls {{\n  cert_file: "{cert_path}"\n  key_file: "{key_path}"\n  timeout: 5\n}}'
    server = NatsServer(store_dir=tmp_path / "nats" / "jetstream", name="tls", log_file=tmp_path / "nats.log",
                        extra_config=authorization(NATS_PASSWORDS) + tls).start()
    monkeypatch.setenv("CMCOORD_NATS_TLS_CA", str(ca_path))
    admin = await Bus.open(server.url, source="admin", patience=10, auth={**ADMIN_AUTH, "tls": _trusting(ca_path)})
    await init_topology_when_ready(admin.js, ack_wait=TEST_ACK_WAIT)
    await admin.close()
    yield server
    server.stop()


def _trusting(ca_path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_path))


@pytest.fixture
async def bus(nats_server: NatsServer, ca_file: tuple[trustme.CA, Path]) -> AsyncIterator[Bus]:
    b = await Bus.open(nats_server.url, source="test", patience=10, auth={**ADMIN_AUTH, "tls": _trusting(ca_file[1])})
    yield b
    await b.close()


async def test_every_service_connects_over_tls_and_a_client_without_the_ca_is_refused(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, roster: RosterApp, people: dict[str, Any],
    sandbox_url: str, clock: ManualClock,
) -> None:
    common: dict[str, Any] = {"nats_url": nats_server.url, "max_deliver": 3}
    notify = notify_bootstrap.build(NotifySettings(home=tmp_path / "n", health_port=free_port(), tick_seconds=0.2,
                                                   call_reminders=False, **common), clock=clock)
    lessons = lessons_bootstrap.build(LessonsSettings(home=tmp_path / "l", health_port=free_port(), tick_seconds=0.2,
                                                      **common), clock=clock)
    bot = bot_bootstrap.build(BotSettings(home=tmp_path / "b", sandbox_url=sandbox_url, health_port=free_port(),
                                          poll_timeout_seconds=1, **common), clock=clock)
    apps: list[Any] = [notify, lessons, bot]
    for app in apps:
        await app.start()
    try:
        for app in [roster, *apps]:
            assert "tls" in app.settings.nats_auth()  # the CA from CMCOORD_NATS_TLS_CA
            assert (await app.readiness())["nats"], type(app).__name__
        for consumer in [*notify.consumers, *lessons.consumers]:
            await consumer.wait_bound()
        awa = User(sandbox_url, AWA)
        assert "Awa Traoré" in (await awa.reply_to("/me"))["text"]  # bot -> roster, over TLS
        assert "Nothing found" in (await awa.reply_to("/lessons ferry"))["text"]  # bot -> lessons
    finally:
        for app in reversed(apps):
            await app.stop()

    # the server's certificate is not trusted without the operator's CA
    host_port = nats_server.url.removeprefix("nats://")
    with pytest.raises((NatsError, OSError, ssl.SSLError, TimeoutError)):
        await nats.connect(f"tls://{host_port}", user="roster", password=NATS_PASSWORDS["roster"],
                           allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3)
    # nor is a client that does not speak TLS at all
    with pytest.raises((NatsError, OSError, TimeoutError)):
        await nats.connect(nats_server.url, user="roster", password=NATS_PASSWORDS["roster"],
                           allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3)
