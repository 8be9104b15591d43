"""`cmcoord status`: health per service and lag per durable consumer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import nats
import nats.errors

from shared.bus import all_streams, inbox_prefix
from shared.permissions import ADMIN
from shared.settings import CommonSettings, OperatorSettings


async def collect_status(*, settings: CommonSettings, state: dict[str, Any] | None, out: Callable[[str], None]) -> bool:
    healthy = True
    nats_url = state["nats_url"] if state else settings.nats_url
    services = state["services"] if state else {}
    if not services:
        out("no running `cmcoord up` found under " + str(settings.home))
    async with aiohttp.ClientSession() as http:
        for name, info in services.items():
            try:
                async with http.get(info["health"] + "/readyz", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    body = await resp.json()
                    checks = ", ".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in body.get("checks", {}).items())
                    out(f"{name:<9} {'ready' if resp.status == 200 else 'NOT READY'}  {checks}{_backlog(body)}")
                    healthy &= resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                out(f"{name:<9} DOWN")
                healthy = False
    try:
        nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False,
                                inbox_prefix=inbox_prefix(ADMIN), **OperatorSettings().nats_auth())  # lists every consumer
    except (OSError, nats.errors.Error):
        out(f"nats      DOWN ({nats_url})")
        return False
    try:
        js = nc.jetstream()
        out(f"nats      up ({nats_url})")
        for spec in all_streams():
            try:
                consumers = await js.consumers_info(spec.name)
            except nats.errors.Error:
                continue
            for info in consumers:
                out(
                    f"  {spec.name:<10} {info.name:<40} pending={info.num_pending} "
                    f"unacked={info.num_ack_pending} redelivered={info.num_redelivered}"
                )
    finally:
        await nc.close()
    return healthy


def _backlog(body: dict[str, Any]) -> str:
    """The service's outbox: events written but not yet published, and how old the oldest is."""
    outbox = body.get("outbox")
    if not isinstance(outbox, dict):
        return ""
    age = outbox.get("oldest_age_seconds")
    return f"  outbox={outbox.get('pending', 0)}" + (f" oldest={age:.0f}s" if age is not None else "")
