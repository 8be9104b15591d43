"""Fixtures of the integration tests: small rosters, and the bot itself on the sandbox."""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from services.bot import bootstrap as bot_bootstrap
from services.bot.bootstrap import BotApp
from services.bot.config import Settings as BotSettings
from services.roster.bootstrap import RosterApp
from services.roster.admin import import_text
from services.roster.config import Settings
from services.roster.models import Person, TelegramLink
from shared.clock import ManualClock
from shared.natsserver import NatsServer, free_port
from shared.store import Database
from tests.helpers import mark_started

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


# --- a small roster for notify: people with and without Telegram, an adviser and the desk ------------------
PEOPLE_HEADER = "name,email,phone,organisation,country,duty_station,post_title,role,start,planned_end,timezone\n"
PEOPLE = {  # email -> (Telegram user id or None, row)
    "awa@ocha.example": (9801, "Awa Traoré,awa@ocha.example,+223 1,OCHA,ML,Bamako,CMCoord Officer,cmcoord_officer"),
    "jean@ocha.example": (9802, ("Jean Ndiaye,jean@ocha.example,+221 1,OCHA,SN,Dakar,Regional CMCoord Adviser,"
                                 "regional_adviser")),
    "maria@ocha.example": (9803, "Maria Keller,maria@ocha.example,+41 1,OCHA,CH,Geneva,CMCS Desk Officer,cmcs_desk"),
    "somchai@ocha.example": (9804, ("Somchai Wong,somchai@ocha.example,+66 1,OCHA,TH,Bangkok,CMCoord Officer,"
                                    "cmcoord_officer")),
    "noone@ocha.example": (None, "Nadia Unlinked,noone@ocha.example,+227 1,OCHA,NE,Niamey,Focal Point,focal_point"),
}
ZONES = {"somchai@ocha.example": "Asia/Bangkok"}


async def import_people(roster_settings: Settings, clock: ManualClock, sandbox_url: str,
                        people: dict[str, tuple[int | None, str]] = PEOPLE,
                        zones: dict[str, str] = ZONES) -> dict[str, uuid.UUID]:
    """`people` imported (deployed from 100 days ago to 150 days ahead), those with a Telegram id linked
    and started in the sandbox; their ids by e-mail."""
    t = clock.now().date()
    rows = [f"{row},{t - timedelta(days=100)},{t + timedelta(days=150)},{zones.get(email, '')}"
            for email, (_, row) in people.items()]
    _, errors, _ = await import_text(PEOPLE_HEADER + "\n".join(rows) + "\n", settings=roster_settings, clock=clock,
                                     publish=False)
    assert errors == []
    db = Database(roster_settings.db_url)
    ids: dict[str, uuid.UUID] = {}
    async with db.write() as session:
        for person in (await session.exec(select(Person).where(col(Person.email).in_(list(people))))).all():
            ids[person.email] = person.id
            telegram = people[person.email][0]
            if telegram is not None:
                session.add(TelegramLink(person_id=person.id, telegram_user_id=telegram, linked_at=clock.now()))
    await db.dispose()
    await mark_started(sandbox_url, [t for t, _ in people.values() if t is not None])  # they pressed Start earlier
    return ids


@pytest.fixture
async def people(roster_settings: Settings, clock: ManualClock, sandbox_url: str) -> dict[str, uuid.UUID]:
    return await import_people(roster_settings, clock, sandbox_url)


@pytest.fixture
async def bot(tmp_path: Path, nats_server: NatsServer, sandbox_url: str, roster: RosterApp,
              clock: ManualClock) -> AsyncIterator[BotApp]:
    app = await started_bot(tmp_path / "bot", nats_server.url, sandbox_url, clock=clock)
    yield app
    await app.stop()
