"""aiogram FSM storage in the bot's own database: a restart mid-conversation loses nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

from services.bot.models import ConversationState
from shared.store import Database


def _key(key: StorageKey) -> str:
    return ":".join(str(part) for part in (key.bot_id, key.chat_id, key.user_id, key.thread_id,
                                           key.business_connection_id, key.destiny))


class SqlStorage(BaseStorage):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _row(self, key: StorageKey) -> ConversationState | None:
        async with self.db.read() as session:
            return await session.get(ConversationState, _key(key))

    async def _write(self, key: StorageKey, **values: Any) -> None:
        async with self.db.write() as session:
            row = await session.get(ConversationState, _key(key))
            if row is None:
                row = ConversationState(key=_key(key), updated_at=datetime.now(UTC))
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = datetime.now(UTC)
            session.add(row)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._write(key, state=state.state if isinstance(state, State) else state)

    async def get_state(self, key: StorageKey) -> str | None:
        row = await self._row(key)
        return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=json.dumps(dict(data)))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        row = await self._row(key)
        return json.loads(row.data) if row else {}

    async def close(self) -> None:
        return None
