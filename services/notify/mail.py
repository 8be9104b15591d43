"""E-mail for those Telegram cannot reach: no link, the bot blocked, the chat gone.

`notify.deliver.email` (written with the notification's failure, handlers/notifications.unreachable)
is consumed here: the notification is read from the store, written as plain text and HTML in its
reader's language, and handed to the SMTP server (aiosmtplib; STARTTLS and a login as configured),
outside any transaction, then recorded (at least once: a crash between the two sends it again).
A passing failure (the server away, a 4xx) puts the command back for a later try; an address the
server refuses is recorded and named in the desk's summary.

Its answer buttons (acknowledge, RSVP, confirm) become links to notify's public listener (the
calendar feeds' one, never the health port), each signed for one notification and one answer and
valid `link_days` (itsdangerous). A link shows the message and asks for a press: mail scanners
fetch links, and a fetch must not acknowledge anything. The press answers as the Telegram button would: once; a second press says
it was already answered, and when.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from html import escape

import aiosmtplib
import structlog
from aiohttp import web
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from nats.errors import Error as NatsError
from nats.js.errors import ObjectNotFoundError

from services.notify.config import Settings
from services.notify.handlers.notifications import answer, notice
from services.notify.models import Notification
from services.notify.policy import OPEN_STATES
from services.notify.store import locked
from shared import events, notices
from shared.clock import Clock
from shared.documents import Documents
from shared.events import Envelope, ReplyButton
from shared.bus import TopologyMissing, TransientError
from shared.settings import secret_file
from shared.store import Database, UnitOfWork

log = structlog.get_logger("notify")
SECRET_FILE = "notify-links.key"
SALT = "cmcoord-notify-email-link"
ANSWERABLE = OPEN_STATES | {"unlinked", "failed"}  # an e-mailed copy is answered from its mail
# The answers a link can give: an acknowledgement, an RSVP, a confirmation. "Write it now" (a handover
# note, an AAR) and "change the date" open a conversation in the bot: no link pretends to do that.
LINK_ANSWERS = frozenset({"ack", "join", "decline", "confirm"})
DEFERRED = 30.0  # seconds before a deferred mail is tried again
MAX_ATTACHMENT_BYTES = 7 * 1024 * 1024  # ~10 MB once base64-encoded: what most mail servers take
ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")  # what a refusal may echo of the recipient


def link_secret(settings: Settings) -> str:
    given = settings.link_secret.get_secret_value()
    if given:
        return given
    path = settings.home / SECRET_FILE
    secret_file(path, lambda: secrets.token_hex(32))
    return path.read_text().strip()


class Links:
    """Signed answer links: /answer/<token>, the token naming a notification and a reply."""

    def __init__(self, secret: str, *, base_url: str, days: int) -> None:
        self.signer = URLSafeTimedSerializer(secret, salt=SALT)  # its timestamps are the system clock's
        self.base_url = base_url.rstrip("/")
        self.max_age = int(timedelta(days=days).total_seconds())

    def url(self, notification_id: uuid.UUID, reply: str) -> str:
        return f"{self.base_url}/answer/{self.signer.dumps([notification_id.hex, reply])}"

    def read(self, token: str) -> tuple[uuid.UUID, str] | None:
        """The notification and reply a token names; None when it is forged, damaged or too old."""
        try:
            hex_id, reply = self.signer.loads(token, max_age=self.max_age, return_timestamp=False)
            return uuid.UUID(hex_id), str(reply)
        except (BadSignature, SignatureExpired, ValueError, TypeError):
            return None


def compose(n: Notification, *, links: Links | None, sender: str, attachment: bytes | None = None) -> EmailMessage:
    """The notification as a mail in its reader's language: plain text and HTML, its buttons as links,
    its document (`attachment`, the bytes of `n.document`) attached."""
    locale = n.locale
    buttons = [b for b in map(ReplyButton.model_validate, _buttons(n)) if b.reply in LINK_ANSWERS]
    say = notices.say
    answers = [(b.label, links.url(n.id, b.reply)) for b in buttons] if links is not None else []
    footer = say("email.footer", locale)
    plain = n.text + ("\n\n" + "\n".join(f"{label}: {url}" for label, url in answers) if answers else "")
    plain += "\n\n-- \n" + footer
    paragraphs = _paragraphs(n.text)
    actions = "".join(f'<p><a href="{escape(url)}" style="display:inline-block;padding:8px 16px;background:#0b5394;'
                      f'color:#ffffff;text-decoration:none;border-radius:4px">{escape(label)}</a></p>'
                      for label, url in answers)
    direction = "rtl" if locale == "ar" else "ltr"
    html = (f'<!doctype html><html lang="{locale}" dir="{direction}"><head><meta charset="utf-8">'
            f"<title>{escape(_subject(n))}</title></head><body>{paragraphs}{actions}"
            f'<hr><p style="color:#555555;font-size:small">{escape(footer)}</p></body></html>')
    message = EmailMessage()
    message["Subject"] = _subject(n)
    message["From"] = sender
    message["To"] = n.email
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=n.id.hex, domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # no out-of-office replies to it (RFC 3834)
    message.set_content(plain)
    message.add_alternative(html, subtype="html")
    if attachment is not None and n.document:
        kind, _ = mimetypes.guess_type(n.document)
        maintype, _, subtype = (kind or "application/octet-stream").partition("/")
        message.add_attachment(attachment, maintype=maintype, subtype=subtype, filename=n.document)
    message["Content-Language"] = locale  # after the content: setting it clears the Content-* headers
    return message


def _paragraphs(text: str) -> str:
    """Plain text as HTML paragraphs, escaped, its single line breaks kept."""
    return "".join(f"<p>{escape(part).replace(chr(10), '<br>')}</p>" for part in text.split("\n\n"))


def _redacted(code: int, message: str) -> str:
    """A refusal as the desk may read it: its code and status, never an address the server echoed."""
    return f"{code} {ADDRESS.sub('<address>', message)}"[:100]


def _buttons(n: Notification) -> list[dict[str, str]]:
    return list(json.loads(n.buttons or "[]"))


def _subject(n: Notification) -> str:
    first = n.text.split("\n", 1)[0].strip()
    return "CMCoord Hub: " + (first if len(first) <= 110 else first[:109].rstrip() + "…")


@dataclass(frozen=True)
class Mailed:
    """What the mail server said: taken, or the address refused (for good)."""

    taken: bool
    refusal: str = ""


class Mailer:
    """Consumes `notify.deliver.email`: sends in the lookup (outside the transaction), records in it."""

    def __init__(self, *, db: Database, settings: Settings, links: Links | None,
                 documents: Documents | None = None) -> None:
        self.db, self.settings, self.links, self.documents = db, settings, links, documents

    async def _attachment(self, n: Notification) -> bytes | None:
        """The notification's document, or None: the mail goes without a file it cannot have now (gone
        from the bucket, the bucket or NATS out of reach, too big to mail) rather than wait for it."""
        if not n.document or self.documents is None:
            return None
        try:
            data = await asyncio.wait_for(self.documents.get(n.document), self.settings.query_timeout_seconds)
        except (ObjectNotFoundError, NatsError, TopologyMissing, TimeoutError) as err:
            log.warning("document_not_attached", notification_id=str(n.id), document=n.document,
                        reason=type(err).__name__)
            return None
        if len(data) > MAX_ATTACHMENT_BYTES:
            log.warning("document_not_attached", notification_id=str(n.id), document=n.document,
                        reason=f"{len(data)} bytes")
            return None
        return data

    async def send(self, e: events.DeliverEmail, *, cause: Envelope, clock: Clock) -> Mailed | None:
        async with self.db.read() as session:
            n = await session.get(Notification, e.notification_id)
        if n is None or not n.email or n.emailed_at is not None or n.state not in ANSWERABLE:
            return None  # gone, no address, sent already (a redelivery), or no longer waiting
        message = compose(n, links=self.links, sender=self.settings.mail_from, attachment=await self._attachment(n))
        s = self.settings
        try:
            await aiosmtplib.send(message, hostname=s.smtp_host, port=s.smtp_port, start_tls=s.smtp_starttls,
                                  username=s.smtp_username or None,
                                  password=s.smtp_password.get_secret_value() or None,
                                  timeout=s.smtp_timeout_seconds)
        except aiosmtplib.SMTPRecipientsRefused as refused:
            codes = [r.code for r in refused.recipients]
            if not codes or any(code < 500 for code in codes):  # greylisted, a full mailbox: later
                raise TransientError(f"the mail server deferred the address ({codes})", delay=DEFERRED) from None
            reason = "; ".join(_redacted(r.code, r.message) for r in refused.recipients)
            log.warning("email_refused", notification_id=str(n.id), reason=reason)
            return Mailed(taken=False, refusal=reason)
        except aiosmtplib.SMTPResponseException as err:
            if err.code < 500:  # 421, a 451 on DATA: the server asks for a later try
                raise TransientError(f"the mail server deferred the mail ({err.code})", delay=DEFERRED) from None
            raise  # a 5xx to the sender or the login: dead-lettered after its tries, with the reason
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError,
                OSError) as err:
            raise TransientError(f"the mail server is out of reach ({type(err).__name__})", delay=DEFERRED) from None
        log.info("email_sent", notification_id=str(n.id), kind=n.kind)
        return Mailed(taken=True)

    @staticmethod
    async def record(e: events.DeliverEmail, *, uow: UnitOfWork, clock: Clock, found: Mailed | None) -> None:
        if found is None:
            return
        n = await uow.session.get(Notification, e.notification_id)
        if n is None:
            return
        if found.taken:
            n.emailed_at = clock.now()
            uow.session.add(n)
            return
        await notice(uow, key=f"unreached:{n.person_id}", region=n.region, counted=False,
                     line=f"{n.person_name} ({e.reason[:80]}; e-mail refused: {found.refusal[:80]})",
                     depth=n.depth, now=clock.now())


class AnswerPages:
    """GET /answer/<token>: the message and a button to press; POST: the answer, recorded once."""

    def __init__(self, *, db: Database, clock: Clock, links: Links) -> None:
        self.db, self.clock, self.links = db, clock, links

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/answer/{token}", self.show)
        app.router.add_post("/answer/{token}", self.answer)

    async def _read(self, request: web.Request) -> tuple[Notification, str]:
        found = self.links.read(request.match_info["token"])
        if found is None:
            raise web.HTTPNotFound()  # forged, damaged and expired links alike: no oracle
        async with self.db.read() as session:
            n = await session.get(Notification, found[0])
        if n is None:
            raise web.HTTPNotFound()
        return n, found[1]

    async def show(self, request: web.Request) -> web.Response:
        n, reply = await self._read(request)
        label = next((b["label"] for b in _buttons(n) if b.get("reply") == reply), reply)
        if n.state == "acknowledged":
            return _page(n.locale, _already(n), n.text)
        if n.state not in ANSWERABLE:
            return _page(n.locale, notices.say("email.closed", n.locale), n.text)
        form = (f'<form method="post"><button type="submit" style="padding:8px 16px">{escape(label)}</button>'
                "</form>")
        return _page(n.locale, notices.say("email.press", n.locale), n.text, form=form)

    async def answer(self, request: web.Request) -> web.Response:
        n, reply = await self._read(request)
        if reply not in LINK_ANSWERS or reply not in {b.get("reply") for b in _buttons(n)}:
            raise web.HTTPNotFound()
        now = self.clock.now()
        async with self.db.unit_of_work(correlation_id=str(n.id)) as uow:
            row = await locked(uow, n.id)
            assert row is not None
            if row.state == "acknowledged":
                return _page(row.locale, _already(row), row.text)
            if row.state not in ANSWERABLE:
                return _page(row.locale, notices.say("email.closed", row.locale), row.text)
            await answer(uow, row, reply, now, now, via="email")
            uow.session.add(row)
            locale, text = row.locale, row.text
        log.info("answered_by_email", notification_id=str(n.id), reply=reply)
        return _page(locale, notices.say("email.recorded", locale), text)


def _already(n: Notification) -> str:
    assert n.acknowledged_at is not None
    return notices.say("email.already", n.locale, n.timezone, at=n.acknowledged_at.replace(tzinfo=UTC))


def _page(locale: str, heading: str, text: str, *, form: str = "") -> web.Response:
    direction = "rtl" if locale == "ar" else "ltr"
    html = (f'<!doctype html><html lang="{locale}" dir="{direction}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(heading)}</title></head><body><h1>{escape(heading)}</h1>{form}"
            f"<blockquote>{_paragraphs(text)}</blockquote></body></html>")
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
               "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers=headers)
