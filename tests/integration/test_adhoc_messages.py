"""The desk's and advisers' ad-hoc messages (issue 22), end to end: real nats-server with the
production permissions, the roster, notify and the bot on the sandbox, the real `cmcoord notify` CLI.

- `cmcoord notify send --region ROWCA` reaches the region's linked members; one acknowledges;
  `send-status` (and the adviser's `/send status`) show who acknowledged, who has not, who could
  not be reached;
- an adviser's `/send` to their region goes through region → text → urgent → confirm; an
  officer's is refused, and an adviser cannot send to another region.
"""

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiogram.fsm.storage.base import StorageKey
from sqlmodel import select

from services.bot.bootstrap import BotApp
from services.notify import bootstrap as notify_bootstrap
from services.notify.models import Notification
from shared import adhoc
from shared.bus import Bus
from shared.events import Envelope, NotificationRequested, ReplyButton
from shared.natsserver import NatsServer
from tests.helpers import NATS_PASSWORDS, cli, eventually, service_env, stream_events, stream_messages
from tests.integration.telegram_users import User
from tests.integration.test_lessons import notify  # noqa: F401 (the same fixture)
from tests.integration.test_membership import said, texts_with

AWA, JEAN, MARIA, SOMCHAI = 9801, 9802, 9803, 9804  # officer ML, adviser ROWCA, CMCS desk, officer TH


def notify_env(tmp_path: Path, nats_server: NatsServer) -> dict[str, str]:
    return service_env(tmp_path / "notify-home", nats_server.url)  # the notify fixture's home


def buttons(message: dict[str, Any]) -> dict[str, str]:
    return {b["text"]: b["callback_data"] for row in (message["reply_markup"] or {}).get("inline_keyboard", [])
            for b in row}


async def last_with(user: User, needle: str) -> dict[str, Any] | None:
    return next((m for m in reversed(await user.messages()) if needle in (m["text"] or "")), None)


async def acknowledge(user: User, ref: str) -> None:
    message = await eventually(lambda: last_with(user, ref), what=f"{ref} delivered")
    await user.press(message["message_id"], buttons(message)["Acknowledge"])


async def test_the_desk_sends_to_a_region_and_sees_who_acknowledged(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, tmp_path: Path,
    nats_server: NatsServer, people: dict[str, uuid.UUID],
) -> None:
    env = notify_env(tmp_path, nats_server)
    code, out, err = await cli("notify", "send", "--region", "ROWCA", "--text", "Convoys to Mopti: hold until "
                               "further notice.", env=env)
    assert code == 0, err
    assert "Sent to 3 people in ROWCA" in out  # Awa and Jean linked, Nadia not
    ref = out.strip().splitlines()[-1]
    assert ref.startswith("M-")

    awa, jean = User(sandbox_url, AWA), User(sandbox_url, JEAN)
    told = await eventually(lambda: texts_with(jean, ref), what="Jean told")
    assert "Message from the CMCS desk to everyone in ROWCA" in told[0] and "hold until further notice" in told[0]
    await acknowledge(awa, ref)

    async def status() -> str | None:
        code, out, _ = await cli("notify", "send-status", ref, env=env)
        return out if code == 0 and "acknowledged 1," in out else None

    out = await eventually(status, timeout=30, interval=0.5, what="the acknowledgement counted")
    assert "recipients 3, sent 2, acknowledged 1, pending 1, unreachable 1" in out
    assert "acknowledged: Awa Traoré" in out and "pending: Jean Ndiaye" in out and "unreachable: Nadia Unlinked" in out
    assert not await texts_with(User(sandbox_url, SOMCHAI), ref)  # ROAP: not addressed

    # the region's adviser sees the same figures in the bot; an officer does not
    figures = await said(jean, f"/send status {ref}", "Acknowledged:")
    assert "Acknowledged: Awa Traoré" in figures and "Pending: Jean Ndiaye" in figures
    assert "Unreachable: Nadia Unlinked" in figures
    assert "CMCS desk can send" in await said(awa, f"/send status {ref}", "/send")

    # to a role in the region, and to everyone linked: notify resolves the audience
    code, out, err = await cli("notify", "send", "--region", "ROWCA", "--role", "regional_adviser", "--urgent",
                               "--text", "Advisers only: call the desk.", env=env)
    assert code == 0 and "the regional_adviser holders in ROWCA (urgent)" in out, err
    advisers = out.strip().splitlines()[-1]
    code, out, err = await cli("notify", "send", "--everyone", "--from", "Maria Keller", "--text", "Roster check.",
                               env=env)
    assert code == 0, err
    everyone = out.strip().splitlines()[-1]
    await eventually(lambda: texts_with(jean, advisers), what="the adviser told")
    await eventually(lambda: texts_with(User(sandbox_url, SOMCHAI), everyone), what="everyone told")
    code, out, _ = await cli("notify", "send-status", advisers, env=env)
    assert "ROWCA  urgent" in out and "recipients 1," in out and "Jean Ndiaye" in out
    code, out, _ = await cli("notify", "send-status", everyone, "--format", "json", env=env)
    assert code == 0 and json.loads(out)["region"] is None and json.loads(out)["total"] == 4  # the linked members

    code, _, err = await cli("notify", "send-status", "M-00000000", env=env)
    assert code == 1 and "no message M-00000000" in err
    code, _, err = await cli("notify", "send", "--region", "Atlantis", "--text", "x", env=env)
    assert code != 0 and "unknown region" in err


async def test_an_adviser_sends_to_their_region_and_an_officer_is_refused(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    awa, jean = User(sandbox_url, AWA), User(sandbox_url, JEAN)
    refused = await said(awa, "/send", "/send")
    assert "Only regional advisers (to their region) and the CMCS desk" in refused
    assert "Which region?" not in refused

    assert "ROWCA" in await said(jean, "/send", "Which region?")
    assert "your own region only: ROWCA" in await said(jean, "ROAP", "own region only")
    await said(jean, "rowca", "Write the message")
    await said(jean, "Security meeting moved to Thursday 10:00.", "Urgent?")
    question = await eventually(lambda: last_with(jean, "Urgent?"))
    await jean.press(question["message_id"], buttons(question)["Urgent"])
    confirm = await eventually(lambda: last_with(jean, "To: ROWCA (urgent)"), what="the confirmation")
    assert "Security meeting moved" in confirm["text"]
    assert bot.parts.poller is not None
    storage, key = bot.parts.poller.dp.storage, StorageKey(bot_id=bot.parts.bot.id, chat_id=JEAN, user_id=JEAN)
    asked = await storage.get_state(key), await storage.get_data(key)
    await jean.press(confirm["message_id"], buttons(confirm)["Send"])
    sent = await eventually(lambda: last_with(jean, "Reference M-"), what="sent")
    assert "Sent to 3 people in ROWCA" in sent["text"]

    # the confirmation replayed with the conversation as it was (the bot died before clearing it): the same message
    await storage.set_state(key, asked[0])
    await storage.set_data(key, asked[1])
    await jean.press(confirm["message_id"], buttons(confirm)["Send"])

    async def twice() -> list[str] | None:
        found = await texts_with(jean, "Reference M-")
        return found if found and len(found) == 2 else None

    again = await eventually(twice, what="sent again")
    assert again[0] == again[1] == sent["text"]  # the same reference, so the same events: dropped as copies

    told = await eventually(lambda: texts_with(awa, "Security meeting moved"), what="Awa told")
    assert "Jean Ndiaye (regional adviser)" in told[0]
    requests = await stream_events(bus.js, "NOTIFY", type_prefix="notify.notification.requested")
    assert [(e.source, e.data["kind"], e.data["urgent"]) for e in requests] == [("bot", "adhoc.message", True)]


async def test_notify_dead_letters_what_the_bot_may_not_request(
    notify: notify_bootstrap.NotifyApp, bus: Bus, nats_server: NatsServer, people: dict[str, uuid.UUID],
) -> None:
    """A bot bug or a stolen bot credential: notify takes only /send's ad-hoc messages from the bot."""
    as_bot = await Bus.open(nats_server.url, source="bot", patience=10,
                            auth={"user": "bot", "password": NATS_PASSWORDS["bot"]})
    forged = [NotificationRequested(kind="post.gapped", about="x", text="Go home.", everyone=True),
              NotificationRequested(kind=adhoc.KIND, about="M-0000AAAA", text="t", role="cmcoord_officer",
                                    region="ROWCA", buttons=[adhoc.ACKNOWLEDGE]),
              NotificationRequested(kind=adhoc.KIND, about="M-0000BBBB", text="t", everyone=True,
                                    buttons=[ReplyButton(label="Join", reply="join")])]
    try:
        for request in forged:
            await as_bot.publish(Envelope.wrap(request, source="bot", occurred_at=datetime.now(UTC)))
    finally:
        await as_bot.close()

    async def refused() -> list[Any] | None:
        found = [m for m in await stream_messages(bus.js, "DEADLETTER")
                 if m.headers["Cmcoord-Original-Subject"] == NotificationRequested.subject()]
        return found if len(found) == len(forged) else None

    dead = await eventually(refused, what="the forged requests dead-lettered")
    assert any("not post.gapped" in m.headers["Cmcoord-Reason"] for m in dead)
    async with notify.db.read() as session:
        assert not (await session.exec(select(Notification))).all()


async def test_notify_dead_letters_a_request_of_another_service_s_kind(
    notify: notify_bootstrap.NotifyApp, bus: Bus, nats_server: NatsServer, people: dict[str, uuid.UUID],
) -> None:
    """lessons may ask notify to tell people, but not in HNS4D's name: pressed, such a review would send a
    humanitarian notification nobody reviewed."""
    as_lessons = await Bus.open(nats_server.url, source="lessons", patience=10,
                                auth={"user": "lessons", "password": NATS_PASSWORDS["lessons"]})
    forged = NotificationRequested(kind="hns4d.review", about=str(uuid.uuid4()), text="t",
                                   person_ids=[people["awa@ocha.example"]],
                                   buttons=[ReplyButton(label="Send to the parties", reply="send")])
    try:
        await as_lessons.publish(Envelope.wrap(forged, source="lessons", occurred_at=datetime.now(UTC)))
    finally:
        await as_lessons.close()

    async def refused() -> list[Any] | None:
        return [m for m in await stream_messages(bus.js, "DEADLETTER")
                if "lessons may not ask for hns4d.review" in m.headers["Cmcoord-Reason"]] or None

    await eventually(refused, what="the request dead-lettered")
    async with notify.db.read() as session:
        assert not (await session.exec(select(Notification))).all()
