"""Figures: per kind and region, how many were sent (Telegram accepted them),
acknowledged (a button pressed), escalated, failed, and how long people took."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from services.notify.models import Notification


@dataclass
class Figures:
    kind: str
    region: str
    total: int = 0
    sent: int = 0
    acknowledged: int = 0
    escalated: int = 0
    failed: int = 0
    unlinked: int = 0  # never tried: the person has no Telegram link
    expired: int = 0
    waiting: int = 0  # not yet accepted by Telegram (queued, held for quiet hours)
    ack_rate: float | None = None  # acknowledged / sent
    ack_median_minutes: float | None = None
    ack_p90_minutes: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def figures(rows: Iterable[Notification]) -> list[Figures]:
    groups: dict[tuple[str, str], Figures] = {}
    waits: dict[tuple[str, str], list[float]] = defaultdict(list)
    for n in rows:
        key = (n.kind, n.region or "-")
        f = groups.setdefault(key, Figures(kind=key[0], region=key[1]))
        f.total += 1
        f.sent += n.sent_at is not None
        f.acknowledged += n.state == "acknowledged"
        f.escalated += n.escalation_level > 0
        f.failed += n.state == "failed"
        f.unlinked += n.state == "unlinked"
        f.expired += n.state == "expired"
        f.waiting += n.state == "queued"
        if n.state == "acknowledged" and n.acknowledged_at is not None and n.sent_at is not None:
            waits[key].append(max(0.0, (n.acknowledged_at - n.sent_at).total_seconds() / 60))
    for key, f in groups.items():
        f.ack_rate = round(f.acknowledged / f.sent, 3) if f.sent else None
        if waits[key]:
            f.ack_median_minutes = round(statistics.median(waits[key]), 1)
            f.ack_p90_minutes = round(_p90(waits[key]), 1)
    return sorted(groups.values(), key=lambda f: (f.kind, f.region))


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
