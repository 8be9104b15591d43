"""Notification rules, free of I/O: policies per kind, quiet hours, what happens next.

A notification is `queued` until Telegram accepted it (`sent`), then
`acknowledged` when the person pressed a button; or `escalated` (still
unacknowledged, others told), `expired` (no longer useful), `failed` (the user
blocked the bot, or Telegram refused it), `folded` (over the person's daily cap:
listed in their daily summary instead of sent alone), `unlinked` (the person has no
Telegram link: never tried, kept for when they link). "Sent" is never taken for "read".

Noise stays bounded by construction: a failure is told to the desk once per person
in a daily summary (never a message per failed message), a summary that fails
produces nothing (alerts about alerts stop there), and past `daily_cap` non-urgent
messages a day a person gets the rest folded into one summary. Urgent kinds are
never capped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from shared.notices import zone  # the recipients' zones, as the texts show them

State = Literal["queued", "sent", "acknowledged", "escalated", "expired", "failed", "folded", "unlinked"]
STATES: tuple[str, ...] = ("queued", "sent", "acknowledged", "escalated", "expired", "failed", "folded", "unlinked")
OPEN_STATES: frozenset[str] = frozenset({"queued", "sent", "escalated", "folded"})
Action = Literal["send", "renotify", "escalate", "expire", "tell_desk"]
# Summaries: never capped, and one that fails is not itself reported (no alert about an alert about an alert)
DAILY_SUMMARY = "summary.daily"  # to a person: what went over their daily cap
UNREACHED_SUMMARY = "delivery.unreached"  # to the desk and advisers: who Telegram could not reach, what failed
SUMMARY_KINDS: frozenset[str] = frozenset({DAILY_SUMMARY, UNREACHED_SUMMARY})
# Sent to a role's holders, yet each holder answers for themselves (an ad-hoc message whose
# acknowledgements are counted person by person): not one alert that the first answer closes.
PER_PERSON_KINDS: frozenset[str] = frozenset({"adhoc.message"})

QUIET_START, QUIET_END = time(22, 0), time(7, 0)


@dataclass(frozen=True)
class KindPolicy:
    """What happens to an unacknowledged notification of a kind, counted from its first send."""

    renotify_after: timedelta | None = timedelta(hours=24)
    escalate_after: timedelta | None = timedelta(hours=48)  # to the recipient's regional adviser
    desk_after: timedelta | None = timedelta(hours=96)  # then to the CMCS desk
    expire_after: timedelta | None = timedelta(days=14)
    urgent: bool = False  # urgent kinds ignore quiet hours
    max_renotify: int = 3


DEFAULT = KindPolicy()
# Alerts go to advisers and the desk themselves: nobody above them to escalate to.
ALERT = KindPolicy(escalate_after=None, desk_after=None)
# Told once, never repeated nor escalated (a campaign's own later steps do the reminding).
ONCE = replace(ALERT, renotify_after=None)
# Regional calls: told once; the planner closes a reminder when the call starts, not a timer.
CALL = replace(ONCE, expire_after=None)
POLICIES: dict[str, KindPolicy] = {
    "post.gapped": ALERT,
    "delivery.failed": ALERT,  # before daily summaries: one alert per failed message
    UNREACHED_SUMMARY: ONCE,
    DAILY_SUMMARY: replace(ONCE, expire_after=timedelta(days=7)),
    "escalation": ALERT,
    "handover.prompt": ONCE,
    "handover.reminder": ONCE,
    "handover.departure": ONCE,
    "handover.missing": ALERT,
    "handover.introduction": ONCE,
    "handover.note": ONCE,
    "call.reminder": CALL,
    "call.link": replace(CALL, urgent=True),
    "call.chair": CALL,
    "call.summary": CALL,
    "call.changed": replace(CALL, urgent=True),
    # lessons: its own steps remind and escalate an AAR (due-7 d, due, then adviser and desk)
    "aar.reminder": ONCE,
    "aar.overdue": ALERT,
    "lessons.digest": ONCE,
    # a person's Telegram link: told at once, once; nothing to answer, so closed the next day
    "telegram.unlinked": replace(ONCE, urgent=True, expire_after=timedelta(days=1)),
    "telegram.link_confirmed": replace(ONCE, urgent=True, expire_after=timedelta(days=1)),
    "telegram.link_held": ALERT,
    # HNS4D: a party's liaison is reminded every 6 hours until it acknowledges receipt (never escalated to the
    # liaison's "adviser": HNS4D tells the officer, the adviser and the desk of a party's silence itself, each once)
    "hns4d.notification": KindPolicy(renotify_after=timedelta(hours=6), escalate_after=None, desk_after=None,
                                     urgent=True),
    "hns4d.silence": replace(ONCE, urgent=True),
    # a submission waits for an officer's review: reminded every 4 hours, the adviser told after 8, the desk after 16
    "hns4d.review": KindPolicy(renotify_after=timedelta(hours=4), escalate_after=timedelta(hours=8),
                               desk_after=timedelta(hours=16)),
    "hns4d.refused": replace(ONCE, urgent=True),
    "hns4d.figures": ONCE,  # the quarter's figures, to the desk: read, nothing to answer
    # the desk's or an adviser's own message: re-sent, never escalated (the sender follows it with send-status)
    "adhoc.message": ALERT,
}


@dataclass(frozen=True)
class Rules:
    """Notify's rules as configured: kind policies (overrides of POLICIES) and the bounds on noise."""

    policies: dict[str, KindPolicy] | None = None
    daily_cap: int = 20  # non-urgent messages a person gets one by one on a day of theirs
    summary_at: time = time(18, 0)  # local time of a person's daily summary of what went over the cap
    unreached_gather: timedelta = timedelta(minutes=10)  # a wave of failures lands in one summary
    step_retry: timedelta = timedelta(minutes=1)  # a step that failed for a passing reason (roster away) tries again
    email: bool = False  # those Telegram cannot reach get it by e-mail (an SMTP server is configured)

    def policy(self, kind: str) -> KindPolicy:
        return policy_for(kind, self.policies)


def policy_for(kind: str, overrides: dict[str, KindPolicy] | None = None) -> KindPolicy:
    if overrides and kind in overrides:
        return overrides[kind]
    return POLICIES.get(kind, DEFAULT)


def local_day(now: datetime, timezone: str | None) -> str:
    """The recipient's calendar day at `now`, ISO (the daily cap's key)."""
    return now.astimezone(zone(timezone)).date().isoformat()


def summary_due(now: datetime, timezone: str | None, at: time) -> datetime:
    """When today's daily summary goes: `at` local on the recipient's day, or now if that has passed."""
    local = now.astimezone(zone(timezone))
    due = datetime.combine(local.date(), at, tzinfo=local.tzinfo).astimezone(now.tzinfo)
    return max(due, now)


def quiet_release(now: datetime, timezone: str | None, *, start: time = QUIET_START, end: time = QUIET_END) -> datetime | None:
    """When `now` falls in the recipient's quiet hours, the moment they end
    (07:00 local, in UTC); otherwise None. DST-safe: local wall-clock times."""
    local = now.astimezone(zone(timezone))
    t = local.time()
    if start <= end:
        quiet = start <= t < end
    else:
        quiet = t >= start or t < end
    if not quiet:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    release = datetime.combine(day, end, tzinfo=local.tzinfo)
    return release.astimezone(now.tzinfo)


@dataclass(frozen=True)
class Plan:
    """The next scheduled step of an open notification, or none."""

    action: Action | None
    at: datetime | None


def next_step(*, policy: KindPolicy, first_sent_at: datetime, attempts: int, escalation_level: int) -> Plan:
    """After a (re)send or escalation: the earliest of the steps still to come."""
    steps: list[tuple[datetime, Action]] = []
    if policy.renotify_after is not None and attempts <= policy.max_renotify:
        steps.append((first_sent_at + policy.renotify_after * attempts, "renotify"))
    if escalation_level == 0 and policy.escalate_after is not None:
        steps.append((first_sent_at + policy.escalate_after, "escalate"))
    if escalation_level <= 1 and policy.desk_after is not None:
        steps.append((first_sent_at + policy.desk_after, "escalate"))
    if policy.expire_after is not None:
        steps.append((first_sent_at + policy.expire_after, "expire"))
    if not steps:
        return Plan(None, None)
    at, action = min(steps, key=lambda s: s[0])
    return Plan(action, at)


# --- catching up with a person who linked Telegram ------------------------------------------------

CALL_LENGTH = timedelta(hours=1)  # a call's reminders name its start only; its link is useful while it runs
CALL_STARTS_KINDS = frozenset({"call.reminder", "call.chair"})  # useless once the call has started
CALL_RUNS_KINDS = frozenset({"call.link"})  # useless once the call is over
# kinds one subject's newer message replaces; a key earlier in a family outranks the rest (the
# handover prompt, with its checklist and button, is what a late reader needs, not the reminders of it)
# kinds that live this long or less are news of the day (a link changed, a daily summary): not sent late.
# Longer-lived ones are closed by their matter (a post filled, a note written, an AAR submitted), not by age.
SHORT_LIVED = timedelta(days=7)
FAMILIES: dict[str, tuple[str, ...]] = {"handover.prompt": ("handover", "0"), "handover.reminder": ("handover", "1")}


@dataclass(frozen=True)
class Owed:
    """A notification kept for a person without Telegram, as catch-up sees it."""

    id: object
    kind: str
    subject: str
    occurrence: str
    owed_at: datetime  # when it was meant to go


@dataclass(frozen=True)
class Verdict:
    owed: Owed
    send: bool  # False: expired with `reason`
    reason: str


def call_start(occurrence: str) -> datetime | None:
    """A call reminder's occurrence is the call's start, UTC to the minute (2026-03-03T13:00Z)."""
    try:
        return datetime.strptime(occurrence, "%Y-%m-%dT%H:%MZ").replace(tzinfo=ZoneInfo("UTC"))
    except ValueError:
        return None


def moment_passed(o: Owed, now: datetime) -> str | None:
    """Why a message no longer makes sense at `now`, from its own data; None if it still does."""
    start = call_start(o.occurrence) if o.kind in CALL_STARTS_KINDS | CALL_RUNS_KINDS else None
    if start is not None:
        end = start + CALL_LENGTH if o.kind in CALL_RUNS_KINDS else start
        if end <= now:
            return f"the call of {start:%d %b %H:%M} UTC has {'ended' if o.kind in CALL_RUNS_KINDS else 'started'}"
    return None


def catch_up_plan(owed: list[Owed], now: datetime, *, settled: frozenset[str] = frozenset(),
                  overrides: dict[str, KindPolicy] | None = None) -> list[Verdict]:
    """What a person who just linked Telegram gets of what was kept for them: once each, newest
    state only. Expired: what is about a matter settled meanwhile (`settled`: escalated
    notifications answered since), whose moment has passed (a call already started), past
    its short kind's life, or replaced by a newer message of the same subject. The rest is sent,
    oldest first (those meant for later go at their time)."""
    verdicts: dict[object, Verdict] = {}
    due: list[Owed] = []
    for o in sorted(owed, key=lambda o: (o.owed_at, o.occurrence)):
        expire_after = policy_for(o.kind, overrides).expire_after
        if o.kind == "escalation" and o.subject in settled:
            verdicts[o.id] = Verdict(o, False, "answered before it could be told")
        elif (why := moment_passed(o, now)) is not None:
            verdicts[o.id] = Verdict(o, False, why)
        elif expire_after is not None and expire_after <= SHORT_LIVED and o.owed_at + expire_after <= now:
            verdicts[o.id] = Verdict(o, False, f"too old: meant for {o.owed_at:%d %b %H:%M} UTC")
        elif o.owed_at <= now:
            due.append(o)
        else:
            verdicts[o.id] = Verdict(o, True, f"meant for {o.owed_at:%d %b %H:%M} UTC")
    newest: dict[tuple[str, str], Owed] = {}
    for o in due:  # oldest first: a later one of the same family replaces, unless it ranks lower
        family, rank = FAMILIES.get(o.kind, (o.kind, "0"))
        kept = newest.get((family, o.subject))
        if kept is not None and FAMILIES.get(kept.kind, (kept.kind, "0"))[1] < rank:
            verdicts[o.id] = Verdict(o, False, f"superseded by the {kept.kind} sent on linking")
            continue
        if kept is not None:
            verdicts[kept.id] = Verdict(kept, False, f"superseded by a newer {o.kind}")
        newest[(family, o.subject)] = o
    for o in newest.values():
        verdicts[o.id] = Verdict(o, True, "sent on linking")
    return sorted(verdicts.values(), key=lambda v: (v.owed.owed_at, v.owed.occurrence))
