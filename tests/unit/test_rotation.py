import uuid
from dataclasses import replace
from datetime import date, timedelta

from services.roster.rotation import (
    DeploymentView,
    Ended,
    EndingSoon,
    Filled,
    Gapped,
    PostView,
    RotationPolicy,
    Started,
    assess_post,
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
