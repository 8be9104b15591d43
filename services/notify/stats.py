"""Figures: per kind and region, where each message stands, so that the figures add up:

    total = sent + waiting + unlinked + failed + withdrawn
    sent  = acknowledged + unanswered

- sent: it reached the person (Telegram accepted it, alone or listed in their daily
  summary; an acknowledged message counts here too, it was sent first);
- acknowledged: the person pressed a button; unanswered: sent, no answer (yet, or it
  expired unanswered);
- waiting: not sent yet (queued, held for quiet hours, folded into a summary still to go);
- unlinked: owed to someone not on Telegram (sent when they link); failed: Telegram refused it;
- withdrawn: closed before it was sent (the matter settled);
- escalated: sent ones an adviser or the desk was told of (also counted above).

The acknowledgement rate is acknowledged / sent; the times are from sending to the answer."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from services.notify.models import Notification


@dataclass
class Figures:
    kind: str
    region: str
    total: int = 0  # sent + waiting + unlinked + failed + withdrawn
    sent: int = 0  # acknowledged + unanswered
    acknowledged: int = 0
    unanswered: int = 0
    waiting: int = 0
    unlinked: int = 0
    failed: int = 0
    withdrawn: int = 0
    escalated: int = 0  # of the sent
    ack_rate: float | None = None  # acknowledged / sent
    ack_median_minutes: float | None = None
    ack_p90_minutes: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def outcome(n: Notification, summaries_sent: Collection[tuple[Any, str]] = ()) -> str:
    """Where one message stands: acknowledged, unanswered, waiting, unlinked, failed or withdrawn."""
    if n.state == "acknowledged":
        return "acknowledged"  # answered, so it reached them (a message, their summary, or /pending)
    if n.state in ("failed", "unlinked"):
        return n.state
    if (n.state in ("sent", "escalated") or n.sent_at is not None
            or (n.folded_on is not None and (n.person_id, n.folded_on) in summaries_sent)):
        return "unanswered"
    return "withdrawn" if n.state == "expired" else "waiting"


def figures(rows: Iterable[Notification], *, summaries_sent: Collection[tuple[Any, str]] = ()) -> list[Figures]:
    """`summaries_sent`: (person id, local day) of the daily summaries that reached their reader: the
    messages folded into them were sent too."""
    summaries = set(summaries_sent)
    groups: dict[tuple[str, str], Figures] = {}
    waits: dict[tuple[str, str], list[float]] = defaultdict(list)
    for n in rows:
        key = (n.kind, n.region or "-")
        f = groups.setdefault(key, Figures(kind=key[0], region=key[1]))
        where = outcome(n, summaries)
        f.total += 1
        setattr(f, where, getattr(f, where) + 1)
        if where in ("acknowledged", "unanswered"):
            f.sent += 1
            f.escalated += n.escalation_level > 0
        if where == "acknowledged" and n.acknowledged_at is not None and n.sent_at is not None:
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
