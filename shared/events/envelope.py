"""The envelope every event travels in, the base of every event, and the registry of them all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator



# Namespace for deterministic ids (uuid5): the same fact always gets the same id,
# so JetStream de-duplication and consumers' idempotency records can recognise it.
EVENT_NAMESPACE = uuid.UUID("6f1d8a0e-9c55-4d1e-9a43-0c3e8f3c2b7a")

SUBJECT_ROOT = "cmcoord"
# A notification's text, at most (Telegram takes 4,096 characters of a message; the bot adds markup)
TEXT_MAX = 3500


def deterministic_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, "|".join(str(p) for p in parts))


class Event(BaseModel):
    """Base of every event and command payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: ClassVar[str]
    version: ClassVar[int] = 1
    # Who else may publish it: a command to its owner (lessons asks notify to tell people).
    # Consumers refuse it from anyone else, and shared/permissions.py grants exactly these.
    senders: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def subject(cls) -> str:
        return f"{SUBJECT_ROOT}.{cls.type}.v{cls.version}"

    @classmethod
    def owner(cls) -> str:
        """The service whose subject and stream it is (`cmcoord.<owner>.…`)."""
        return cls.type.partition(".")[0]


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID
    type: str
    version: int
    occurred_at: AwareDatetime
    source: str
    correlation_id: str
    data: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def subject(self) -> str:
        return f"{SUBJECT_ROOT}.{self.type}.v{self.version}"

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        source: str,
        occurred_at: datetime,
        id: uuid.UUID | None = None,
        correlation_id: str | None = None,
    ) -> Envelope:
        event_id = id or uuid.uuid4()
        return cls(
            id=event_id,
            type=event.type,
            version=event.version,
            occurred_at=occurred_at,
            source=source,
            correlation_id=correlation_id or str(event_id),
            data=event.model_dump(mode="json"),
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)

    def decode(self) -> Event:
        """The typed payload; raises KeyError for an unknown type/version and
        pydantic.ValidationError for a payload that breaks the schema."""
        return REGISTRY[(self.type, self.version)].model_validate(self.data)


REGISTRY: dict[tuple[str, int], type[Event]] = {}


def register(cls: type[Event]) -> type[Event]:
    key = (cls.type, cls.version)
    if key in REGISTRY:
        raise ValueError(f"event {key} registered twice")
    REGISTRY[key] = cls
    return cls

