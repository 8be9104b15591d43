"""The regional calls' calendar feeds, on a listener of their own, at URLs nobody guesses.

The health port is internal (probes, Prometheus); calendar apps fetch from outside and
cannot log in. So the feeds get their own listener (off unless
CMCOORD_NOTIFY_CALENDAR_PORT is set; a TLS proxy in front publishes it), and each
region's URL carries a token, HMAC-SHA256(secret, region): one region's URL tells
nothing of another's, and a wrong or missing token gets the same 404 as an unknown
region, so the server is no oracle. The secret is kept under the service's home (0600)
when not given, so a restart keeps the URLs; a new secret revokes them all at once.

Calendar apps poll: each answer carries a strong ETag (the body's hash) and
Cache-Control, and a poll whose If-None-Match matches gets 304 without a body. The
body changes only when the call does (its DTSTAMP is the last change, not the time of
the poll) or once a day (the time zones it carries run three years from today).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import stat
from collections.abc import Callable

import structlog
from aiohttp import web
from prometheus_client import Counter

from services.notify import calls
from services.notify.config import Settings
from shared.clock import Clock
from shared.regions import resolve_region
from shared.settings import secret_file
from shared.store import Database

log = structlog.get_logger("notify")
SECRET_FILE = "notify-calendar.key"
TOKEN_BYTES = 20  # 160 bits, 32 base32 characters
CACHE_CONTROL = "private, max-age=300"  # the URL is a capability: no shared cache keeps it


def feed_secret(settings: Settings) -> bytes:
    """The key of the feed URLs: the setting, else the one kept under the service's home (made once)."""
    given = settings.calendar_secret.get_secret_value()
    if given:
        return given.encode()
    path = settings.home / SECRET_FILE
    secret_file(path, lambda: secrets.token_hex(32))
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("calendar_secret_readable_by_others", path=str(path))
    return bytes.fromhex(path.read_text().strip())


def token(secret: bytes, region: str) -> str:
    """The region's token: HMAC-SHA256 of its code, truncated, base32 in lower case."""
    digest = hmac.new(secret, f"cmcoord-calendar-feed:{region}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:TOKEN_BYTES]).decode().lower()


def feed_path(secret: bytes, region: str) -> str:
    return f"/calendar/{region.lower()}/{token(secret, region)}.ics"


def feed_url(base_url: str, secret: bytes, region: str) -> str:
    return base_url.rstrip("/") + feed_path(secret, region)


def etag_of(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


class CalendarServer:
    """Notify's public listener: GET /calendar/<region>/<token>.ics, and the e-mails' answer links
    (`routes`: mail.AnswerPages) when e-mail is on; nothing else."""

    def __init__(self, *, db: Database, clock: Clock, secret: bytes, host: str, port: int,
                 requests: Counter | None = None, routes: Callable[[web.Application], None] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.secret = secret
        self.host = host
        self.port = port
        self.requests = requests  # by outcome: served, not_modified, not_found
        self.routes = routes
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/calendar/{region}/{token}.ics", self.feed)
        if self.routes is not None:
            self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)  # an access log would keep the tokens
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _count(self, outcome: str) -> None:
        if self.requests is not None:
            self.requests.labels(outcome).inc()

    async def feed(self, request: web.Request) -> web.Response:
        """A region's call as iCalendar, for officers' calendar apps."""
        code = resolve_region(request.match_info["region"])
        if code is None or not hmac.compare_digest(request.match_info["token"].encode(),
                                                   token(self.secret, code).encode()):
            self._count("not_found")
            raise web.HTTPNotFound()  # the same answer as any other unknown path
        async with self.db.read() as session:
            schedule = await calls.schedule_of(session, code)
            changes = await calls.changes_of(session, code)
            revised = await calls.revised_at(session, code)
        body = calls.feed(schedule, changes).to_ical(stamp=revised, today=self.clock.now().date())
        etag = etag_of(body)
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
        if _matches(request.headers.getall("If-None-Match", []), etag):
            self._count("not_modified")
            return web.Response(status=304, headers=headers)
        self._count("served")
        headers["Content-Disposition"] = f'inline; filename="{code.lower()}-call.ics"'
        return web.Response(body=body, content_type="text/calendar", charset="utf-8", headers=headers)


def _matches(if_none_match: list[str], etag: str) -> bool:
    """If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x"; "*" matches any."""
    for value in ",".join(if_none_match).split(","):
        candidate = value.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False
