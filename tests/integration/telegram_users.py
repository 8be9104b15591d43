"""Telegram users driving the sandbox, and invitations to the roster."""

from datetime import timedelta
from typing import Any

import aiohttp

from services.roster.config import Settings
from services.roster.handlers import create_invite
from shared.clock import ManualClock
from shared.store import Database
from tests.helpers import eventually


class User:
    def __init__(self, url: str, user_id: int) -> None:
        self.url, self.id = url, user_id

    async def send(self, text: str, **extra: Any) -> None:
        async with aiohttp.ClientSession() as http:
            await http.post(f"{self.url}/sandbox/send", json={"user_id": self.id, "text": text, **extra})

    async def press(self, message_id: int, data: str, *, tampered: bool = False) -> None:
        async with aiohttp.ClientSession() as http:
            await http.post(f"{self.url}/sandbox/press", json={"user_id": self.id, "message_id": message_id,
                                                                "data": data, "tampered": tampered})

    async def messages(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/sandbox/chats/{self.id}/messages") as resp:
            return await resp.json()

    async def reply_to(self, text: str, *, timeout: float = 10, **extra: Any) -> dict[str, Any]:
        """Send `text` and wait for the bot's next message."""
        before = len(await self.messages())
        await self.send(text, **extra)
        return await eventually(lambda: self._after(before), timeout=timeout, what=f"a reply to {text!r}")

    async def _after(self, n: int) -> dict[str, Any] | None:
        found = await self.messages()
        return found[n] if len(found) > n else None


async def invite(settings: Settings, clock: ManualClock, email: str) -> str:
    db = Database(settings.db_url)
    async with db.unit_of_work(source="test", clock=clock) as uow:
        _, token = await create_invite(uow, email=email, ttl=timedelta(days=7))
    await db.dispose()
    return token
