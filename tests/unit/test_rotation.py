import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from services.roster.rotation import (
    DeploymentView,
    Ended,
    EndingSoon,
    Filled,
    Gapped,
    PostView,
    RotationPolicy,
    Started,
    announcement_id,
    assess_post,
    clock_jump,
)

D = date(2026, 6, 1)
POST = uuid.uuid4()


def dep(start: date, end: date, *, person: uuid.UUID | None = None, **kw: object) -> DeploymentView:
    return DeploymentView(id=uuid.uuid4(), person_id=person or uuid.uuid4(), post_id=POST, start=start,
                          planned_end=end, **kw)  # type: ignore[arg-type]


def kinds(decisions: list[object]) -> list[str]:
    return [type(d).__name__ for d in decisions]


def test_start_announced_once_on_its_day() -> None:
    d = dep(D, D + timedelta(days=180))
    assert kinds(assess_post(PostView(POST, deployments=(d,)), D - timedelta(days=1)).decisions) == []
    out = assess_post(PostView(POST, deployments=(d,)), D)
    assert kinds(out.decisions) == ["Started"] and out.decisions[0].announce  # type: ignore[union-attr]
    marked = replace(d, started_announced=True)
    assert assess_post(PostView(POST, deployments=(marked,)), D).decisions == []


def test_ending_soon_at_21_days_not_22() -> None:
    end = D + timedelta(days=60)
    d = dep(D, end, started_announced=True)
    assert assess_post(PostView(POST, deployments=(d,)), end - timedelta(days=22)).decisions == []
    out = assess_post(PostView(POST, deployments=(d,)), end - timedelta(days=21))
    assert kinds(out.decisions) == ["EndingSoon"]
    assert out.decisions[0].days_left == 21  # type: ignore[union-attr]


def test_ending_soon_once_per_end_date_and_again_when_it_moves() -> None:
    end = D + timedelta(days=60)
    d = dep(D, end, started_announced=True, ending_soon_announced_for=end)
    day = end - timedelta(days=10)
    assert assess_post(PostView(POST, deployments=(d,)), day).decisions == []
    moved = replace(d, planned_end=end + timedelta(days=5))
    out = assess_post(PostView(POST, deployments=(moved,)), day)
    assert kinds(out.decisions) == ["EndingSoon"]
    first = EndingSoon(d, 10, None)
    assert out.decisions[0].event_id != first.event_id  # a new fact, a new id


def test_ending_soon_names_the_successor() -> None:
    end = D + timedelta(days=60)
    outgoing = dep(D, end, started_announced=True)
    incoming = dep(end + timedelta(days=1), end + timedelta(days=200))
    out = assess_post(PostView(POST, deployments=(outgoing, incoming)), end - timedelta(days=5))
    soon = [d for d in out.decisions if isinstance(d, EndingSoon)]
    assert soon[0].successor_person_id == incoming.person_id


def test_ended_then_gapped_then_repeated_every_7_days_then_filled() -> None:
    end = D + timedelta(days=30)
    d = dep(D, end, started_announced=True, ending_soon_announced_for=end)
    post = PostView(POST, deployments=(d,))
    out = assess_post(post, end + timedelta(days=1))
    assert kinds(out.decisions) == ["Ended", "Gapped"]
    gap = out.decisions[1]
    assert isinstance(gap, Gapped) and gap.gapped_since == end + timedelta(days=1) and gap.alert_number == 1

    ended = replace(d, ended_announced=True)
    post = PostView(POST, gapped_since=out.gapped_since, gap_alerts_sent=1, deployments=(ended,))
    assert assess_post(post, end + timedelta(days=7)).decisions == []  # day 6 of the gap
    out = assess_post(post, end + timedelta(days=8))  # day 7
    assert kinds(out.decisions) == ["Gapped"] and out.decisions[0].alert_number == 2  # type: ignore[union-attr]

    post = PostView(POST, gapped_since=out.gapped_since, gap_alerts_sent=2, deployments=(ended,))
    successor = dep(end + timedelta(days=10), end + timedelta(days=200))
    out = assess_post(replace(post, deployments=(ended, successor)), end + timedelta(days=10))
    assert kinds(out.decisions) == ["Started", "Filled"]
    filled = out.decisions[1]
    assert isinstance(filled, Filled) and filled.gapped_since == end + timedelta(days=1)
    assert out.gapped_since is None and out.gap_alerts_sent == 0


def test_no_gap_when_successor_starts_the_next_day() -> None:
    end = D + timedelta(days=30)
    a = dep(D, end, started_announced=True, ending_soon_announced_for=end)
    b = dep(end + timedelta(days=1), end + timedelta(days=200))
    out = assess_post(PostView(POST, deployments=(a, b)), end + timedelta(days=1))
    assert "Gapped" not in kinds(out.decisions)
    assert kinds(out.decisions) == ["Ended", "Started"]  # the outgoing leaves, then the incoming starts


def test_actual_end_before_planned_ends_the_deployment_early() -> None:
    d = dep(D, D + timedelta(days=180), started_announced=True, actual_end=D + timedelta(days=20))
    out = assess_post(PostView(POST, deployments=(d,)), D + timedelta(days=21))
    assert kinds(out.decisions) == ["Ended", "Gapped"]
    assert isinstance(out.decisions[0], Ended) and out.decisions[0].announce


def test_history_is_recorded_without_announcing() -> None:
    old = dep(D - timedelta(days=900), D - timedelta(days=700))
    out = assess_post(PostView(POST, deployments=(old,)), D)
    started, ended = out.decisions[0], out.decisions[1]
    assert isinstance(started, Started) and not started.announce
    assert isinstance(ended, Ended) and not ended.announce


def test_event_ids_are_deterministic() -> None:
    d = dep(D, D + timedelta(days=10))
    assert EndingSoon(d, 3, None).event_id == EndingSoon(d, 5, None).event_id
    assert Gapped(POST, D, 1, None).event_id != Gapped(POST, D, 2, None).event_id


def test_policy_is_configurable() -> None:
    end = D + timedelta(days=60)
    d = dep(D, end, started_announced=True)
    day = end - timedelta(days=30)
    assert assess_post(PostView(POST, deployments=(d,)), day).decisions == []
    out = assess_post(PostView(POST, deployments=(d,)), day, RotationPolicy(ending_soon_days=30))
    assert kinds(out.decisions) == ["EndingSoon"]


# --- clock sanity -----------------------------------------------------------

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def test_a_scan_more_than_the_margin_past_the_last_is_refused() -> None:
    margin = timedelta(hours=48)
    assert clock_jump(None, T0 + timedelta(days=800), margin) is None  # a first scan has nothing to compare with
    assert clock_jump(T0, T0 + timedelta(hours=48), margin) is None
    assert clock_jump(T0, T0 + timedelta(hours=48, seconds=1), margin) == timedelta(hours=48, seconds=1)
    assert clock_jump(T0, T0 + timedelta(days=800), margin) == timedelta(days=800)
    assert clock_jump(T0, T0 - timedelta(days=800), margin) is None  # backwards: handled by taking back
    assert clock_jump(T0, T0 + timedelta(days=800), None) is None  # check off (or confirmed)


def _jump_and_back(post: PostView, today: date, ahead: date) -> tuple[list[object], PostView]:
    """A scan at `ahead`, its markers recorded as the store does."""
    out = assess_post(post, ahead)
    deps = {d.id: d for d in post.deployments}
    for d in out.decisions:
        if isinstance(d, Started):
            deps[d.deployment.id] = replace(deps[d.deployment.id], started_announced=True)
        if isinstance(d, Ended):
            deps[d.deployment.id] = replace(deps[d.deployment.id], ended_announced=True)
        if isinstance(d, EndingSoon):
            deps[d.deployment.id] = replace(deps[d.deployment.id], ending_soon_announced_for=d.deployment.planned_end)
    return out.decisions, replace(post, gapped_since=out.gapped_since, gap_alerts_sent=out.gap_alerts_sent,
                                  deployments=tuple(deps.values()))


def test_an_end_announced_early_is_taken_back_and_announced_on_its_day() -> None:
    end = D + timedelta(days=60)
    d = dep(D - timedelta(days=10), end, started_announced=True)
    post = PostView(POST, deployments=(d,))
    early, after = _jump_and_back(post, D, D + timedelta(days=800))
    assert kinds(early) == ["Ended", "Gapped"]
    assert after.gap_alerts_sent > 100

    back = assess_post(after, D, jump_from=D)  # the clock is right again after a jump confirmed on D
    assert back.decisions == []  # nothing false is said, nothing filled
    assert sorted(r.fact for r in back.reopened) == ["ended", "gapped"]
    assert back.gapped_since is None and back.gap_alerts_sent == 0
    assert not back.markers[d.id].ended_announced

    # later scans on the true days: ending soon, then the end and the gap, once each
    restored = replace(after, gapped_since=None, gap_alerts_sent=0, deployments=(back.markers[d.id],))
    soon = assess_post(restored, end - timedelta(days=21))
    assert kinds(soon.decisions) == ["EndingSoon"] and soon.reopened == []
    ended = assess_post(replace(restored, deployments=(replace(back.markers[d.id], ending_soon_announced_for=end),)),
                        end + timedelta(days=1))
    assert kinds(ended.decisions) == ["Ended", "Gapped"]
    assert ended.decisions[0].announce  # type: ignore[union-attr]
    gap = ended.decisions[1]
    assert isinstance(gap, Gapped) and gap.alert_number == 1 and gap.gapped_since == end + timedelta(days=1)


def test_an_early_start_and_ending_soon_are_taken_back() -> None:
    start, end = D + timedelta(days=30), D + timedelta(days=90)
    d = dep(start, end)
    _, after = _jump_and_back(PostView(POST, deployments=(d,)), D, end - timedelta(days=10))
    marked = after.deployments[0]
    assert marked.started_announced and marked.ending_soon_announced_for == end
    back = assess_post(after, D, jump_from=D - timedelta(days=1))
    assert sorted(r.fact for r in back.reopened) == ["ending_soon", "started"]
    assert back.decisions == []
    again = assess_post(replace(after, deployments=(back.markers[d.id],)), start)
    assert kinds(again.decisions) == ["Started"]


def test_gap_alerts_sent_early_are_taken_back_to_those_due() -> None:
    end = D - timedelta(days=20)  # a true gap since D-19: alerts 1, 2 and 3 are due by D
    d = dep(D - timedelta(days=200), end, started_announced=True, ending_soon_announced_for=end, ended_announced=True)
    post = PostView(POST, gapped_since=end + timedelta(days=1), gap_alerts_sent=3, deployments=(d,))
    assert assess_post(post, D).decisions == []
    _, after = _jump_and_back(post, D, D + timedelta(days=800))
    back = assess_post(after, D, jump_from=D)
    assert [r.fact for r in back.reopened] == ["gap_alert"]
    assert back.gapped_since == end + timedelta(days=1) and back.gap_alerts_sent == 3 and back.decisions == []
    fourth = assess_post(replace(after, gap_alerts_sent=3), end + timedelta(days=22))
    assert [(type(x).__name__, getattr(x, "alert_number", None)) for x in fourth.decisions] == [("Gapped", 4)]


def test_a_clock_gone_back_with_nothing_early_takes_nothing_back() -> None:
    end = D + timedelta(days=15)  # its ending soon fell due at D-6
    a = dep(D - timedelta(days=100), D - timedelta(days=20), started_announced=True, ended_announced=True,
            ending_soon_announced_for=D - timedelta(days=20))
    b = dep(D - timedelta(days=5), end, started_announced=True, ending_soon_announced_for=end)
    post = PostView(POST, deployments=(a, b))
    for day in (D, D - timedelta(days=1), D - timedelta(days=3)):
        out = assess_post(post, day)
        assert out.decisions == [] and out.reopened == [] and out.markers == {}


def test_a_replica_a_moment_behind_midnight_takes_nothing_back_and_fills_nothing() -> None:
    end = D
    d = dep(D - timedelta(days=100), end, started_announced=True, ending_soon_announced_for=end)
    ahead = assess_post(PostView(POST, deployments=(d,)), D + timedelta(days=1))  # just past midnight
    assert kinds(ahead.decisions) == ["Ended", "Gapped"]
    recorded = PostView(POST, gapped_since=ahead.gapped_since, gap_alerts_sent=ahead.gap_alerts_sent,
                        deployments=(replace(d, ended_announced=True),))
    behind = assess_post(recorded, D)  # the other replica, a second before midnight
    assert behind.decisions == [] and behind.reopened == []
    assert (behind.gapped_since, behind.gap_alerts_sent) == (ahead.gapped_since, ahead.gap_alerts_sent)


def test_without_a_confirmed_jump_a_clock_gone_back_takes_nothing_back_and_fills_nothing() -> None:
    end = D + timedelta(days=3)
    d = dep(D - timedelta(days=100), end, started_announced=True, ending_soon_announced_for=end)
    _, after = _jump_and_back(PostView(POST, deployments=(d,)), D, D + timedelta(days=8))  # scans went on to D+8
    assert after.gapped_since == end + timedelta(days=1) and after.deployments[0].ended_announced
    back = assess_post(after, D)  # then the clock went back four days
    assert back.decisions == [] and back.reopened == [] and back.markers == {}
    assert (back.gapped_since, back.gap_alerts_sent) == (after.gapped_since, after.gap_alerts_sent)


def test_a_jump_that_was_right_takes_nothing_back() -> None:
    end = D + timedelta(days=3)
    d = dep(D - timedelta(days=100), end, started_announced=True, ending_soon_announced_for=end)
    _, after = _jump_and_back(PostView(POST, deployments=(d,)), D, D + timedelta(days=5))  # confirmed after an outage
    out = assess_post(after, D + timedelta(days=5), jump_from=D)
    assert out.reopened == [] and out.decisions == []


def test_ids_change_with_the_epoch_and_epoch_zero_keeps_the_old_ones() -> None:
    d = dep(D, D + timedelta(days=10))
    ended = Ended(d, announce=True)
    assert announcement_id(ended, 0) == ended.event_id
    assert len({announcement_id(ended, n) for n in (0, 1, 2)}) == 3
    assert announcement_id(ended, 1) == announcement_id(Ended(d, announce=True), 1)  # replicas agree
