"""The directory keeps plain values per person and makes their contact cards when an answer shows
them, keeping only the last CARDS_KEPT made."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date

import pytest

from services.roster import directory
from services.roster.directory import DirectorySnapshot, Entry, Held


def _entry(n: int) -> Entry:
    held = Held(deployment_id=uuid.uuid4(), post_id=uuid.uuid4(), country="ML", duty_station="Bamako", region="ROWCA",
                title="CMCoord Officer", role="cmcoord_officer", start=date(2026, 1, 5), planned_end=date(2026, 7, 5),
                hats=("Security focal point",))
    return Entry(person_id=uuid.uuid4(), name=f"Person {n:03d}", organisation="OCHA", email=f"p{n}@example.org",
                 phone="+22370000000", telegram_username="", languages=("French",), timezone="Africa/Bamako",
                 deployments=(held,), other_hats=held.hats, flags=(), name_key=f"person {n:03d}", org_key="ocha",
                 countries=("ML",), regions=("ROWCA",), stations=("bamako",), roles=("cmcoord_officer",))


def test_a_card_shows_the_entry_and_is_made_once_while_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(directory, "CARDS_KEPT", 3)
    entries = [_entry(n) for n in range(5)]
    snapshot = DirectorySnapshot(day=date(2026, 3, 2), revision=1, entries=entries)
    first = snapshot.card(entries[0].person_id)
    assert first is not None and first.name == "Person 000" and first.deployments[0].country_name == "Mali"
    assert first.deployments[0].hats == ["Security focal point"] and first.languages == ["French"]
    second, third = (snapshot.card(entry.person_id) for entry in entries[1:3])
    assert snapshot.card(entries[0].person_id) is first  # kept: not made again, and now the last shown
    snapshot.card(entries[3].person_id)  # a fourth: the least recently shown (the second) is let go
    assert snapshot.card(entries[0].person_id) is first and snapshot.card(entries[2].person_id) is third
    again = snapshot.card(entries[1].person_id)
    assert again is not second and again == second
    assert snapshot.card(uuid.uuid4()) is None


def test_search_pages_show_the_same_cards_as_lookups() -> None:
    entries = [_entry(n) for n in range(12)]
    snapshot = DirectorySnapshot(day=date(2026, 3, 2), revision=1, entries=entries)
    page = snapshot.search("Mali", limit=5)
    assert page.total == 12 and [c.name for c in page.items] == [f"Person {n:03d}" for n in range(5)]
    assert page.items[0] is snapshot.card(entries[0].person_id)


def test_a_post_s_holders_are_found_by_the_post() -> None:
    """Two people on one post (a handover's overlap), one of them also on a second post (two hats),
    where a third holds two deployments; in the entries' order, each deployment once; a post nobody
    holds has none."""
    entries = [_entry(n) for n in range(4)]
    shared = entries[1].deployments[0]
    second = shared._replace(deployment_id=uuid.uuid4(), post_id=uuid.uuid4(), title="Liaison Officer")
    entries[2] = dataclasses.replace(entries[2], deployments=(entries[2].deployments[0]._replace(
        deployment_id=uuid.uuid4(), post_id=shared.post_id), second))
    entries[3] = dataclasses.replace(entries[3], deployments=(  # on the second post twice (a break between)
        second._replace(deployment_id=uuid.uuid4(), start=date(2026, 1, 2)),
        second._replace(deployment_id=uuid.uuid4(), start=date(2026, 2, 1))))
    snapshot = DirectorySnapshot(day=date(2026, 3, 2), revision=1, entries=entries)
    assert [(e.name, d.deployment_id) for e, d in snapshot.holders(shared.post_id)] == [
        ("Person 001", shared.deployment_id), ("Person 002", entries[2].deployments[0].deployment_id)]
    assert [(e.name, d.start) for e, d in snapshot.holders(second.post_id)] == [
        ("Person 002", second.start), ("Person 003", date(2026, 1, 2)), ("Person 003", date(2026, 2, 1))]
    assert [e.name for e, _ in snapshot.holders(entries[0].deployments[0].post_id)] == ["Person 000"]
    assert snapshot.holders(uuid.uuid4()) == []
