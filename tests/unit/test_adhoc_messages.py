"""Pure rules of ad-hoc messages: the requests built for one message, and its figures."""

import uuid
from datetime import UTC, datetime
from pathlib import Path

from services.notify import store as st
from services.notify.handlers import notifications
from services.notify.messages import count, message_figures
from services.notify.models import NOTIFY_TABLES, Notification
from services.notify.recipients import Recipient
from shared import adhoc
from shared.clock import ManualClock
from shared.store import Database


def test_one_message_is_the_same_requests_every_time_and_bounded() -> None:
    people = [uuid.uuid4() for _ in range(2500)]
    first = adhoc.requests(ref="M-0000AAAA", text="t", urgent=True, region="ROWCA", person_ids=people)
    again = adhoc.requests(ref="M-0000AAAA", text="t", urgent=True, region="ROWCA", person_ids=people)
    assert [i for i, _ in first] == [i for i, _ in again] and len(first) == 3
    assert sum(len(r.person_ids) for _, r in first) == 2500
    assert {(r.kind, r.about, r.urgent, r.region) for _, r in first} == {("adhoc.message", "M-0000AAAA", True, "ROWCA")}
    (_, role), = adhoc.requests(ref="M-0000AAAA", text="t", urgent=False, region="ROWCA", role="regional_adviser")
    assert role.role == "regional_adviser" and role.person_ids == []
    assert adhoc.clean_reference(" m-0000aaaa ") == "M-0000AAAA" and adhoc.clean_reference("R-0000AAAA") is None


def _row(name: str, state: str, sent: bool = True, region: str = "ROWCA") -> Notification:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    return Notification(id=uuid.uuid4(), kind=adhoc.KIND, subject="M-0000AAAA", occurrence="", person_id=uuid.uuid4(),
                        person_name=name, region=region, text="t", state=state, created_at=now,
                        sent_at=now if sent else None)


def test_the_figures_of_a_message() -> None:
    rows = [_row("Jean", "sent"), _row("Awa", "acknowledged"), _row("Nadia", "unlinked", sent=False),
            _row("Omar", "failed", sent=False), _row("Lina", "queued", sent=False), _row("Paul", "escalated")]
    figures = count(rows, "M-0000AAAA")
    assert figures is not None
    assert (figures.total, figures.sent, figures.region) == (6, 3, "ROWCA")
    assert figures.acknowledged == ["Awa"]
    assert figures.pending == ["Jean", "Lina", "Paul"]  # held for quiet hours counts as pending
    assert figures.unreachable == ["Nadia", "Omar"]
    assert count([_row("A", "sent"), _row("B", "sent", region="ROAP")], "M-0000AAAA").region is None  # type: ignore[union-attr]
    assert count([], "M-0000AAAA") is None


async def test_a_message_to_everyone_is_nobody_s_region_even_if_all_are_in_one(tmp_path: Path) -> None:
    """Its figures are the desk's: a region's adviser reads those of their region's messages only."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'notify.db'}")
    await db.create_tables(NOTIFY_TABLES)
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    rowca = [Recipient(person_id=uuid.uuid4(), name=n, telegram_user_id=None, timezone="UTC", regions=("ROWCA",))
             for n in ("Awa", "Jean")]
    asks = [(st.Request(kind=adhoc.KIND, about=ref, occurrence="", text="t", region=region), rowca)
            for ref, region in (("M-0000AAAA", None), ("M-0000BBBB", "ROWCA"))]
    try:
        async with db.unit_of_work(source="notify", clock=ManualClock(now)) as uow:
            await notifications.create_all(uow, asks, now=now)
        async with db.read() as session:
            everyone, region = [await message_figures(session, ref) for ref in ("M-0000AAAA", "M-0000BBBB")]
    finally:
        await db.dispose()
    assert everyone is not None and (everyone.total, everyone.region) == (2, None)
    assert region is not None and region.region == "ROWCA"
