"""HNS4D rules, free of I/O: what a submission must hold, by when each party is asked to acknowledge
it, how a party's answer reads, and the evidence per party.

A humanitarian organisation notifies the parties to a conflict, through OCHA's CMCoord officer, of
its static sites and its movements. Land movements are notified at least 48 hours ahead, 24 hours
in an emergency (the country's policy). OCHA does not verify what is notified, and notifying
guarantees nothing. A party's acknowledgement says it *received* the notification: it is never an
approval, a clearance or a guarantee, and no text here may read as one (a unit test reads them all).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from country_bounding_boxes import country_subunits_by_iso_code

from shared.regions import country_alpha3

# Natural Earth's 1:110m boxes are coarse at the edges: a site on the border stays inside by this much.
MARGIN_DEGREES = 0.25
SWAP_HINT_DEGREES = 5.0  # a point this far outside, inside once swapped, is offered the order as the cause

Kind = Literal["site", "movement"]
UNKNOWN_PARTY = ""  # the party of an incident nobody could attribute
PartyState = Literal["waiting", "acknowledged", "silent"]


@dataclass(frozen=True)
class CountryPolicy:
    """How far ahead a movement is notified, and by when each party is asked to acknowledge receipt."""

    lead: timedelta = timedelta(hours=48)
    emergency_lead: timedelta = timedelta(hours=24)
    acknowledge_before_start: timedelta = timedelta(hours=24)  # a movement's parties answer this long before
    shortest_window: timedelta = timedelta(hours=4)  # ... and never sooner than this after it was sent
    site_window: timedelta = timedelta(hours=72)  # a static site has no start: this long after it was sent
    # a party silent past its deadline: the officer who sent it is told then, the regional adviser and the
    # CMCS desk this long after the deadline if the party is still silent (each once)
    adviser_after: timedelta = timedelta(hours=6)
    desk_after: timedelta = timedelta(hours=12)


DEFAULT_POLICY = CountryPolicy()
# The figures of the Yemen SOP are the default; a country's own SOP goes here when it differs.
POLICIES: dict[str, CountryPolicy] = {}


def policy_for(country: str) -> CountryPolicy:
    return POLICIES.get(country.upper(), DEFAULT_POLICY)


@dataclass(frozen=True)
class Point:
    """A WGS 84 position, in decimal degrees."""

    lat: float
    lon: float


def _inside(box: tuple[float, float, float, float], point: Point) -> bool:
    west, south, east, north = box
    return (south - MARGIN_DEGREES <= point.lat <= north + MARGIN_DEGREES
            and west - MARGIN_DEGREES <= point.lon <= east + MARGIN_DEGREES)


def _distance(box: tuple[float, float, float, float], point: Point) -> float:
    """How far `point` is outside `box`, in degrees (0 inside)."""
    west, south, east, north = box
    return max(south - point.lat, point.lat - north, 0) + max(west - point.lon, point.lon - east, 0)


def _boxes(code: str) -> list[tuple[float, float, float, float]]:
    return [unit.bbox for unit in country_subunits_by_iso_code(code)]


def country_problem(country: str) -> str | None:
    """Why `country` is no country code, or None."""
    code = country.upper()
    if not _boxes(code) and country_alpha3(code) == code:  # neither ISO's nor one the humanitarian system assigns
        return f"{country!r} is not a country code (ISO 3166 alpha-2, such as ML)"
    return None


def point_problem(country: str, point: Point) -> str | None:
    """Why `point` cannot be a place in `country` (ISO alpha-2), or None. A real country the boxes do
    not know (Kosovo) is checked for the ranges only; a code that is no country is refused."""
    code = country.upper()
    boxes = _boxes(code)
    if (unknown := country_problem(code)) is not None:
        return unknown.replace(repr(code), repr(country))
    swapped = Point(point.lon, point.lat)
    looks_swapped = bool(boxes) and any(_inside(box, swapped) for box in boxes)
    if not (-90 <= point.lat <= 90 and -180 <= point.lon <= 180):
        hint = "; check the order: latitude first" if looks_swapped else ""
        return (f"{point.lat}, {point.lon} is not a position: latitude goes from -90 to 90, longitude from -180 to "
                f"180{hint}")
    if not boxes or any(_inside(box, point) for box in boxes):
        return None
    # the hint only far from the country: near it, the point is more likely a neighbour's place
    if looks_swapped and min(_distance(box, point) for box in boxes) > SWAP_HINT_DEGREES:
        return f"{point.lat}, {point.lon} is outside {country}; check the order: latitude first, then longitude"
    return f"{point.lat}, {point.lon} is outside {country}"


def lead_problem(*, start: datetime, submitted_at: datetime, policy: CountryPolicy, emergency: bool) -> str | None:
    """Why a movement starting at `start` is refused at `submitted_at`, or None: a movement is notified
    `policy.lead` ahead, unless flagged as an emergency (then `lead_warning` says what is short)."""
    ahead = start - submitted_at
    if ahead <= timedelta(0):
        return "the movement has already started: a notification is sent before it"
    if emergency or ahead >= policy.lead:
        return None
    return (f"the movement starts in {_hours(ahead)} hours: movements are notified at least {_hours(policy.lead)} "
            f"hours ahead; flag it as an emergency to send it now")


def lead_warning(*, start: datetime, submitted_at: datetime, policy: CountryPolicy, emergency: bool) -> str | None:
    """What the officer and the parties are told of an emergency movement notified late, or None."""
    ahead = start - submitted_at
    if not emergency or ahead >= policy.emergency_lead:
        return None
    return (f"emergency: notified {_hours(ahead)} hours ahead, less than the {_hours(policy.emergency_lead)} hours "
            f"an emergency movement is notified ahead; the parties may not have time to acknowledge receipt")


def _hours(span: timedelta) -> int:
    return int(span.total_seconds() // 3600)


def acknowledgement_due(*, sent_at: datetime, start: datetime | None, policy: CountryPolicy) -> datetime:
    """When each party is asked to have acknowledged receipt: a movement, `acknowledge_before_start`
    before it starts but at least `shortest_window` after sending, and never after the start; a site,
    `site_window` after sending."""
    if start is None:
        return sent_at + policy.site_window
    # an emergency sent late: the shortest window, but never after the movement has started
    return min(max(start - policy.acknowledge_before_start, sent_at + policy.shortest_window), start)


SILENCE_AUDIENCES = ("cmcoord_officer", "regional_adviser", "cmcs_desk")


def silence_step_at(*, due_at: datetime, step: int, policy: CountryPolicy) -> datetime | None:
    """When a still silent party's `step`-th silence step (0: the officer, 1: the adviser, 2: the desk) is
    taken; None after the last."""
    offsets = (timedelta(0), policy.adviser_after, policy.desk_after)
    return due_at + offsets[step] if step < len(offsets) else None


def party_state(*, acknowledged_at: datetime | None, due_at: datetime, now: datetime) -> PartyState:
    if acknowledged_at is not None:
        return "acknowledged"
    return "silent" if now >= due_at else "waiting"


def status_line(*, party: str, sent_at: datetime, due_at: datetime, acknowledged_at: datetime | None,
                now: datetime) -> str:
    """What the submitter and the officer read for one party: receipt, or silence, never more."""
    state = party_state(acknowledged_at=acknowledged_at, due_at=due_at, now=now)
    sent_at, due_at = sent_at.astimezone(UTC), due_at.astimezone(UTC)
    acknowledged_at = acknowledged_at.astimezone(UTC) if acknowledged_at is not None else None
    if state == "acknowledged":
        assert acknowledged_at is not None
        return f"{party}: acknowledged receipt at {acknowledged_at:%d %b %Y %H:%M} UTC"
    if state == "silent":
        return f"{party}: silent since {sent_at:%d %b %Y %H:%M} UTC (receipt was due by {due_at:%d %b %Y %H:%M} UTC)"
    return f"{party}: sent {sent_at:%d %b %Y %H:%M} UTC, receipt asked for by {due_at:%d %b %Y %H:%M} UTC"


# --- evidence per party -------------------------------------------------------------------------------


class DeliveryLike(Protocol):
    country: str
    party: str
    sent_at: datetime
    due_at: datetime
    acknowledged_at: datetime | None
    superseded: bool  # a change or a cancellation replaced it before it was acknowledged: not silence


class IncidentLike(Protocol):
    country: str
    party: str | None


@dataclass
class PartyFigures:
    sent: int = 0
    acknowledged: int = 0
    acknowledged_on_time: int = 0
    silent: int = 0  # past the deadline with no acknowledgement
    incidents: int = 0
    hours_to_acknowledge: list[float] = field(default_factory=list)

    @property
    def median_hours_to_acknowledge(self) -> float | None:
        return statistics.median(self.hours_to_acknowledge) if self.hours_to_acknowledge else None


def party_figures(deliveries: Iterable[DeliveryLike], incidents: Iterable[IncidentLike], *,
                  now: datetime) -> dict[tuple[str, str], PartyFigures]:
    """Per (country, party): notifications sent, acknowledged, acknowledged by the deadline, the median
    hours to acknowledge, silent ones (not those a change replaced first), incidents attributed to the
    party; incidents whose party is not known under (country, UNKNOWN_PARTY). The caller picks the
    period (a quarter's deliveries and incidents)."""
    out: dict[tuple[str, str], PartyFigures] = defaultdict(PartyFigures)
    for d in deliveries:
        f = out[(d.country, d.party)]
        f.sent += 1
        if d.acknowledged_at is not None:
            f.acknowledged += 1
            f.acknowledged_on_time += d.acknowledged_at <= d.due_at
            f.hours_to_acknowledge.append((d.acknowledged_at - d.sent_at).total_seconds() / 3600)
        elif now >= d.due_at and not d.superseded:
            f.silent += 1
    for incident in incidents:
        out[(incident.country, incident.party or UNKNOWN_PARTY)].incidents += 1
    return dict(out)


def route_problems(country: str, points: Sequence[Point]) -> list[str]:
    """A movement's route: at least two points, each inside the country."""
    problems = [] if len(points) >= 2 else ["a route has at least two points: where it starts and where it ends"]
    problems += [f"point {n}: {p}" for n, point in enumerate(points, 1) if (p := point_problem(country, point))]
    return problems
