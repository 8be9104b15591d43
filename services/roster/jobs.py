"""The roster's periodic work: the rotation scan.

Every replica scans; the facts a scan announces are recorded with the state change
and carry deterministic ids, so replicas never double up.
"""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client import Gauge

from services.roster import handlers
from services.roster.config import Settings
from shared.clock import Clock
from shared.metrics import ServiceMetrics
from shared.store import Database

log = structlog.get_logger("roster")


class RotationScan:
    """One scan at a time (a stop waits for the one under way: its transaction commits or not at
    all). A scan refused for a clock jump is told once per episode and shown on /metrics."""

    name = "rotation_scan"

    def __init__(self, *, db: Database, clock: Clock, settings: Settings, metrics: ServiceMetrics) -> None:
        self.db, self.clock, self.settings = db, clock, settings
        self.refused: handlers.ClockJumpRefused | None = None  # the last scan refused (None while scans are accepted)
        self._scanning = asyncio.Lock()
        self._refused_gauge: Gauge = metrics.gauge(
            "roster_scan_clock_refused", "1 while the rotation scan is refused for a clock jump, else 0")
        self._jump_gauge: Gauge = metrics.gauge(
            "roster_scan_clock_jump_seconds", "How far past the last accepted scan the refused scan's clock is")

    async def run_pass(self, *, confirm_jump: bool = False) -> None:
        """A scan; one that fails raises (the scheduler logs it, the next interval tries again)."""
        async with self._scanning:
            try:
                await handlers.run_rotation_scan(db=self.db, clock=self.clock, policy=self.settings.rotation_policy,
                                                 max_jump=self.settings.scan_max_jump, confirm_jump=confirm_jump)
            except handlers.ClockJumpRefused as refused:
                self._clock_refused(refused)
                return
            if self.refused is not None:
                log.info("rotation_scan_clock_accepted", refused_since=self.refused.scan_at.isoformat())
            self.refused = None
            self._refused_gauge.set(0)
            self._jump_gauge.set(0)

    async def idle(self) -> None:
        """Once no scan is under way (one run by hand too: `run_pass` outside the scheduler)."""
        async with self._scanning:
            pass

    def _clock_refused(self, refused: handlers.ClockJumpRefused) -> None:
        """Told once per episode (the gauge stays up); the service keeps answering queries
        and consuming, and does no scan until the clock is back or a scan is confirmed."""
        if self.refused is None:
            log.error("rotation_scan_clock_jump_refused", last_scan_at=refused.last_scan_at.isoformat(),
                      scan_at=refused.scan_at.isoformat(), jump_hours=round(refused.jump_hours, 1),
                      max_jump_hours=self.settings.scan_max_jump_hours,
                      remedy="fix the host clock; if it is right, run `cmcoord roster scan --confirm-jump`")
        self.refused = refused
        self._refused_gauge.set(1)
        self._jump_gauge.set(refused.jump_hours * 3600)
