"""Rotation rules, pure: what the roster should announce about deployments and
posts on a given day, from their dates and what was announced already.

The scan that applies these decisions records each announcement on the row in
the same transaction as the outbox event, and every event id is derived from the
fact it states, so two scanners (or a re-run) announce each fact once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.events import deterministic_id


@dataclass(frozen=True)
class RotationPolicy:
    ending_soon_days: int = 21
    gap_repeat_days: int = 7
    # Starts and ends older than this (e.g. history in an import) are recorded
    # as announced without telling anyone: nobody needs a prompt for 2019.
    announce_window_days: int = 30


@dataclass(frozen=True)
class DeploymentView:
    id: uuid.UUID
    person_id: uuid.UUID
    post_id: uuid.UUID
    start: date
    planned_end: date
    actual_end: date | None = None
    started_announced: bool = False
    ending_soon_announced_for: date | None = None
    ended_announced: bool = False

    @property
    def end(self) -> date:
        return self.actual_end or self.planned_end

    def active_on(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class PostView:
    id: uuid.UUID
    gapped_since: date | None = None
    gap_alerts_sent: int = 0
    deployments: tuple[DeploymentView, ...] = ()


@dataclass(frozen=True)
class Started:
    deployment: DeploymentView
    announce: bool

    @property
    def event_id(self) -> uuid.UUID:
        return deterministic_id("deployment.started", self.deployment.id)


@dataclass(frozen=True)
class EndingSoon:
    deployment: DeploymentView
    days_left: int
    successor_person_id: uuid.UUID | None

    @property
    def event_id(self) -> uuid.UUID:
        return deterministic_id("deployment.ending_soon", self.deployment.id, self.deployment.planned_end)


@dataclass(frozen=True)
class Ended:
    deployment: DeploymentView
    announce: bool

    @property
    def event_id(self) -> uuid.UUID:
        return deterministic_id("deployment.ended", self.deployment.id)


@dataclass(frozen=True)
class Gapped:
    post_id: uuid.UUID
    gapped_since: date
    alert_number: int
    last_deployment_id: uuid.UUID | None

    @property
    def event_id(self) -> uuid.UUID:
        return deterministic_id("post.gapped", self.post_id, self.gapped_since, self.alert_number)


@dataclass(frozen=True)
class Filled:
    post_id: uuid.UUID
    gapped_since: date
    deployment: DeploymentView

    @property
    def event_id(self) -> uuid.UUID:
        return deterministic_id("post.filled", self.post_id, self.gapped_since)


Decision = Started | EndingSoon | Ended | Gapped | Filled


@dataclass
class PostOutcome:
    decisions: list[Decision] = field(default_factory=list)
    gapped_since: date | None = None
    gap_alerts_sent: int = 0


def assess_post(post: PostView, today: date, policy: RotationPolicy = RotationPolicy()) -> PostOutcome:
    """Everything to announce for one post and its deployments on `today`."""
    outcome = PostOutcome(gapped_since=post.gapped_since, gap_alerts_sent=post.gap_alerts_sent)
    recent = today - timedelta(days=policy.announce_window_days)
    deployments = sorted(post.deployments, key=lambda d: (d.start, d.id))

    for dep in deployments:
        if dep.start <= today and not dep.started_announced:
            outcome.decisions.append(Started(dep, announce=dep.start >= recent and dep.end >= today))
        if dep.active_on(today) and dep.actual_end is None:
            days_left = (dep.planned_end - today).days
            if days_left <= policy.ending_soon_days and dep.ending_soon_announced_for != dep.planned_end:
                outcome.decisions.append(EndingSoon(dep, days_left, _successor(dep, deployments)))
        if dep.end < today and not dep.ended_announced:
            outcome.decisions.append(Ended(dep, announce=dep.end >= recent))

    active = [d for d in deployments if d.active_on(today)]
    ended = [d for d in deployments if d.end < today]
    if active:
        if post.gapped_since is not None:
            outcome.decisions.append(Filled(post.id, post.gapped_since, min(active, key=lambda d: d.start)))
        outcome.gapped_since, outcome.gap_alerts_sent = None, 0
    elif ended:
        last = max(ended, key=lambda d: (d.end, d.start))
        since = last.end + timedelta(days=1)
        if since != post.gapped_since:
            # a new gap (or the last end date moved): alerts start over
            if post.gapped_since is not None and post.gap_alerts_sent and since > post.gapped_since:
                outcome.decisions.append(Filled(post.id, post.gapped_since, last))
            outcome.gap_alerts_sent = 0
        alert_number = (today - since).days // policy.gap_repeat_days + 1
        if alert_number > outcome.gap_alerts_sent:
            outcome.decisions.append(Gapped(post.id, since, alert_number, last.id))
            outcome.gap_alerts_sent = alert_number
        outcome.gapped_since = since
    return outcome


def _successor(dep: DeploymentView, on_post: list[DeploymentView]) -> uuid.UUID | None:
    later = [d for d in on_post if d.person_id != dep.person_id and d.start > dep.start and d.end >= dep.planned_end]
    return min(later, key=lambda d: d.start).person_id if later else None
