"""Rotation rules, pure: what the roster should announce about deployments and
posts on a given day, from their dates and what was announced already.

The scan that applies these decisions records each announcement on the row in
the same transaction as the outbox event, and every event id is derived from the
fact it states, so two scanners (or a re-run) announce each fact once.

Clock sanity. The facts are the recorded dates (start, planned end, actual end);
the scan's day only decides *when* a fact falls due. A scan whose clock runs
ahead would announce facts whose day has not come, and the marker it records
("ended announced", "3 gap alerts sent") would then silence the true
announcement. So:

- a scan more than the configured margin past the last accepted one is refused
  (`clock_jump`); an operator can confirm it when the clock is right (the
  service was down that long). Nothing is announced or recorded by a refusal.
- a confirmed jump is remembered (the day of the last scan before it) until a
  scan shows the clock was wrong: a later scan whose day is earlier than what
  was announced takes back (`Reopened`) every announcement falling due after
  max(its day, the day before the jump) + `clock_tolerance_days`. The marker
  is cleared, so the fact is announced again when its day comes. Ended falls
  due the day after the end, started on the start, ending soon
  `ending_soon_days` before the planned end, gap alert n on gapped_since +
  (n-1) x `gap_repeat_days`. If the jump was right, nothing is ever earlier
  than a later scan's day and nothing is taken back.
- without a confirmed jump, a clock that goes back takes nothing back and
  announces nothing again: every marker stands, and a gap recorded for a day
  after the scan's is left alone rather than reported "filled".

A taken-back fact announced again must be a new message (the outbox, JetStream
and every consumer de-duplicate by event id), so each taking-back starts a new
epoch, kept in the store, and ids of epoch n > 0 include it
(`announcement_id`); epoch 0 keeps the ids scanners always used.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from shared.events import deterministic_id


@dataclass(frozen=True)
class RotationPolicy:
    ending_soon_days: int = 21
    gap_repeat_days: int = 7
    # Starts and ends older than this (e.g. history in an import) are recorded
    # as announced without telling anyone: nobody needs a prompt for 2019.
    announce_window_days: int = 30
    # after a confirmed jump, announcements up to this many days early are kept
    # (replicas' clocks differ by seconds around midnight)
    clock_tolerance_days: int = 1


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


@dataclass(frozen=True)
class Reopened:
    """An announcement made for a day still to come, taken back: its fact is announced again when due."""

    fact: str  # started | ending_soon | ended | gapped | gap_alert
    subject_id: uuid.UUID  # the deployment, or the post for gaps
    due: date  # the day the fact falls due


@dataclass
class PostOutcome:
    decisions: list[Decision] = field(default_factory=list)
    gapped_since: date | None = None
    gap_alerts_sent: int = 0
    reopened: list[Reopened] = field(default_factory=list)
    # the deployments whose markers were taken back, as they should now be recorded
    markers: dict[uuid.UUID, DeploymentView] = field(default_factory=dict)


def clock_jump(last_scan_at: datetime | None, now: datetime, max_jump: timedelta | None) -> timedelta | None:
    """How far past the last accepted scan this one is, if that is more than `max_jump`
    (the scan is then refused); None when it may go ahead. A first scan, a scan
    within the margin and a clock gone back all go ahead (`reopen` handles the last)."""
    if last_scan_at is None or max_jump is None:
        return None
    jump = now - last_scan_at
    return jump if jump > max_jump else None


def announcement_id(decision: Decision, epoch: int) -> uuid.UUID:
    """The event id of a decision in an epoch (see the module docstring)."""
    return decision.event_id if epoch == 0 else deterministic_id("rotation.epoch", epoch, decision.event_id)


def early_after(today: date, jump_from: date | None, policy: RotationPolicy = RotationPolicy()) -> date | None:
    """Announcements falling due after this day were made early (None: no confirmed jump pending)."""
    return None if jump_from is None else max(today, jump_from) + timedelta(days=policy.clock_tolerance_days)


def reopen(post: PostView, horizon: date | None, policy: RotationPolicy = RotationPolicy()
           ) -> tuple[PostView, list[Reopened]]:
    """The post with every announcement falling due after `horizon` taken back."""
    if horizon is None:
        return post, []
    reopened: list[Reopened] = []
    deployments = []
    for dep in post.deployments:
        if dep.started_announced and dep.start > horizon:
            reopened.append(Reopened("started", dep.id, dep.start))
            dep = replace(dep, started_announced=False)
        soon = dep.planned_end - timedelta(days=policy.ending_soon_days)
        if dep.ending_soon_announced_for == dep.planned_end and soon > horizon:
            reopened.append(Reopened("ending_soon", dep.id, soon))
            dep = replace(dep, ending_soon_announced_for=None)
        if dep.ended_announced and dep.end + timedelta(days=1) > horizon:
            reopened.append(Reopened("ended", dep.id, dep.end + timedelta(days=1)))
            dep = replace(dep, ended_announced=False)
        deployments.append(dep)
    since, sent = post.gapped_since, post.gap_alerts_sent
    if since is not None and since > horizon:
        reopened.append(Reopened("gapped", post.id, since))
        since, sent = None, 0
    elif since is not None and sent:
        last_due = since + timedelta(days=policy.gap_repeat_days * (sent - 1))
        if last_due > horizon:
            reopened.append(Reopened("gap_alert", post.id, last_due))
            sent = (horizon - since).days // policy.gap_repeat_days + 1
    if not reopened:
        return post, []
    return replace(post, gapped_since=since, gap_alerts_sent=sent, deployments=tuple(deployments)), reopened


def assess_post(post: PostView, today: date, policy: RotationPolicy = RotationPolicy(), *,
                jump_from: date | None = None) -> PostOutcome:
    """Everything to announce for one post and its deployments on `today`, after taking
    back what was announced early since a confirmed jump from `jump_from`."""
    original = {d.id: d for d in post.deployments}
    post, reopened = reopen(post, early_after(today, jump_from, policy), policy)
    outcome = PostOutcome(gapped_since=post.gapped_since, gap_alerts_sent=post.gap_alerts_sent, reopened=reopened)
    outcome.markers = {d.id: d for d in post.deployments if d != original[d.id]}
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
        if post.gapped_since is not None and post.gapped_since > today:
            # a gap recorded by a scan ahead of ours (a replica a moment past midnight, or our
            # clock gone back): by our clock it has not begun, so nothing is filled
            return outcome
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
