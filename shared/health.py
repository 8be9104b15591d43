"""A tiny HTTP server each service runs on its own port: /healthz, /readyz and any
read-only pages of its own (notify's calendar feeds). /readyz also reports facts
that do not decide readiness (`details`: every service's outbox backlog), and while
the service starts, what it is waiting for (`waiting`: NATS, its streams and consumers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger("health")

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
Details = Callable[[], Awaitable[dict[str, Any]]]
Route = tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]  # (GET path, handler)


class HealthServer:
    def __init__(self, *, service: str, host: str, port: int, readiness: ReadinessCheck,
                 routes: Sequence[Route] = (), details: Details | None = None) -> None:
        self.service = service
        self.details = details
        self.routes = routes
        self.host = host
        self.port = port
        self.readiness = readiness
        self.waiting: str | None = None  # what the start is waiting for (NATS, its topology), shown by /readyz
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        for path, handler in self.routes:
            app.router.add_get(path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and server.sockets:  # port 0: learn the one the OS chose
            self.port = server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"service": self.service, "status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        checks = await self.readiness()
        ready = all(checks.values())
        body: dict[str, Any] = {"service": self.service, "ready": ready, "checks": checks}
        if self.waiting and not ready:
            body["waiting"] = self.waiting
        if self.details is not None:
            try:
                body.update(await self.details())
            except Exception as exc:  # a fact that could not be read is left out; readiness says why
                log.warning("readiness_details_unavailable", error=str(exc)[:300] or type(exc).__name__)
        return web.json_response(body, status=200 if ready else 503)
