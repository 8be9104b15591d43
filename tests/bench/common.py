from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

REPORT = Path(__file__).resolve().parents[2] / "bench-results.json"


def result(name: str, value: float, unit: str, target: str, ok: bool, **detail: object) -> dict[str, object]:
    out: dict[str, object] = {"name": name, "value": round(value, 3), "unit": unit, "target": target, "ok": ok}
    if detail:
        out["detail"] = detail
    return out


def write_figures(prefix: str, results: list[dict[str, object]], *, path: Path = REPORT) -> None:
    """Put a suite's figures (all named `prefix`*) into bench-results.json beside the others."""
    report = json.loads(path.read_text()) if path.exists() else {"results": [], "machine": {}}
    report["results"] = [r for r in report["results"] if not str(r["name"]).startswith(prefix)] + results
    report.setdefault("machine", {})[f"{prefix}measured_at"] = datetime.now(UTC).isoformat()
    path.write_text(json.dumps(report, indent=2) + "\n")


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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU a process has used so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}
