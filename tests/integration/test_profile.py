"""/profile (issue 22), end to end: real nats-server with the production permissions, the roster,
notify and the bot on the sandbox. An officer changes their phone, languages and hats; the roster
announces the person changed and /contacts shows the new phone; a bad phone, an unknown language or
hat is refused and nothing is published; someone not registered sees nothing.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from services.bot.bootstrap import BotApp
from services.notify import bootstrap as notify_bootstrap
from services.roster.bootstrap import RosterApp
from shared.bus import Bus
from shared.events import Envelope, ProfileUpdated
from tests.helpers import eventually, stream_events, stream_messages
from tests.integration.telegram_users import User
from tests.integration.test_lessons import notify  # noqa: F401 (the same fixture)
from tests.integration.test_membership import said

AWA, SOMCHAI = 9801, 9804  # officers in Mali and Thailand (linked by `people`)


async def test_profile_updates_phone_languages_and_hats_and_refuses_a_bad_phone(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    awa = User(sandbox_url, AWA)
    shown = await said(awa, "/profile", "Your profile")
    assert "Phone: +223 1" in shown and "1/3" in shown
    bad = await said(awa, "call me on 70 12", "not a phone number")
    assert "+223 70 00 00 01" in bad
    await said(awa, "+223 70 12 34 56", "2/3")
    assert "I do not know the language “Frenglish”" in await said(awa, "French, Frenglish", "Frenglish")
    await said(awa, "French, bambara", "3/3")
    assert "not one of the known hats" in await said(awa, "Chief", "known hats")
    saved = await said(awa, "hns4d, access", "Saved.")
    assert "+223 70 12 34 56" in saved and "Bambara (bm)" in saved

    # published by the bot's relay a moment after the commit that said "Saved."
    async def profile_events() -> list[Any] | None:  # not the one telling the roster the language Awa reads
        found = await stream_events(bus.js, "BOT", type_prefix="bot.profile.updated")
        return [e for e in found if e.data.get("locale") is None] or None

    updates = await eventually(profile_events, what="the profile's event on the stream")
    assert [(e.data["phone"], e.data["languages"], e.data["hats"]) for e in updates] == [
        ("+223 70 12 34 56", ["fr", "bm"], ["HNS4D focal point", "Access focal point"])]  # one event: the bad one sent none
    awa_id = str(people["awa@ocha.example"])
    await eventually(lambda: _changed(bus, awa_id), what="roster.person.changed")

    async def card() -> dict[str, Any] | None:
        page = await bus.request("cmcoord.roster.svc.contacts", {"query": "Awa Traoré"})
        found = [c for c in page["items"] if c["person_id"] == awa_id]
        return found[0] if found and found[0]["phone"] == "+223 70 12 34 56" else None

    found = await eventually(card, what="the directory updated")
    assert found["languages"] == ["fr", "bm"] and sorted(found["other_hats"]) == ["Access focal point", "HNS4D focal point"]
    assert "+223 70 12 34 56" in await said(User(sandbox_url, SOMCHAI), "/contacts Awa", "Awa Traoré")

    # someone not registered sees nothing of it
    stranger = await said(User(sandbox_url, 9999), "/profile", "invitation")
    assert "Your profile" not in stranger


async def _changed(bus: Bus, person_id: str) -> bool:
    changed = await stream_events(bus.js, "ROSTER", type_prefix="roster.person.changed")
    return any(e.data["person_id"] == person_id and e.data["created"] is False for e in changed)


async def test_a_refused_phone_is_not_written_into_the_dead_letter(
    roster: RosterApp, bus: Bus, people: dict[str, uuid.UUID],
) -> None:
    """The reason is logged (event_dead_lettered): it names the field, never the number."""
    bad = ProfileUpdated(person_id=people["awa@ocha.example"], phone="70 12 34 56", updated_at=datetime.now(UTC))
    await bus.publish(Envelope.wrap(bad, source="bot", occurred_at=datetime.now(UTC)))

    async def reasons() -> list[str]:
        return [m.headers["Cmcoord-Reason"] for m in await stream_messages(bus.js, "DEADLETTER")
                if m.headers["Cmcoord-Original-Subject"] == ProfileUpdated.subject()]

    (reason,) = await eventually(reasons, what="the bad phone dead-lettered")
    assert "phone" in reason and not any(d in reason.split(":", 2)[-1] for d in "3456")
