"""E-mail for those Telegram cannot reach: a real SMTP server on loopback (aiosmtpd), notify's public
listener for the answer links, the roster and the bot on the sandbox; a clock the test sets."""

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from services.bot.bootstrap import BotApp
from services.lessons.duties import Step
from services.lessons.handlers import digest_request
from services.lessons.jobs import request_for
from services.lessons.models import Aar
from services.notify import bootstrap as notify_bootstrap
from services.notify.config import Settings as NotifySettings
from services.notify.models import DeskNotice, Notification
from services.roster.bootstrap import RosterApp
from services.roster.config import Settings
from shared import events
from shared.bus import Bus
from shared.clock import ManualClock
from shared.events import Envelope
from shared.documents import Documents
from shared.natsserver import NatsServer, free_port
from tests.helpers import eventually, mark_started, reads_in, stream_events
from tests.integration.conftest import PEOPLE, ZONES, import_people
from tests.integration.telegram_users import User
from tests.integration.test_notify import (
    _deployment_of,
    count_texts,
    ending_soon,
    notifications,
    notify_settings,
    publish,
    request,
    started_notify,
)

DESK_BY_MAIL = "ines@ocha.example"  # on the CMCS desk, never linked to Telegram


class Inbox:
    """aiosmtpd's handler: every mail the server accepts, parsed; refuses the addresses it is told to."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.refused: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refused:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted"

    async def to(self, address: str, n: int = 1) -> list[EmailMessage] | None:
        found = [m for m in self.mails if m["To"] == address]
        return found if len(found) >= n else None


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
async def mail_people(roster_settings: Settings, clock: ManualClock, sandbox_url: str) -> dict[str, uuid.UUID]:
    """The notify tests' people, and a desk member reached by e-mail only."""
    ines = (None, f"Ines Courriel,{DESK_BY_MAIL},+41 2,OCHA,CH,Geneva,CMCS Desk Officer,cmcs_desk")
    return await import_people(roster_settings, clock, sandbox_url, {**PEOPLE, DESK_BY_MAIL: ines},
                               {**ZONES, DESK_BY_MAIL: "Europe/Zurich"})


def mailing_settings(tmp_path: Path, nats_url: str, smtp_port: int) -> NotifySettings:
    """The notify tests' settings, e-mailing through the test's SMTP server; answer links on a port of its own."""
    return notify_settings(tmp_path, nats_url).model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_starttls": False, "calendar_port": free_port(),
        "mail_from": "CMCoord Hub <hub@cmcoord.example>"})


@pytest.fixture
async def mailing_notify(tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp,
                         mail_people: dict[str, uuid.UUID], smtp: tuple[Inbox, int]
                         ) -> AsyncIterator[notify_bootstrap.NotifyApp]:
    app = await started_notify(mailing_settings(tmp_path, nats_server.url, smtp[1]), clock)
    yield app
    await app.stop()


def _links(mail: EmailMessage) -> dict[str, str]:
    """The mail's answer links by label, from its plain-text part."""
    plain = mail.get_body(preferencelist=("plain",))
    assert plain is not None
    return dict(re.findall(r"^(.+?): (http://\S+/answer/\S+)$", plain.get_content().replace("\r\n", "\n"),
                           re.MULTILINE))


async def test_a_desk_member_without_telegram_acknowledges_an_escalation_from_the_mail_once(
    mailing_notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    mail_people: dict[str, uuid.UUID], smtp: tuple[Inbox, int],
) -> None:
    inbox, _ = smtp
    notify = mailing_notify
    await publish(bus, request([mail_people["awa@ocha.example"]]))
    await eventually(lambda: notifications(notify, kind="test.notice", state="sent"), what="sent to the officer")
    for hours, chat, what in ((24, 9801, "re-notified"), (24, 9802, "the adviser told"), (48, 9803, "the desk told")):
        clock.advance(timedelta(hours=hours, minutes=1))
        notify.parts.due.wake()
        await eventually(lambda chat=chat: count_texts(chat, sandbox_url, 2 if chat == 9801 else 1), what=what)
    (mail,) = await eventually(lambda: inbox.to(DESK_BY_MAIL), what="the escalation e-mailed to the desk")
    assert mail["Subject"].startswith("CMCoord Hub: Not acknowledged: Awa Traoré has not answered")
    assert mail["From"] == "CMCoord Hub <hub@cmcoord.example>" and mail["Content-Language"] == "en"
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and "Mopti route closed &lt;today&gt; &amp; tomorrow." in html.get_content()
    links = _links(mail)
    assert list(links) == ["Acknowledge"]
    async def emailed() -> list[Notification] | None:  # the server took it, then notify recorded so
        found = await notifications(notify, kind="escalation", person_name="Ines Courriel")
        return found if found and found[0].emailed_at is not None else None

    (copy,) = await eventually(emailed, what="the mail recorded")
    assert copy.state == "unlinked"

    async with aiohttp.ClientSession() as http:
        async with http.get(links["Acknowledge"]) as shown:  # a mail scanner fetching the link changes nothing
            page = await shown.text()
            assert shown.status == 200 and '<form method="post">' in page and "Press the button" in page
        assert (await notifications(notify, kind="escalation", person_name="Ines Courriel"))[0].state == "unlinked"
        async with http.post(links["Acknowledge"]) as pressed:
            assert pressed.status == 200 and "your answer is recorded" in await pressed.text()
        async with http.post(links["Acknowledge"]) as again:
            assert again.status == 200 and "already answered" in await again.text()
        async with http.post(links["Acknowledge"][:-3] + "xyz") as forged:
            assert forged.status == 404

    (copy,) = await notifications(notify, kind="escalation", person_name="Ines Courriel")
    assert copy.state == "acknowledged" and copy.reply == "ack"
    async def answered() -> list[str] | None:  # published by the relay a moment after the commit
        moves = await stream_events(bus.js, "NOTIFY", type_prefix="notify.notification.transitioned")
        found = [e.data["via"] for e in moves
                 if e.data["notification_id"] == str(copy.id) and e.data["to_state"] == "acknowledged"]
        return found or None

    assert await eventually(answered, what="the answer published") == ["email"]  # it came by the mail's link
    (maria,) = await notifications(notify, kind="escalation", person_name="Maria Keller")
    assert maria.state == "expired"  # one alert to the desk: answered from the mail, closed for the other


async def test_an_officer_who_blocked_the_bot_is_reached_by_e_mail_in_their_language(
    mailing_notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    mail_people: dict[str, uuid.UUID], smtp: tuple[Inbox, int],
) -> None:
    inbox, _ = smtp
    somchai = User(sandbox_url, 9804)
    await somchai.reply_to("/lang fr")
    await User(sandbox_url, 9803).reply_to("/lang fr")  # the desk reads French too
    async with aiohttp.ClientSession() as http:
        await http.post(f"{sandbox_url}/sandbox/faults", json={"blocked_user_ids": [9804]})
    await eventually(lambda: reads_in(bus, mail_people["somchai@ocha.example"], "fr"), what="French, for the roster")
    await eventually(lambda: reads_in(bus, mail_people["maria@ocha.example"], "fr"), what="the desk's French")
    aar = Aar(id=uuid.uuid4(), person_id=mail_people["somchai@ocha.example"], country="TH", region="ROAP",
              due_on=date(2026, 3, 9), created_at=clock.now())
    await publish(bus, request_for(aar, Step(name="reminder", offset_days=-7, audience="officer"), officer="",
                                   today=clock.now().date()), source="lessons")
    (mail,) = await eventually(lambda: inbox.to("somchai@ocha.example"), what="the reminder e-mailed")
    assert mail["Content-Language"] == "fr"
    plain = mail.get_body(preferencelist=("plain",))
    assert plain is not None and "Votre examen après action (déploiement : Thaïlande)" in plain.get_content()
    assert _links(mail) == {}  # writing the AAR is a conversation in the bot: no link pretends otherwise
    assert "n’a pas pu vous joindre sur Telegram" in plain.get_content()
    (n,) = await notifications(mailing_notify, kind="aar.reminder")
    assert n.state == "failed" and n.failed_reason == "blocked"

    # the desk's daily summary says which channels were tried
    clock.advance(timedelta(minutes=11))
    mailing_notify.parts.due.wake()
    (desk,) = await eventually(lambda: _texts(sandbox_url, 9803, "Personnes injoignables"), what="the desk's summary")
    assert "• Somchai Wong (bot bloqué ; envoyé par courriel)" in desk  # the reasons in the desk's language


async def test_a_document_reaches_a_blocked_reader_attached_to_the_mail_in_their_language(
    mailing_notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    mail_people: dict[str, uuid.UUID], smtp: tuple[Inbox, int],
) -> None:
    inbox, _ = smtp
    await User(sandbox_url, 9804).reply_to("/lang fr")
    async with aiohttp.ClientSession() as http:
        await http.post(f"{sandbox_url}/sandbox/faults", json={"blocked_user_ids": [9804]})
    await eventually(lambda: reads_in(bus, mail_people["somchai@ocha.example"], "fr"), what="French, for the roster")
    files = {"en": ("digest-en.html", b"<h1>Digest</h1>"), "fr": ("digest-fr.html", "<h1>Synthèse</h1>".encode())}
    for name, data in files.values():
        await Documents(bus.js).put(name, data)
    _, digest = digest_request(period_label="2026 Q1", documents={k: name for k, (name, _) in files.items()})
    await publish(bus, digest.model_copy(update={"everyone": False, "person_ids": [mail_people["somchai@ocha.example"]]}),
                  source="lessons")
    (mail,) = await eventually(lambda: inbox.to("somchai@ocha.example"), what="the digest e-mailed")
    plain = mail.get_body(preferencelist=("plain",))
    assert plain is not None and "La synthèse des enseignements CMCoord (1er trimestre 2026)" in plain.get_content()
    assert mail.get_content_type() == "multipart/mixed" and mail["Content-Language"] == "fr"
    (attached,) = list(mail.iter_attachments())
    assert attached.get_filename() == "digest-fr.html" and attached.get_content_type() == "text/html"
    assert attached.get_payload(decode=True) == files["fr"][1]

    # a file gone from the bucket: the mail goes all the same, without it
    await publish(bus, request([mail_people["somchai@ocha.example"]], about="subject-2", document="gone.html"))
    _, second = await eventually(lambda: inbox.to("somchai@ocha.example", 2), what="the second mail")
    plain = second.get_body(preferencelist=("plain",))
    assert plain is not None and "Mopti route closed" in plain.get_content() and not list(second.iter_attachments())


async def _texts(sandbox_url: str, chat: int, needle: str = "Could not reach") -> list[str] | None:
    found = [m["text"] for m in await User(sandbox_url, chat).messages() if needle in (m["text"] or "")]
    return found or None


async def test_a_campaign_for_someone_without_telegram_is_e_mailed_on_its_days_and_a_refusal_named_once(
    mailing_notify: notify_bootstrap.NotifyApp, bus: Bus, clock: ManualClock, roster_settings: Settings,
    mail_people: dict[str, uuid.UUID], smtp: tuple[Inbox, int],
) -> None:
    inbox, notify, nadia = smtp[0], mailing_notify, "noone@ocha.example"
    dep, post = await _deployment_of(roster_settings, mail_people[nadia])
    end = clock.now().date() + timedelta(days=21)
    await publish(bus, ending_soon(dep, post, end), source="roster")
    (prompt,) = await eventually(lambda: inbox.to(nadia), what="the prompt e-mailed at once")
    body = prompt.get_body(preferencelist=("plain",))
    assert body is not None and "Time to write the handover note" in body.get_content()

    async def waiting() -> list[Notification] | None:  # the reminders wait for their days, by e-mail too
        found = await notifications(notify, kind="handover.reminder")
        return found if len(found) == 2 and all(n.due_action == "email" for n in found) else None

    assert all(n.emailed_at is None for n in await eventually(waiting, what="the reminders scheduled"))
    assert len(inbox.mails) == 1

    inbox.refused.add(nadia)  # the mailbox is gone by the first reminder's day
    clock.set(datetime.combine(end - timedelta(days=14), time(9, 1), tzinfo=UTC))
    notify.parts.due.wake()

    async def refused() -> DeskNotice | None:
        async with notify.db.read() as session:
            row = await session.get(DeskNotice, f"unreached:{mail_people[nadia]}")
        return row if row is not None and "e-mail refused" in row.line else None

    row = await eventually(refused, what="the refusal named for the desk")
    assert row.line == "Nadia Unlinked (no Telegram link; e-mail refused: 550 5.1.1 no such mailbox)"
    assert row.count == 4  # the prompt, the departure question, two reminders: the refusal is not one more
    assert "@" not in row.line
    assert len(inbox.mails) == 1


async def test_mailed_while_unlinked_then_linked_and_blocked_fails_without_a_second_mail(
    mailing_notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str,
    mail_people: dict[str, uuid.UUID], smtp: tuple[Inbox, int],
) -> None:
    """The message went by mail while she had no link; she links, it is caught up on Telegram, which refuses
    it: the failure is recorded (its e-mail command is a new one, not a copy the outbox would refuse), and
    the mailer, seeing it mailed already, sends nothing twice."""
    inbox, nadia, chat = smtp[0], mail_people["noone@ocha.example"], 9811
    await publish(bus, request([nadia]))
    await eventually(lambda: inbox.to("noone@ocha.example"), what="mailed while unlinked")
    await mark_started(sandbox_url, [chat])
    async with aiohttp.ClientSession() as http:
        await http.post(f"{sandbox_url}/sandbox/faults", json={"blocked_user_ids": [chat]})
    await publish(bus, events.TelegramLinked(person_id=nadia, telegram_user_id=chat), source="roster")

    async def failed() -> list[Notification] | None:
        found = await notifications(mailing_notify, kind="test.notice", state="failed")
        return found or None

    (n,) = await eventually(failed, what="caught up on Telegram, refused there, recorded")
    assert n.failed_reason == "blocked" and n.attempts == 1

    async def commands() -> list[Envelope] | None:  # the failure's command leaves through the outbox, after its commit
        sent = await stream_events(bus.js, "NOTIFY", type_prefix="notify.deliver.email")
        mine = [e for e in sent if e.data["notification_id"] == str(n.id)]
        return mine if len(mine) >= 2 else None

    assert len(await eventually(commands, what="the failure's e-mail command published")) == 2
    assert len(await inbox.to("noone@ocha.example") or []) == 1
