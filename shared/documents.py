"""Files sent with notifications (the quarterly digest): kept in a JetStream object
store, so a notification carries the file's name and not its bytes, and every
bot replica can read it."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from shared.bus import TopologyMissing

BUCKET = "DOCUMENTS"
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024  # what Telegram's Bot API accepts in an upload, with margin
CACHED_FILES = 4  # kept in memory by a reader: the digest's three languages, and one more


class Documents:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._store: ObjectStore | None = None
        self._cache: dict[str, bytes] = {}

    async def _bucket(self) -> ObjectStore:
        if self._store is None:
            try:
                self._store = await self.js.object_store(BUCKET)
            except (BucketNotFoundError, NotFoundError) as exc:  # created by `cmcoord nats-init`
                raise TopologyMissing(f"bucket {BUCKET}") from exc
        return self._store

    async def put(self, name: str, data: bytes) -> None:
        if len(data) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"{name} is {len(data)} bytes; at most {MAX_DOCUMENT_BYTES} can be sent")
        await (await self._bucket()).put(name, data)
        self._cache.pop(name, None)

    async def get(self, name: str) -> bytes:
        """The file's bytes (kept in memory after the first read: a fan-out sends one file many times).
        Raises nats.js.errors.ObjectNotFoundError when no such file was stored."""
        if name not in self._cache:
            result = await (await self._bucket()).get(name)
            while len(self._cache) >= CACHED_FILES:  # the oldest out: a fan-out sends a few files (one per language)
                del self._cache[next(iter(self._cache))]
            self._cache[name] = bytes(result.data or b"")
        return self._cache[name]
