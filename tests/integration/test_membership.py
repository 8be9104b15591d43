"""Membership follows the roster (issue 16), end to end: real nats-server, the roster, notify,
lessons and the bot on the sandbox, a clock the test sets.

- an officer whose end date the desk imported keeps the community's commands for the grace
  period, then loses contacts, calls, agendas (and counts no more as a member for lessons and
  messages to everyone) but still writes the after action review owed;
- `cmcoord roster revoke` unlinks at once, and the account is told;
- a new invitation makes the older one useless; linking another account tells the old one;
- an invitation opened from an account whose username is not the roster's is held for the
  CMCS desk, which is told and confirms it with `cmcoord roster confirm-link`.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from services.bot import bootstrap as bot_bootstrap
from services.bot.bootstrap import BotApp
from services.bot.callbacks import LessonStep
from services.bot.config import Settings as BotSettings
from services.bot.models import ConversationDraft
from services.lessons import bootstrap as lessons_bootstrap
from services.notify import bootstrap as notify_bootstrap
from services.roster.bootstrap import RosterApp
from services.roster.admin import import_text
from services.roster.config import Settings as RosterSettings
from shared.bus import Bus
from shared.clock import ManualClock
from shared.natsserver import NatsServer, free_port
from tests.helpers import cli, eventually, roster_env, stream_events
from tests.integration.conftest import PEOPLE, PEOPLE_HEADER
from tests.integration.telegram_users import User, invite
from tests.integration.test_lessons import (  # noqa: F401 (lessons, notify: the same fixtures)
    ANSWERS,
    _submitted,
    last_with_button,
    lessons,
    notify,
    press,
)

AWA, JEAN, MARIA = 9801, 9802, 9803  # officer in Mali, adviser of ROWCA, CMCS desk (linked by `people`)
JEAN_PHONE = "+221 1"  # what /contacts ROWCA shows of another officer


@pytest.fixture
async def uncached_bot(tmp_path: Path, nats_server: NatsServer, sandbox_url: str, roster: RosterApp,
                       clock: ManualClock) -> AsyncIterator[BotApp]:
    """A bot that asks the roster who writes on every update: what the test's clock changes shows at once."""
    app = bot_bootstrap.build(BotSettings(home=tmp_path / "bot", nats_url=nats_server.url, sandbox_url=sandbox_url,
                                          health_port=free_port(), poll_timeout_seconds=1, person_cache_seconds=0),
                              clock=clock)
    await app.start()
    yield app
    await app.stop()


async def said(user: User, text: str, needle: str, **extra: Any) -> str:
    """Send `text`; the first message after it that contains `needle` (other messages, such as
    reminders, may arrive in between)."""
    before = len(await user.messages())
    await user.send(text, **extra)

    async def found() -> str | None:
        return next((m["text"] for m in (await user.messages())[before:] if needle in (m["text"] or "")), None)

    return str(await eventually(found, what=f"{needle!r} after {text!r}"))


async def texts_with(user: User, needle: str) -> list[str] | None:
    return [m["text"] for m in await user.messages() if needle in (m["text"] or "")] or None


async def drafts_in(bot: BotApp) -> list[ConversationDraft]:
    async with bot.db.read() as session:
        return list((await session.exec(select(ConversationDraft))).all())


MEMBERS_ONLY = "that is for members of the CMCoord community"
NOT_REGISTERED = "ask the CMCS desk or your regional adviser for an invitation"


async def test_a_departed_officer_keeps_the_community_for_the_grace_period_then_only_their_duties(
    lessons: lessons_bootstrap.LessonsApp, uncached_bot: BotApp, roster: RosterApp, bus: Bus, sandbox_url: str,
    clock: ManualClock, people: dict[str, uuid.UUID], roster_settings: RosterSettings,
) -> None:
    awa_id = str(people["awa@ocha.example"])
    t = clock.now().date()
    # the desk imports her actual end date: she left yesterday
    row = f"{PEOPLE['awa@ocha.example'][1]},{t - timedelta(days=100)},{t + timedelta(days=150)},,{t - timedelta(days=1)}"
    _, errors, _ = await import_text(PEOPLE_HEADER.replace("\n", ",actual_end\n") + row + "\n",
                                     settings=roster_settings, clock=clock, publish=False)
    assert errors == []
    await roster.parts.scan.run_pass()  # the end is announced: lessons expects her AAR
    await eventually(lambda: stream_events(bus.js, "LESSONS", type_prefix="lessons.aar.due"), what="the AAR due")

    awa = User(sandbox_url, AWA)
    assert JEAN_PHONE in await said(awa, "/contacts ROWCA", "ROWCA")  # within the grace period: still a member
    rights = await bus.request("cmcoord.roster.svc.rights", {"person_id": awa_id})
    assert rights["member"] is True
    await said(awa, "/report", "What happened?")  # a report begun, its text kept as a draft
    await said(awa, "The ferry at Mopti has taken relief boats again since Tuesday.", "Where?")
    assert len(await drafts_in(uncached_bot)) == 1

    clock.advance(timedelta(days=roster_settings.member_grace_days + 1))  # the grace period is over
    seen = len(await awa.messages())
    for command in ("/contacts ROWCA", "/calls", "/agenda Access to Mopti since the bridge closed", "/lessons convoy",
                    "/hns4d"):
        answer = await said(awa, command, MEMBERS_ONLY)
        assert "/aar" in answer and "/handover" in answer and "/pending" in answer
    assert not any(JEAN_PHONE in (m["text"] or "") for m in (await awa.messages())[seen:])
    assert "/aar" in await said(awa, "/report", MEMBERS_ONLY)
    assert await drafts_in(uncached_bot) == []  # a report she can no longer send is not kept
    assert "/contacts" not in await said(awa, "/help", "What you can still do")
    assert "Awa Traoré" in await said(awa, "/me", "<b>You</b>")
    assert not await stream_events(bus.js, "BOT", type_prefix="bot.call.agenda_added")  # nothing reached notify

    # the roster says so to every service: lessons reads as the public, "everyone" leaves her out
    rights = await bus.request("cmcoord.roster.svc.rights", {"person_id": awa_id})
    assert rights["member"] is False
    everyone = await bus.request("cmcoord.roster.svc.recipients", {"linked": True})
    assert awa_id not in {r["person_id"] for r in everyone} and len(everyone) == 3  # Jean, Maria, Somchai
    by_id = await bus.request("cmcoord.roster.svc.recipients", {"person_ids": [awa_id]})
    assert by_id[0]["telegram_user_id"] == AWA and by_id[0]["member"] is False  # her own duties still reach her

    # her own duty is still hers: the after action review owed
    assert "1/5 What was planned?" in await said(awa, "/aar", "1/5")
    for answer, following in zip(ANSWERS, ("2/5", "3/5", "4/5", "5/5", "Themes"), strict=True):
        await said(awa, answer, following)
    themes = await eventually(lambda: last_with_button(awa, LessonStep(a="theme", v="hns4d")))
    await press(awa, themes, LessonStep(a="theme", v="hns4d"))
    await press(awa, themes, LessonStep(a="done"))
    classes = await eventually(lambda: last_with_button(awa, LessonStep(a="class", v="community")))
    await press(awa, classes, LessonStep(a="class", v="community"))
    await eventually(lambda: texts_with(awa, "your after action review is submitted"), what="the confirmation")
    await eventually(lambda: _submitted(lessons, people["awa@ocha.example"]), what="the AAR recorded")


async def test_revoke_unlinks_at_once_and_tells_the_account(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str,
    roster_settings: RosterSettings, people: dict[str, uuid.UUID],
) -> None:
    awa = User(sandbox_url, AWA)
    assert JEAN_PHONE in await said(awa, "/contacts ROWCA", "ROWCA")  # her card is kept by the bot meanwhile
    code, out, err = await cli("roster", "revoke", "awa@ocha.example", env=roster_env(roster_settings))
    assert code == 0, err
    assert f"Telegram account {AWA} is unlinked" in out and "event(s) published" in out
    told = await eventually(lambda: texts_with(awa, "no longer linked to the CMCoord roster"), what="Awa told")
    assert "CMCS desk removed the link" in told[0]
    unlinked = await stream_events(bus.js, "ROSTER", type_prefix="roster.telegram.unlinked")
    assert [(e.data["telegram_user_id"], e.data["reason"]) for e in unlinked] == [(AWA, "revoked")]
    answer = await said(awa, "/contacts ROWCA", NOT_REGISTERED)  # at once: the bot forgot her card
    assert JEAN_PHONE not in answer
    rights = await bus.request("cmcoord.roster.svc.rights", {"person_id": str(people["awa@ocha.example"])})
    assert rights["member"] is False
    code, out, _ = await cli("roster", "revoke", "awa@ocha.example", env=roster_env(roster_settings))
    assert code == 0 and "had no Telegram account linked" in out  # again: nothing more to do


async def test_a_new_invitation_revokes_the_old_one_and_a_new_account_tells_the_old(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    roster_settings: RosterSettings, people: dict[str, uuid.UUID],
) -> None:
    old = await invite(roster_settings, clock, "noone@ocha.example")
    new = await invite(roster_settings, clock, "noone@ocha.example")
    nadia = User(sandbox_url, 9901)
    assert "a newer one was sent to you" in (await nadia.reply_to(f"/start {old}"))["text"]
    assert (await nadia.reply_to(f"/start {new}"))["text"].startswith("Welcome, <b>Nadia Unlinked</b>")

    # Awa (linked to 9801) opens an invitation on a new phone: the link moves, and the old account hears of it
    phone = User(sandbox_url, 9902)
    welcome = await phone.reply_to(f"/start {await invite(roster_settings, clock, 'awa@ocha.example')}")
    assert welcome["text"].startswith("Welcome, <b>Awa Traoré</b>")
    told = await eventually(lambda: texts_with(User(sandbox_url, AWA), "linked to another Telegram account"),
                            what="the old account told")
    assert "tell the CMCS desk at once" in told[0]
    moved = await stream_events(bus.js, "ROSTER", type_prefix="roster.telegram.unlinked")
    assert [(e.data["telegram_user_id"], e.data["reason"]) for e in moved] == [(AWA, "moved")]
    assert NOT_REGISTERED in await said(User(sandbox_url, AWA), "/contacts ROWCA", NOT_REGISTERED)
    assert JEAN_PHONE in await said(phone, "/contacts ROWCA", "ROWCA")


async def test_a_link_from_another_username_is_held_until_the_desk_confirms_it(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    roster_settings: RosterSettings, people: dict[str, uuid.UUID],
) -> None:
    t = clock.now().date()  # the roster knows Nadia's Telegram username
    row = f"{PEOPLE['noone@ocha.example'][1]},{t - timedelta(days=100)},{t + timedelta(days=150)},,nadia_niamey"
    _, errors, _ = await import_text(PEOPLE_HEADER.replace("\n", ",telegram\n") + row + "\n",
                                     settings=roster_settings, clock=clock, publish=False)
    assert errors == []

    stranger = User(sandbox_url, 9911)  # someone else opens her invitation
    token = await invite(roster_settings, clock, "noone@ocha.example")
    held = await stranger.reply_to(f"/start {token}", username="not_nadia")
    assert "the CMCS desk will confirm the link first" in held["text"]
    assert NOT_REGISTERED in await said(stranger, "/contacts Niger", NOT_REGISTERED, username="not_nadia")
    assert NOT_REGISTERED in await said(stranger, "/hns4d", NOT_REGISTERED, username="not_nadia")
    desk = await eventually(lambda: texts_with(User(sandbox_url, MARIA), "Telegram link held for confirmation"),
                            what="the desk told")
    assert "Nadia Unlinked (noone@ocha.example)" in desk[0] and "@not_nadia" in desk[0]
    assert "@nadia_niamey" in desk[0] and "cmcoord roster confirm-link noone@ocha.example" in desk[0]
    assert "already used" in (await User(sandbox_url, 9912).reply_to(f"/start {token}"))["text"]  # spent

    # the desk checked with her: the account is hers after all
    code, out, err = await cli("roster", "confirm-link", "noone@ocha.example", env=roster_env(roster_settings))
    assert code == 0, err
    assert "Nadia Unlinked is linked to Telegram account 9911 @not_nadia" in out
    await eventually(lambda: texts_with(stranger, "The CMCS desk confirmed your Telegram account"),
                     what="the account told")
    assert "Nadia Unlinked" in await said(stranger, "/contacts Niger", "Niger")
    linked = await stream_events(bus.js, "ROSTER", type_prefix="roster.telegram.linked")
    assert [(e.data["telegram_user_id"], e.data["confirmed_by_desk"]) for e in linked] == [(9911, True)]
    code, _, err = await cli("roster", "confirm-link", "noone@ocha.example", env=roster_env(roster_settings))
    assert code == 1 and "no Telegram link waits for confirmation" in err

    # the username the roster has, in another case and with its @: linked at once
    jean = await invite(roster_settings, clock, "jean@ocha.example")
    row = (f"{PEOPLE['jean@ocha.example'][1]},{t - timedelta(days=100)},{t + timedelta(days=150)},,@Jean_Dakar")
    _, errors, _ = await import_text(PEOPLE_HEADER.replace("\n", ",telegram\n") + row + "\n",
                                     settings=roster_settings, clock=clock, publish=False)
    assert errors == []
    welcome = await User(sandbox_url, 9913).reply_to(f"/start {jean}", username="jean_dakar")
    assert welcome["text"].startswith("Welcome, <b>Jean Ndiaye</b>")
