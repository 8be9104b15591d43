"""The local mail catcher: an SMTP server on loopback (aiosmtpd) that keeps what notify e-mails, and
a page that shows it, as the sandbox does for Telegram. Nothing leaves the machine.

`cmcoord up` points notify's SMTP settings here; the answer links in each mail lead to notify's
public listener, so a desk member's mail can be answered from the page.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from html import escape
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP

KEPT = 500  # the newest mails; older ones are forgotten
LINK = re.compile(r"https?://[^\s<>\"']+")
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


@dataclass(frozen=True)
class Mail:
    received_at: datetime
    sender: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    language: str

    def as_dict(self) -> dict[str, Any]:
        return {"received_at": self.received_at.isoformat(), "from": self.sender, "to": list(self.to),
                "subject": self.subject, "text": self.text, "html": self.html, "language": self.language}


class MailCatcher:
    """aiosmtpd's handler: each accepted mail parsed and kept (the newest KEPT)."""

    def __init__(self) -> None:
        self.mails: deque[Mail] = deque(maxlen=KEPT)
        self._server: asyncio.AbstractServer | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        text, html = message.get_body(preferencelist=("plain",)), message.get_body(preferencelist=("html",))
        self.mails.append(Mail(
            received_at=datetime.now(UTC), sender=str(message.get("From", envelope.mail_from)),
            to=tuple(envelope.rcpt_tos), subject=str(message.get("Subject", "")),
            text=text.get_content() if text is not None else "", html=html.get_content() if html is not None else "",
            language=str(message.get("Content-Language", ""))))
        return "250 Message accepted"

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTP(self, hostname="cmcoord-sandbox"), host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/mail", self.page)
        app.router.add_get("/sandbox/mail", self.listing)

    async def listing(self, request: web.Request) -> web.Response:
        """The mails kept, newest first; ?to= keeps those to one address."""
        to = request.query.get("to")
        return web.json_response([m.as_dict() for m in reversed(self.mails) if to is None or to in m.to])

    async def page(self, request: web.Request) -> web.Response:
        items = "".join(
            f'<article lang="{escape(m.language or "en")}" dir="{"rtl" if m.language == "ar" else "ltr"}">'
            f"<h2>{escape(m.subject)}</h2><p><small>{escape(m.received_at.strftime('%Y-%m-%d %H:%M:%S'))} UTC · "
            f"to {escape(', '.join(m.to))}</small></p><pre>{_linked(m.text)}</pre></article>"
            for m in reversed(self.mails)) or "<p>No mail yet.</p>"
        html = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
                'content="width=device-width, initial-scale=1"><title>Sandbox mail</title><style>body{font-family:'
                "sans-serif;max-width:48rem;margin:1rem auto;padding:0 1rem}article{border-bottom:1px solid #ccc}"
                "pre{white-space:pre-wrap;font-family:inherit}</style></head><body><h1>Mail caught by the sandbox"
                f"</h1>{items}</body></html>")
        return web.Response(text=html, content_type="text/html", headers={"Content-Security-Policy": PAGE_POLICY})


def _linked(text: str) -> str:
    """Plain text, escaped, its http(s) links clickable (an e-mail's answer links)."""
    return LINK.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escape(text))
