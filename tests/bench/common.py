from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp


def result(name: str, value: float, unit: str, target: str, ok: bool, **detail: object) -> dict[str, object]:
    out: dict[str, object] = {"name": name, "value": round(value, 3), "unit": unit, "target": target, "ok": ok}
    if detail:
        out["detail"] = detail
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=1000, method="inclusive")[int(q * 1000) - 1]


async def wait_ready(port: int, what: str, timeout: float = 60) -> None:
    """Poll a service's /readyz until it answers 200 (with a deadline)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)  # polling readiness with a deadline
    raise TimeoutError(f"{what} not ready")
