"""Fixtures of the bot tests: a small roster, and the bot itself on the sandbox."""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from services.bot import bootstrap as bot_bootstrap
from services.bot.config import Settings as BotSettings
from services.roster.bootstrap import RosterApp
from services.roster.cli import import_text
from services.roster.config import Settings
from shared.clock import ManualClock
from shared.natsserver import NatsServer, free_port

HEADER = "name,email,phone,organisation,country,duty_station,post_title,role,start,planned_end,hats\n"


@pytest.fixture
async def roster_people(roster_settings: Settings, clock: ManualClock) -> None:
    t = clock.now().date()
    s, e = t - timedelta(days=30), t + timedelta(days=150)
    rows = [f"Officer {i:02d} Diallo,o{i}@ocha.example,+223 70 00 00 {i:02d},OCHA,ML,Bamako,CMCoord Officer {i},"
            f"cmcoord_officer,{s},{e}," for i in range(1, 8)]
    rows.append(f"Ana <Test> & Co,ana@wfp.example,+227 1,WFP,NE,Niamey,Focal Point,focal_point,{s},{e},Access;HNS4D;PoC")
    _, errors, _ = await import_text(HEADER + "\n".join(rows) + "\n", settings=roster_settings, clock=clock, publish=False)
    assert errors == []


async def started_bot(home: Any, nats_url: str, sandbox_url: str, clock: Any = None) -> bot_bootstrap.BotApp:
    settings = BotSettings(home=home, nats_url=nats_url, sandbox_url=sandbox_url, health_port=free_port(),
                           poll_timeout_seconds=1)
    app = bot_bootstrap.build(settings, clock=clock)
    await app.start()
    return app


@pytest.fixture
async def bot_app(tmp_path: Any, nats_server: NatsServer, sandbox_url: str, roster: RosterApp,
                  roster_people: None) -> AsyncIterator[bot_bootstrap.BotApp]:
    app = await started_bot(tmp_path / "bot", nats_server.url, sandbox_url)
    yield app
    await app.stop()
