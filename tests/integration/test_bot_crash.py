"""kill -9 of the bot in the middle of handling a message: handled after restart, once."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from services.roster.bootstrap import RosterApp
from services.roster.config import Settings
from shared.bus import Bus
from shared.clock import ManualClock
from shared.contracts.roster import PersonByTelegramRequest
from shared.natsserver import NatsServer, free_port
from tests.helpers import eventually, service_env, start_service, stop_process
from tests.integration.telegram_users import User, invite

pytestmark = pytest.mark.field  # a kill -9 mid-handler: `make test-field` (CI runs it), apart from `make test`


async def test_kill_9_mid_handler_then_handled_once_after_restart(
    tmp_path: Path, nats_server: NatsServer, sandbox_url: str, roster: RosterApp,
    roster_people: None, roster_settings: Settings, clock: ManualClock, bus: Bus,
) -> None:
    officer = User(sandbox_url, 9101)
    env = service_env(tmp_path / "bot-home", nats_server.url, CMCOORD_SANDBOX_URL=sandbox_url,
                      CMCOORD_BOT_HEALTH_PORT=str(free_port()), CMCOORD_BOT_POLL_TIMEOUT_SECONDS="1")
    bot = start_service("services.bot", env, tmp_path / "bot.log")
    try:
        await officer.reply_to(f"/start {await invite(roster_settings, clock, 'o1@ocha.example')}", timeout=30)

        # A roster replica that takes the next contacts query and never answers: the
        # bot is then certainly inside the handler when it is killed.
        held: list[Any] = []
        hold = asyncio.Event()

        async def slow(msg: Any) -> None:
            held.append(json.loads(msg.data))
            hold.set()

        async def who(msg: Any) -> None:  # identity lookups still answered, by the roster's own code
            card = await roster.parts.queries.person_by_telegram(  # type: ignore[union-attr]
                PersonByTelegramRequest.model_validate_json(msg.data))
            await msg.respond(card.model_dump_json().encode())

        await roster.query_service.stop()  # type: ignore[union-attr]  # only the stand-in answers now
        subs = [await bus.nc.subscribe("cmcoord.roster.svc.contacts", cb=slow),
                await bus.nc.subscribe("cmcoord.roster.svc.person_by_telegram", cb=who)]
        before = len(await officer.messages())
        await officer.send("/contacts Mali")
        await asyncio.wait_for(hold.wait(), 20)
        stop_process(bot, kill=True)
        for sub in subs:
            await sub.unsubscribe()
        roster.query_service = await roster.parts.queries.serve(roster.bus.nc, version="0.1.0")  # type: ignore[union-attr]

        bot = start_service("services.bot", env, tmp_path / "bot-restarted.log")
        reply = await eventually(lambda: _nth(officer, before), timeout=30, what="the answer after restart")
        assert "1–5 of 7" in reply["text"]
        # once the restarted bot has confirmed the update, nothing can bring it back
        await eventually(lambda: _confirmed(sandbox_url), timeout=15, what="update confirmed")
        assert len(await officer.messages()) == before + 1
        assert held == [{"query": "Mali", "offset": 0, "limit": 5}]
    finally:
        stop_process(bot)


async def _confirmed(url: str) -> bool:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{url}/sandbox/stats") as resp:
        return (await resp.json())["pending_updates"] == 0


async def _nth(user: User, n: int) -> dict[str, Any] | None:
    found = await user.messages()
    return found[n] if len(found) > n else None
