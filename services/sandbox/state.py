"""What the sandbox remembers: users, chats, the bot's messages, updates, limits, faults.

Pure in-memory state with an injectable clock; the HTTP layer is in app.py.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.sandbox.webhooks import Webhook, ssl_context


# The token `cmcoord up` gives the bot when no real one is set (services/bot/config.py): the
# sandbox answers it, and 401 to any other, as Telegram does for a token it does not know.
SANDBOX_TOKEN = "1000001:sandbox-token-for-local-use-only"
HTTP_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
PRIVATE_FIELDS = frozenset({"outgoing", "parse_mode", "parsed", "accepted_at", "edited"})


def public(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the Bot API shows it: the text parsed (entities apart), no sandbox bookkeeping."""
    out = {k: v for k, v in message.items() if k not in PRIVATE_FIELDS and v is not None}
    parsed = message.get("parsed")
    if parsed is not None:
        key = "text" if "text" in out else "caption"
        out[key], entities = parsed
        if entities:
            out["entities" if key == "text" else "caption_entities"] = entities
    return out


class ApiError(Exception):
    """A Bot API error answer: HTTP status = error_code."""

    def __init__(self, code: int, description: str, *, retry_after: int | None = None, html: bool = False) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.html = html  # answered as an HTML page, as Telegram's nginx edge does for a 5xx

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class Faults:
    global_per_sec: float = 30.0
    per_chat_per_sec: float = 1.0
    error_rate: float = 0.0
    error_status: int = 500
    fail_next: int = 0  # the next N sends fail with error_status, whatever the rate
    blocked_user_ids: set[int] = field(default_factory=set)
    error_body: str = "json"  # "html": injected 5xx answered by the edge's HTML page, not the Bot API's JSON
    retry_after: int = 1  # a 429's parameters.retry_after, in seconds
    inaccessible_after_seconds: float = 48 * 3600  # a press on an older message carries an InaccessibleMessage


@dataclass
class Stats:
    accepted: int = 0
    rate_limited: int = 0
    rate_limited_in_chat: int = 0  # of which: a chat's own limit
    errors: int = 0
    blocked: int = 0


@dataclass
class User:
    id: int
    first_name: str = "Officer"
    language_code: str | None = None
    username: str | None = None  # Telegram's is optional: many accounts have none

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            out["username"] = self.username
        if self.language_code:
            out["language_code"] = self.language_code
        return out


@dataclass
class Chat:
    id: int
    next_message_id: int = 1
    messages: list[dict[str, Any]] = field(default_factory=list)  # every message in the chat, both ways

    def new_id(self) -> int:
        self.next_message_id += 1
        return self.next_message_id - 1


class SendWindow:
    """Sliding one-second window of accepted sends (Telegram's per-bot and per-chat limits)."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def allows(self, now: float, per_sec: float) -> bool:
        while self.times and now - self.times[0] >= 1.0:
            self.times.popleft()
        return len(self.times) < per_sec

    def wait_s(self, now: float) -> float:
        return 1.0 - (now - self.times[0]) if self.times else 0.0


class Sandbox:
    def __init__(self, *, bot_username: str, faults: Faults | None = None, token: str = SANDBOX_TOKEN,
                 wall: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None,
                 webhook_ca: str | None = None) -> None:
        self.bot_username = bot_username
        self.webhook_ca = webhook_ca  # a CA the webhook calls trust besides the system's (a test's own)
        self.webhook: Webhook | None = None
        self._poll_generation = 0  # a getUpdates (or setWebhook) call ends the long poll waiting before it
        self._poll_ended_by = ""
        self.faults = faults or Faults()
        self.stats = Stats()
        self.clock = clock
        self.rng = rng or random.Random()
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}
        self.updates: list[dict[str, Any]] = []
        self.next_update_id = 1
        self.commands: dict[str, list[dict[str, Any]]] = {}  # language code ("" = default) -> commands
        self._new_update = asyncio.Condition()
        self._global = SendWindow()
        self._per_chat: dict[int, SendWindow] = {}
        self.callback_answers: list[dict[str, Any]] = []
        self._bot_wrote: dict[int, asyncio.Event] = {}
        self.token = token
        self.wall = wall  # Unix time: message dates, and how old a message is
        self.started: set[int] = set()  # users who wrote to the bot or pressed: chats it may write to
        self.open_queries: set[str] = set()  # callback queries not answered yet

    def mark_started(self, user_ids: set[int]) -> None:
        """These users pressed Start earlier (test setup, as if they had)."""
        self.started.update(user_ids)

    # --- users acting ------------------------------------------------------

    def chat(self, chat_id: int) -> Chat:
        return self.chats.setdefault(chat_id, Chat(chat_id))

    def user(self, user_id: int, *, first_name: str | None = None, language_code: str | None = None,
             username: str | None = None) -> User:
        user = self.users.setdefault(user_id, User(user_id))
        if first_name:
            user.first_name = first_name
        if language_code:
            user.language_code = language_code
        if username is not None:  # "" takes it away, as a user can in Telegram's settings
            user.username = username.lstrip("@") or None
        return user

    async def user_sends(self, user_id: int, text: str, *, first_name: str | None = None,
                         language_code: str | None = None, document: str | None = None,
                         username: str | None = None, location: tuple[float, float] | None = None) -> dict[str, Any]:
        """A message from the user: text, a document (by file name) with `text` as its caption, or a
        location (latitude, longitude: a message without text, as Telegram sends a shared position)."""
        if location is not None and not (-90 <= location[0] <= 90 and -180 <= location[1] <= 180):
            raise ApiError(400, "Bad Request: a location is a latitude from -90 to 90 and a longitude from -180 "
                                "to 180")
        user = self.user(user_id, first_name=first_name, language_code=language_code, username=username)
        self.started.add(user_id)
        chat = self.chat(user_id)
        message: dict[str, Any] = {
            "message_id": chat.new_id(),
            "date": int(self.wall()),
            "chat": {"id": user_id, "type": "private", "first_name": user.first_name},
            "from": user.as_dict(),
        }
        if location is not None:
            message["location"] = {"latitude": location[0], "longitude": location[1]}
        elif document is not None:
            message["document"] = {"file_id": f"user-doc-{document}", "file_unique_id": document,
                                   "file_name": document}
            if text:
                message["caption"] = text
        else:
            message["text"] = text
        if text.startswith("/") and document is None and location is None:
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        chat.messages.append({**message, "outgoing": False})
        return await self._enqueue({"message": message})

    async def user_presses(self, user_id: int, message_id: int, data: str, *, tampered: bool = False,
                           inaccessible: bool = False) -> dict[str, Any]:
        """A press on a button of the bot's message; `tampered` sends data no button
        carries, as a modified client could. A message older than `inaccessible_after_seconds`
        (any message, with `inaccessible`) comes as an InaccessibleMessage, as Telegram sends it."""
        user = self.user(user_id)
        self.started.add(user_id)
        chat = self.chat(user_id)
        target = next((m for m in chat.messages if m["message_id"] == message_id and m["outgoing"]), None)
        if target is None:
            raise ApiError(400, "Bad Request: message not found")
        buttons = [b for row in (target.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
        if not tampered and not any(b.get("callback_data") == data for b in buttons):
            raise ApiError(400, "Bad Request: no such button on that message")
        if inaccessible or self.wall() - target["date"] >= self.faults.inaccessible_after_seconds:
            message = {"chat": target["chat"], "message_id": message_id, "date": 0}
        else:
            message = public(target)
        query_id = str(self.rng.getrandbits(63))
        query = {
            "id": query_id,
            "from": user.as_dict(),
            "message": message,
            "chat_instance": str(user_id),
            "data": data,
        }
        self.open_queries.add(query_id)
        return await self._enqueue({"callback_query": query})

    def answer_query(self, query_id: str) -> None:
        """A callback query is answered once; an unknown id is refused as Telegram does."""
        if query_id not in self.open_queries:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self.open_queries.discard(query_id)

    async def _enqueue(self, payload: dict[str, Any]) -> dict[str, Any]:
        async with self._new_update:
            update = {"update_id": self.next_update_id, **payload}
            self.next_update_id += 1
            self.updates.append(update)
            self._new_update.notify_all()
        return update

    # --- the bot's side ----------------------------------------------------

    async def get_updates(self, *, offset: int | None, limit: int, timeout: float) -> list[dict[str, Any]]:
        """Telegram's semantics: an offset confirms every update before it; wait up to
        `timeout` seconds for one to arrive. A second caller ends the first one's long
        poll with 409 (two bot instances), and there is no getUpdates while a webhook is set."""
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        async with self._new_update:
            self._end_long_poll("Conflict: terminated by other getUpdates request; "
                                "make sure that only one bot instance is running")
            mine = self._poll_generation
            if offset is not None:
                if offset < 0:
                    self.updates = self.updates[offset:]
                else:
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
            if not self.updates and timeout > 0:
                try:
                    await asyncio.wait_for(self._new_update.wait_for(
                        lambda: bool(self.updates) or self._poll_generation != mine), timeout)
                except TimeoutError:
                    return []
            if self._poll_generation != mine:
                raise ApiError(409, self._poll_ended_by)
            return self.updates[: max(1, min(limit, 100))]

    def _end_long_poll(self, reason: str) -> None:
        """Called holding `_new_update`: the long poll waiting, if any, answers 409 `reason`."""
        self._poll_generation += 1
        self._poll_ended_by = reason
        self._new_update.notify_all()

    async def wait_for_updates(self, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """The pending updates `wanted` picks, once there is at least one (webhook delivery)."""
        async with self._new_update:
            await self._new_update.wait_for(lambda: any(wanted(u) for u in self.updates))
            return [u for u in self.updates if wanted(u)]

    async def acknowledge(self, update_id: int) -> None:
        """The webhook answered 2xx: the update is confirmed, never sent again."""
        async with self._new_update:
            self.updates = [u for u in self.updates if u["update_id"] != update_id]

    async def set_webhook(self, url: str, *, secret: str | None, max_connections: int,
                          drop_pending: bool) -> None:
        if not url.lower().startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        current = self.webhook
        if (current is not None and not drop_pending
                and (current.url, current.secret, current.max_connections) == (url, secret, max_connections)):
            return  # "Webhook is already set": deliveries in progress go on (each replica sets it at start)
        await self.delete_webhook(drop_pending=drop_pending)
        async with self._new_update:
            self._end_long_poll("Conflict: terminated by setWebhook request")
        self.webhook = Webhook(self, url=url, secret=secret, ssl_context=ssl_context(self.webhook_ca),
                               max_connections=max_connections)
        self.webhook.start()

    async def delete_webhook(self, *, drop_pending: bool) -> None:
        webhook, self.webhook = self.webhook, None
        if webhook is not None:
            await webhook.stop()  # a request in progress is abandoned: its update stays pending
        if drop_pending:
            async with self._new_update:
                self.updates = []

    def admit_send(self, chat_id: int, *, rate_limited: bool = True) -> None:
        """Apply faults and limits to one send to `chat_id`, or raise the error Telegram would.
        Edits pass `rate_limited=False`: the message limits count new messages."""
        self.check_chat(chat_id)
        if self.faults.fail_next > 0:
            self.faults.fail_next -= 1
            self.stats.errors += 1
            raise self._injected_error()
        if self.faults.error_rate and self.rng.random() < self.faults.error_rate:
            self.stats.errors += 1
            raise self._injected_error()
        if not rate_limited:
            return
        now = self.clock()
        window = self._per_chat.setdefault(chat_id, SendWindow())
        for limit, w in ((self.faults.global_per_sec, self._global), (self.faults.per_chat_per_sec, window)):
            if limit > 0 and not w.allows(now, limit):
                self.stats.rate_limited += 1
                self.stats.rate_limited_in_chat += w is window
                raise self._too_many()
        self._global.times.append(now)
        window.times.append(now)
        self.stats.accepted += 1

    def check_chat(self, chat_id: int) -> None:
        """Telegram's answer for a chat the bot may not write to: blocked (403), never started (400)."""
        if chat_id in self.faults.blocked_user_ids:
            self.stats.blocked += 1
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id not in self.started:
            raise ApiError(400, "Bad Request: chat not found")

    def _too_many(self) -> ApiError:
        after = self.faults.retry_after
        return ApiError(429, f"Too Many Requests: retry after {after}", retry_after=after)

    def _injected_error(self) -> ApiError:
        status = self.faults.error_status
        if status == 429:
            return self._too_many()
        return ApiError(status, HTTP_REASONS.get(status, "Internal Server Error"),
                        html=status >= 500 and self.faults.error_body == "html")

    def bot_message(self, chat_id: int, *, parse_mode: str | None = None,
                    parsed: tuple[str, list[dict[str, Any]]] | None = None, **fields: Any) -> dict[str, Any]:
        """A message the bot sent, stored with the text as sent (`parsed`: as Telegram keeps it); the
        Bot API's view of it is returned."""
        chat = self.chat(chat_id)
        user = self.users.get(chat_id)
        message = {
            "message_id": chat.new_id(),
            "date": int(self.wall()),
            "chat": {"id": chat_id, "type": "private", "first_name": user.first_name if user else "Officer"},
            "from": self.me(),
            **{k: v for k, v in fields.items() if v is not None},
        }
        # parse_mode and the text as sent are kept for the page and the control API
        stored = {**message, "outgoing": True, "parse_mode": parse_mode, "parsed": parsed,
                  "accepted_at": self.clock()}
        chat.messages.append(stored)
        self._bot_wrote.setdefault(chat_id, asyncio.Event()).set()
        return public(stored)

    async def wait_for_bot(self, chat_id: int, *, after: int, timeout: float) -> list[dict[str, Any]]:
        """The bot's messages in the chat newer than `after`, waiting up to `timeout` for one."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            newer = [m for m in self.chat(chat_id).messages if m["outgoing"] and m["message_id"] > after]
            remaining = deadline - asyncio.get_running_loop().time()
            if newer or remaining <= 0:
                return newer
            event = self._bot_wrote.setdefault(chat_id, asyncio.Event())
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return []

    def find_bot_message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        for m in self.chat(chat_id).messages:
            if m["message_id"] == message_id and m["outgoing"]:
                return m
        raise ApiError(400, "Bad Request: message to edit not found")

    def me(self) -> dict[str, Any]:
        return {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "CMCoord Hub", "username": self.bot_username,
                "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}
