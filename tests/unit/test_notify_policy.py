"""Notification rules without I/O: quiet hours across time zones and DST, what comes next."""

from datetime import UTC, datetime, timedelta

from services.notify.policy import ALERT, DEFAULT, KindPolicy, next_step, policy_for, quiet_release


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_quiet_hours_in_bangkok_release_at_seven_local() -> None:
    assert quiet_release(utc(2026, 3, 2, 14, 59), "Asia/Bangkok") is None  # 21:59 local
    assert quiet_release(utc(2026, 3, 2, 15, 0), "Asia/Bangkok") == utc(2026, 3, 3, 0, 0)  # 22:00 -> 07:00 next day
    assert quiet_release(utc(2026, 3, 2, 23, 30), "Asia/Bangkok") == utc(2026, 3, 3, 0, 0)  # 06:30 -> 07:00 same day
    assert quiet_release(utc(2026, 3, 3, 0, 0), "Asia/Bangkok") is None  # 07:00 sharp: awake


def test_quiet_hours_follow_daylight_saving_time() -> None:
    # New York: 07:00 local is 12:00 UTC in winter (EST) and 11:00 UTC in summer (EDT)
    assert quiet_release(utc(2026, 1, 15, 4, 0), "America/New_York") == utc(2026, 1, 15, 12, 0)
    assert quiet_release(utc(2026, 7, 15, 4, 0), "America/New_York") == utc(2026, 7, 15, 11, 0)
    # the night DST starts in Europe (29 March 2026, 02:00 -> 03:00 in Paris): still 07:00 local, now UTC+2
    assert quiet_release(utc(2026, 3, 28, 23, 0), "Europe/Paris") == utc(2026, 3, 29, 5, 0)
    # and the night it ends (25 October 2026): 07:00 local is UTC+1 again
    assert quiet_release(utc(2026, 10, 24, 23, 0), "Europe/Paris") == utc(2026, 10, 25, 6, 0)


def test_an_unknown_time_zone_counts_as_utc() -> None:
    assert quiet_release(utc(2026, 3, 2, 23, 0), "Mars/Olympus") == utc(2026, 3, 3, 7, 0)
    assert quiet_release(utc(2026, 3, 2, 23, 0), None) == utc(2026, 3, 3, 7, 0)


def test_default_policy_renotifies_escalates_to_the_adviser_then_the_desk_then_expires() -> None:
    t0 = utc(2026, 3, 2, 9, 0)
    first = next_step(policy=DEFAULT, first_sent_at=t0, attempts=1, escalation_level=0)
    assert (first.action, first.at) == ("renotify", t0 + timedelta(hours=24))
    second = next_step(policy=DEFAULT, first_sent_at=t0, attempts=2, escalation_level=0)
    assert (second.action, second.at) == ("renotify", t0 + timedelta(hours=48))  # ties: the re-send first
    third = next_step(policy=DEFAULT, first_sent_at=t0, attempts=3, escalation_level=0)
    assert (third.action, third.at) == ("escalate", t0 + timedelta(hours=48))
    to_desk = next_step(policy=DEFAULT, first_sent_at=t0, attempts=4, escalation_level=1)
    assert (to_desk.action, to_desk.at) == ("escalate", t0 + timedelta(hours=96))
    done = next_step(policy=DEFAULT, first_sent_at=t0, attempts=4, escalation_level=2)
    assert (done.action, done.at) == ("expire", t0 + timedelta(days=14))


def test_alerts_are_not_escalated_and_a_policy_without_steps_has_none() -> None:
    t0 = utc(2026, 3, 2, 9, 0)
    assert next_step(policy=ALERT, first_sent_at=t0, attempts=1, escalation_level=0).action == "renotify"
    assert next_step(policy=ALERT, first_sent_at=t0, attempts=4, escalation_level=0).action == "expire"
    quiet = KindPolicy(renotify_after=None, escalate_after=None, desk_after=None, expire_after=None)
    plan = next_step(policy=quiet, first_sent_at=t0, attempts=1, escalation_level=0)
    assert plan.action is None and plan.at is None


def test_figures_keep_sent_and_acknowledged_apart() -> None:
    import uuid

    from services.notify.models import Notification
    from services.notify.stats import figures

    t0 = utc(2026, 3, 2, 9, 0)

    def n(state: str, *, sent: bool = True, ack_after: int | None = None, level: int = 0, region: str = "ROWCA") -> Notification:
        return Notification(id=uuid.uuid4(), kind="post.gapped", subject="p", occurrence="1", person_id=uuid.uuid4(),
                            text="t", state=state, created_at=t0, sent_at=t0 if sent else None, escalation_level=level,
                            region=region,
                            acknowledged_at=t0 + timedelta(minutes=ack_after) if ack_after is not None else None)

    rows = [n("acknowledged", ack_after=10), n("acknowledged", ack_after=30), n("acknowledged", ack_after=120, level=1),
            n("sent"), n("failed", sent=False), n("queued", sent=False), n("sent", region="ROAP")]
    asia, west = figures(rows)  # sorted by kind, then region
    assert (asia.region, asia.total, asia.sent, asia.acknowledged, asia.ack_rate) == ("ROAP", 1, 1, 0, 0.0)
    assert (west.total, west.sent, west.acknowledged, west.escalated, west.failed, west.waiting) == (6, 4, 3, 1, 1, 1)
    assert west.ack_rate == 0.75
    assert (west.ack_median_minutes, west.ack_p90_minutes) == (30.0, 120.0)


def _owed(name: str, kind: str, subject: str, at: datetime, occurrence: str = "") -> "Owed":
    from services.notify.policy import Owed

    return Owed(id=name, kind=kind, subject=subject, occurrence=occurrence or name, owed_at=at)


def test_catch_up_sends_the_newest_state_once_and_expires_the_rest_with_a_reason() -> None:
    from services.notify.policy import catch_up_plan

    now = utc(2026, 3, 20, 10, 0)  # the officer links three days before his deployment ends (23 March)
    owed = [
        _owed("prompt", "handover.prompt", "dep-1", utc(2026, 3, 2, 9)),
        _owed("r14", "handover.reminder", "dep-1", utc(2026, 3, 9, 9)),
        _owed("r7", "handover.reminder", "dep-1", utc(2026, 3, 16, 9)),
        _owed("departure", "handover.departure", "dep-1", utc(2026, 3, 21, 9)),  # two days before: still ahead
        _owed("intro", "handover.introduction", "dep-2", utc(2026, 3, 10, 9)),
        _owed("gap1", "post.gapped", "post-1", utc(2026, 3, 6, 9), "2026-03-05#1"),
        _owed("gap2", "post.gapped", "post-1", utc(2026, 3, 13, 9), "2026-03-05#2"),
        _owed("call-past", "call.reminder", "call:ROWCA:a", utc(2026, 3, 16, 13), "2026-03-17T13:00Z"),
        _owed("call-ahead", "call.reminder", "call:ROWCA:b", utc(2026, 3, 19, 13), "2026-03-31T13:00Z"),
        _owed("link-running", "call.link", "call:ROWCA:c", utc(2026, 3, 20, 9), "2026-03-20T09:30Z"),
        _owed("esc-done", "escalation", "n-answered", utc(2026, 3, 18, 9), "level-1"),
        _owed("esc-open", "escalation", "n-open", utc(2026, 3, 18, 9), "level-1"),
        _owed("old", "telegram.link_confirmed", "p", utc(2026, 3, 1, 9)),  # a one-day kind, long past
    ]
    plan = {v.owed.id: v for v in catch_up_plan(owed, now, settled=frozenset({"n-answered"}))}
    assert {k for k, v in plan.items() if v.send} == {
        "prompt", "departure", "intro", "gap2", "call-ahead", "link-running", "esc-open"}
    assert plan["r14"].reason == plan["r7"].reason == "superseded by the handover.prompt sent on linking"
    assert plan["gap1"].reason == "superseded by a newer post.gapped"
    assert plan["call-past"].reason == "the call of 17 Mar 13:00 UTC has started"
    assert plan["esc-done"].reason == "answered before it could be told"
    assert plan["old"].reason.startswith("too old")
    assert plan["departure"].reason == "meant for 21 Mar 09:00 UTC"  # goes at its time, not now
    assert len(plan) == len(owed)  # each one decided once


def test_a_call_link_is_owed_until_the_call_ends() -> None:
    from services.notify.policy import catch_up_plan

    link = _owed("link", "call.link", "call:ROAP:x", utc(2026, 3, 20, 8), "2026-03-20T09:00Z")
    assert catch_up_plan([link], utc(2026, 3, 20, 9, 59))[0].send
    (late,) = catch_up_plan([link], utc(2026, 3, 20, 10, 0))
    assert not late.send and late.reason == "the call of 20 Mar 09:00 UTC has ended"


def test_figures_add_up_and_count_each_message_once() -> None:
    import uuid

    from services.notify.models import Notification
    from services.notify.stats import figures

    t0 = utc(2026, 3, 2, 9, 0)
    reader = uuid.uuid4()

    def n(state: str, *, sent: bool, folded: str | None = None, level: int = 0) -> Notification:
        return Notification(id=uuid.uuid4(), kind="post.gapped", subject="p", occurrence="1", person_id=reader,
                            text="t", state=state, created_at=t0, sent_at=t0 if sent else None, folded_on=folded,
                            escalation_level=level, acknowledged_at=t0 if state == "acknowledged" else None)

    rows = [n("acknowledged", sent=True, level=1), n("escalated", sent=True, level=1), n("expired", sent=True),
            n("expired", sent=False), n("folded", sent=False, folded="2026-03-02"),
            n("folded", sent=False, folded="2026-03-03"), n("acknowledged", sent=False, folded="2026-03-03"),
            n("unlinked", sent=False), n("failed", sent=False), n("queued", sent=False)]
    (f,) = figures(rows, summaries_sent={(reader, "2026-03-02")})  # the summary of the 3rd has not gone yet
    assert (f.acknowledged, f.unanswered) == (2, 3)  # the expired one that was sent went unanswered
    assert (f.sent, f.waiting, f.unlinked, f.failed, f.withdrawn) == (5, 2, 1, 1, 1)
    assert f.sent == f.acknowledged + f.unanswered
    assert f.total == 10 == f.sent + f.waiting + f.unlinked + f.failed + f.withdrawn
    assert (f.escalated, f.ack_rate) == (2, 0.4)


def test_an_ad_hoc_message_is_re_sent_but_never_escalated_to_the_adviser_who_may_have_sent_it() -> None:
    policy = policy_for("adhoc.message")
    assert policy.renotify_after == timedelta(hours=24) and policy.max_renotify == 3
    assert policy.escalate_after is None and policy.desk_after is None
