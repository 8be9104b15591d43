"""What a searcher may read of the lessons, as the roster says (real nats-server): the roster's
`rights` query, and lessons' keeping of its answers (a minute by the service clock, a bounded
number of people, one question for searches at once, a missed answer not kept). A stand-in
roster on NATS counts the questions lessons asks."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from nats.aio.msg import Msg

from services.lessons.classification import Viewer
from services.lessons.rights import RosterRights
from services.roster.bootstrap import RosterApp
from shared.bus import Bus
from shared.clock import ManualClock
from shared.contracts.roster import RIGHTS
from tests.helpers import eventually

DESK, MEMBER, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


async def test_the_roster_tells_what_a_person_may_read(roster: RosterApp, bus: Bus,
                                                       people: dict[str, uuid.UUID]) -> None:
    async def rights(person_id: uuid.UUID) -> Any:
        return await bus.request(RIGHTS.subject, {"person_id": str(person_id)})

    def no_rights(person_id: uuid.UUID, organisation: str = "") -> dict[str, Any]:
        return {"person_id": str(person_id), "member": False, "desk": False, "adviser_regions": [],
                "officer_countries": [], "organisation": organisation}

    assert await rights(people["maria@ocha.example"]) == {
        "person_id": str(people["maria@ocha.example"]), "member": True, "desk": True, "adviser_regions": [],
        "officer_countries": [], "organisation": "OCHA"}
    assert await rights(people["jean@ocha.example"]) == {
        "person_id": str(people["jean@ocha.example"]), "member": True, "desk": False, "adviser_regions": ["ROWCA"],
        "officer_countries": [], "organisation": "OCHA"}
    awa = await rights(people["awa@ocha.example"])
    assert (awa["member"], awa["officer_countries"]) == (True, ["ML"])  # an officer in Mali, linked to the bot
    nadia = people["noone@ocha.example"]  # on the roster, never registered with the bot: her organisation only
    assert await rights(nadia) == no_rights(nadia, organisation="OCHA")
    stranger = uuid.uuid4()
    assert await rights(stranger) == no_rights(stranger)


class StandInRoster:
    """Answers `rights` as the roster would for DESK and MEMBER; counts the questions.
    While `held` is clear it keeps them (a slow roster); `silent` drops them (a hung one)."""

    def __init__(self) -> None:
        self.asked: list[uuid.UUID] = []
        self.held = asyncio.Event()
        self.held.set()
        self.silent = False

    async def answer(self, msg: Msg) -> None:
        person_id = uuid.UUID(json.loads(msg.data)["person_id"])
        self.asked.append(person_id)
        if self.silent:
            return
        await self.held.wait()
        await msg.respond(json.dumps({"person_id": str(person_id), "member": person_id in (DESK, MEMBER),
                                      "desk": person_id == DESK, "adviser_regions": [],
                                      "added_later": "ignored"}).encode())


@pytest.fixture
async def stand_in(bus: Bus) -> AsyncIterator[StandInRoster]:
    roster = StandInRoster()
    sub = await bus.nc.subscribe(RIGHTS.subject, cb=roster.answer)
    yield roster
    roster.held.set()
    await sub.unsubscribe()


async def test_an_answer_is_kept_a_while_and_searches_at_once_ask_once(bus: Bus, clock: ManualClock,
                                                                       stand_in: StandInRoster) -> None:
    rights = RosterRights(bus, clock=clock, cache_seconds=60, timeout=5)
    assert await rights.viewer(None) == Viewer() and stand_in.asked == []  # the public: nobody to ask about

    stand_in.held.clear()
    waiting = [asyncio.create_task(rights.viewer(DESK)) for _ in range(5)]
    await eventually(lambda: stand_in.asked, what="the roster asked")  # all five are waiting for it
    stand_in.held.set()
    assert set(await asyncio.gather(*waiting)) == {Viewer(person_id=DESK, member=True, desk=True)}
    assert stand_in.asked == [DESK]

    clock.advance(timedelta(seconds=59))
    assert (await rights.viewer(DESK)).desk and stand_in.asked == [DESK]  # kept
    clock.advance(timedelta(seconds=2))
    await rights.viewer(DESK)
    assert stand_in.asked == [DESK, DESK]  # older than a minute: asked again
    clock.advance(timedelta(hours=-1))  # a clock set back does not make an answer last an hour longer
    await rights.viewer(DESK)
    assert stand_in.asked == [DESK, DESK, DESK]


async def test_the_least_recently_asked_are_forgotten_first(bus: Bus, clock: ManualClock,
                                                             stand_in: StandInRoster) -> None:
    rights = RosterRights(bus, clock=clock, cache_seconds=60, timeout=5, max_people=2)
    for person_id in (DESK, MEMBER, DESK, OTHER):  # MEMBER is the least recently asked when OTHER comes
        await rights.viewer(person_id)
    assert stand_in.asked == [DESK, MEMBER, OTHER]
    assert await rights.viewer(OTHER) == Viewer(person_id=OTHER)  # not a member: nothing more than the public
    await rights.viewer(DESK)
    assert stand_in.asked == [DESK, MEMBER, OTHER]
    await rights.viewer(MEMBER)
    assert stand_in.asked == [DESK, MEMBER, OTHER, MEMBER]


async def test_a_roster_that_does_not_answer_in_time_gives_no_rights_and_is_asked_again(
    bus: Bus, clock: ManualClock, stand_in: StandInRoster,
) -> None:
    rights = RosterRights(bus, clock=clock, cache_seconds=60, timeout=0.2)
    stand_in.silent = True
    assert await rights.viewer(DESK) is None  # the search then shows the public's lessons, and says so
    stand_in.silent = False
    assert await rights.viewer(DESK) == Viewer(person_id=DESK, member=True, desk=True)
    assert stand_in.asked == [DESK, DESK]
