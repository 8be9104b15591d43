from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from services.roster import bootstrap
from services.roster.admin import import_text
from services.roster.config import Settings as RosterSettings
from services.roster.samples import generate
from shared.bus import Bus
from shared.clock import ManualClock
from shared.natsserver import FREE_PORTS_ENV, NatsServer, free_port, port_share
from shared.permissions import authorization
from tests.helpers import ADMIN_AUTH, NATS_PASSWORDS, declare_topology, nats_credentials_env
from tests.postgres import PostgresCluster, pg_bindir

TODAY = date(2026, 3, 2)
_HOG: list[subprocess.Popen[bytes]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-hog", action="store_true",
                     help="keep one core busy for the whole run (a spinning process): the suite must pass on a "
                          "machine whose other work takes a core (`make test-loaded`)")


def pytest_configure(config: pytest.Config) -> None:
    worker = getattr(config, "workerinput", None)  # pytest-xdist's workers have it, the controller does not
    if worker is None:  # one hog for the run, whatever the workers
        if config.getoption("--cpu-hog"):
            _HOG.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        return
    # Each worker picks its servers' ports in a share of the range of its own (and so do the processes it
    # starts): a port another worker found free and has not bound yet is never found free here too, and a
    # server can never take another worker's server, listening on the port it failed to bind, for its own.
    index, count = int(worker["workerid"].removeprefix("gw")), int(worker["workercount"])
    os.environ[FREE_PORTS_ENV] = port_share(index, count)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _HOG:
        hog = _HOG.pop()
        hog.kill()
        hog.wait()


def pytest_report_header(config: pytest.Config) -> str | None:
    return "cpu hog: one core kept busy by a spinning process" if config.getoption("--cpu-hog") else None


@pytest.fixture(autouse=True, scope="session")
def _config_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`cmcoord up` records its home in the user's config folder (XDG_CONFIG_HOME): the tests' processes
    record theirs in a folder of their own, and never read the one of whoever runs them."""
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))


@pytest.fixture
def nats_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every identity's NATS user and password in the environment, where each service's settings
    read its own (CMCOORD_<SERVICE>_NATS_USER, _PASSWORD), as in production."""
    for name, value in nats_credentials_env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def nats_server(tmp_path: Path, nats_credentials: None) -> AsyncIterator[NatsServer]:
    """The production permissions (shared/permissions.py) with test passwords, and the topology
    declared as `cmcoord nats-init` does: every service in the test works under its own user."""
    server = NatsServer(store_dir=tmp_path / "nats" / "jetstream", name="test", log_file=tmp_path / "nats.log",
                        extra_config=authorization(NATS_PASSWORDS)).start()
    await declare_topology(server.url)
    yield server
    server.stop()


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    """A connection with the operator's identity (it may publish as any service, as tests do)."""
    b = await Bus.open(nats_server.url, source="test", patience=10, auth=ADMIN_AUTH)
    yield b
    await b.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(TODAY.year, TODAY.month, TODAY.day, 9, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bindir = pg_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries missing: `make test` installs the postgresql package")
        pytest.skip("PostgreSQL server binaries not installed (make test installs them)")
    # not under pytest's 0700 temp folder: the server runs as the postgres user
    root = Path(tempfile.mkdtemp(prefix="cmcoord-pg-"))
    cluster = PostgresCluster(root=root, bindir=bindir).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The roster store's database: SQLite unless a test module parametrizes it."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
async def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        return await cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")
    return ""


@pytest.fixture
def roster_settings(tmp_path: Path, nats_server: NatsServer, database_url: str) -> RosterSettings:
    return RosterSettings(
        database_url=database_url,
        home=tmp_path / "home",
        nats_url=nats_server.url,
        health_port=free_port(),
        scan_interval_seconds=3600,
        max_deliver=3,
    )


@pytest.fixture
async def roster(roster_settings: RosterSettings, clock: ManualClock, bus: Bus) -> AsyncIterator[bootstrap.RosterApp]:
    app = bootstrap.build(roster_settings, clock=clock)
    await app.start()
    for consumer in app.consumers:
        await consumer.wait_bound()
    yield app
    await app.stop()


@pytest.fixture
async def sample_roster(roster_settings: RosterSettings, clock: ManualClock) -> str:
    """The 60-person demo roster imported (dated from the test's today)."""
    text = generate(people=60, today=clock.now().date())
    _, errors, _ = await import_text(text, settings=roster_settings, clock=clock, publish=False)
    assert errors == []
    return text


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    """The Telegram sandbox on a free port, with Telegram's default limits."""
    from aiohttp import web

    from services.sandbox.app import build_app
    from services.sandbox.state import Faults, Sandbox

    port = free_port()
    runner = web.AppRunner(build_app(Sandbox(bot_username="CMCoordHubBot", faults=Faults())))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
