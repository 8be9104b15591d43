"""The bot's inbox: handled updates are forgotten after a while, unhandled ones never."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.bot.models import BOT_TABLES, InboxUpdate
from services.bot.polling import prune_inbox
from shared.store import Database


async def test_old_handled_updates_are_pruned_and_unhandled_ones_kept(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await db.create_tables(BOT_TABLES)
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    async with db.write() as session:
        session.add_all([
            InboxUpdate(update_id=1, payload="{}", received_at=now - timedelta(days=9), handled_at=now - timedelta(days=9)),
            InboxUpdate(update_id=2, payload="{}", received_at=now - timedelta(days=9)),  # never handled
            InboxUpdate(update_id=3, payload="{}", received_at=now - timedelta(days=1), handled_at=now - timedelta(days=1)),
        ])
    assert await prune_inbox(db, handled_before=now - timedelta(days=7)) == 1
    async with db.read() as session:
        left = sorted(row.update_id for row in await session.exec(InboxUpdate.__table__.select()))  # type: ignore[attr-defined]
    assert left == [2, 3]
    await db.dispose()
