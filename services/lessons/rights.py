"""What the asker of a search may read: the roster's answer, never the asker's claim.

Whoever sends a search (the bot, or anyone able to publish on NATS) says only who
asks; lessons asks the roster (its `rights` query, shared/contracts/roster.py) whether that person is a
member (linked to the bot), the CMCS desk or a region's adviser. An answer is kept
`cache_seconds` by the service clock, for at most `max_people` people (the least
recently asked go first), so a conversation's searches cost one roster round trip; a
change on the roster (someone leaves the desk) shows within that time. Searches by
the same person while the roster is being asked wait for the one answer.

When the roster does not answer within `timeout` the asker gets None here and the
search is answered as for the public (and says so): a field officer on a poor
connection is better served by the public lessons now, and a note that there may be
more, than by an error; a failure is not kept, so the next search asks again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from datetime import datetime, timedelta

import structlog
from services.lessons.classification import Viewer
from shared.bus import Bus
from shared.clock import Clock
from shared.contracts.roster import ask_rights

log = structlog.get_logger("lessons")


class RosterRights:
    def __init__(self, bus: Bus, *, clock: Clock, cache_seconds: float, timeout: float,
                 max_people: int = 10_000) -> None:
        self.bus = bus
        self.clock = clock
        self.keep = timedelta(seconds=cache_seconds)
        self.timeout = timeout
        self.max_people = max_people
        self._known: OrderedDict[uuid.UUID, tuple[datetime, Viewer]] = OrderedDict()
        self._asking: dict[uuid.UUID, asyncio.Task[Viewer | None]] = {}

    async def viewer(self, person_id: uuid.UUID | None) -> Viewer | None:
        """The viewer this person is (nobody: the public), or None when the roster did not answer."""
        if person_id is None:
            return Viewer()
        known = self._known.get(person_id)
        if known is not None:
            age = self.clock.now() - known[0]
            if timedelta(0) <= age < self.keep:  # a clock set back makes an answer stale, not eternal
                self._known.move_to_end(person_id)
                return known[1]
            del self._known[person_id]
        asking = self._asking.get(person_id)
        if asking is None:
            asking = asyncio.create_task(self._ask(person_id), name="roster-rights")
            self._asking[person_id] = asking
            asking.add_done_callback(lambda _: self._asking.pop(person_id, None))
        # shielded: a search given up on does not cancel the answer others wait for
        return await asyncio.shield(asking)

    async def _ask(self, person_id: uuid.UUID) -> Viewer | None:
        answer = await ask_rights(self.bus, person_id, timeout=self.timeout, log=log, event="viewer_rights_unknown")
        if answer is None:
            return None
        viewer = Viewer(person_id=person_id, member=answer.member, desk=answer.desk,
                        adviser_regions=frozenset(answer.adviser_regions))
        self._known[person_id] = (self.clock.now(), viewer)
        self._known.move_to_end(person_id)
        while len(self._known) > self.max_people:
            self._known.popitem(last=False)
        return viewer
