"""Dead letters: what a consumer gave up on, looked at and given back (`cmcoord deadletter`).

A dead letter is a copy of the message in the DEADLETTER stream, on
`cmcoord.deadletter.<durable>`, with headers saying why (`Cmcoord-Reason`), which
consumer (`Cmcoord-Consumer`), and where it came from (`Cmcoord-Original-Subject`,
`Cmcoord-Stream`, `Cmcoord-Stream-Seq`); see `ConsumerRunner._dead_letter`.

Replay gives it back to that consumer and to no other: the message is published
on the consumer's own replay subject (`cmcoord.<owner>.replay.<durable>.v1`, in
the owner's stream, which only that durable consumer takes), not on its original
subject. Republishing on the original subject would reach every consumer of it
again, and with the same `Nats-Msg-Id` inside the stream's duplicate window it
would reach none. The consumer handles it as it does any message, idempotently by
`(consumer, event_id)`: it had recorded nothing for the event, since it failed.

Once the replay is stored, the dead letter is deleted, so a second replay finds
nothing. A crash in between leaves the dead letter: a second replay publishes it
again under the same message id (`replay:<dead-letter seq>`), dropped inside the
duplicate window, and applied at most once by the consumer's records after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from pydantic import ValidationError

from shared.bus import DEAD_LETTER_PREFIX, dead_letter_stream, replay_subject
from shared.events import Envelope

STREAM = dead_letter_stream().name
_NO_MESSAGE_FOUND = 10057  # JetStream's answer to deleting a message that is gone


class DeadLetterError(Exception):
    """Something a person asked of the dead letters cannot be done; the message says why."""


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    consumer: str
    reason: str
    original_subject: str
    stream: str  # the stream the consumer reads, where a replay goes
    original_seq: int | None
    dead_lettered_at: datetime | None
    data: bytes
    headers: dict[str, str]

    @classmethod
    def from_raw(cls, raw: Any) -> DeadLetter:
        headers = dict(raw.headers or {})
        subject = headers.get("Cmcoord-Original-Subject", "")
        consumer = headers.get("Cmcoord-Consumer") or raw.subject.removeprefix(f"{DEAD_LETTER_PREFIX}.")
        # dead letters written before the stream was recorded: the owner is the subject's second token
        stream = headers.get("Cmcoord-Stream") or (subject.split(".")[1].upper() if subject.count(".") >= 2 else "")
        seq = headers.get("Cmcoord-Stream-Seq", "")
        return cls(seq=raw.seq, consumer=consumer, reason=headers.get("Cmcoord-Reason", ""), original_subject=subject,
                   stream=stream, original_seq=int(seq) if seq.isdigit() else None, dead_lettered_at=raw.time,
                   data=raw.data or b"", headers=headers)

    def envelope(self) -> Envelope | None:
        """The event, if the message was one (a malformed message is dead-lettered too)."""
        try:
            return Envelope.from_bytes(self.data)
        except (ValidationError, ValueError):
            return None

    def summary(self) -> dict[str, Any]:
        envelope = self.envelope()
        return {
            "seq": self.seq,
            "dead_lettered_at": self.dead_lettered_at.isoformat() if self.dead_lettered_at else None,
            "consumer": self.consumer,
            "stream": self.stream,
            "original_subject": self.original_subject,
            "original_seq": self.original_seq,
            "event_id": str(envelope.id) if envelope else None,
            "event_type": envelope.type if envelope else None,
            "reason": self.reason,
        }

    def full(self) -> dict[str, Any]:
        envelope = self.envelope()
        body: Any = envelope.model_dump(mode="json") if envelope else self.data.decode("utf-8", errors="replace")
        return {**self.summary(), "headers": self.headers, "message": body}


async def list_dead_letters(js: JetStreamContext, *, consumer: str | None = None) -> list[DeadLetter]:
    """Every dead letter, oldest first; only one consumer's if given."""
    subject = f"{DEAD_LETTER_PREFIX}.{consumer}" if consumer else f"{DEAD_LETTER_PREFIX}.>"
    found: list[DeadLetter] = []
    seq = 1
    while True:
        try:
            raw = await js.get_msg(STREAM, seq, subject=subject, next=True)  # the first at or after seq
        except NotFoundError:  # no more (or no stream at all)
            return found
        found.append(DeadLetter.from_raw(raw))
        seq = raw.seq + 1


async def get_dead_letter(js: JetStreamContext, seq: int) -> DeadLetter:
    try:
        raw = await js.get_msg(STREAM, seq)
    except NotFoundError as exc:
        raise DeadLetterError(f"no dead letter {seq} (already replayed, expired, or never there)") from exc
    return DeadLetter.from_raw(raw)


async def replay(js: JetStreamContext, letter: DeadLetter) -> int:
    """Give the dead letter back to its consumer, then delete it; the replay's stream sequence."""
    if not letter.stream or not letter.consumer:
        raise DeadLetterError(f"dead letter {letter.seq} does not say which consumer and stream it came from")
    subject = replay_subject(letter.stream, letter.consumer)
    try:
        info = await js.consumer_info(letter.stream, letter.consumer)
    except NotFoundError as exc:
        raise DeadLetterError(f"dead letter {letter.seq}: no consumer {letter.consumer} on stream {letter.stream} "
                              "(start its service first)") from exc
    filters = list(info.config.filter_subjects or []) + ([info.config.filter_subject]
                                                          if info.config.filter_subject else [])
    if subject not in filters:
        raise DeadLetterError(f"dead letter {letter.seq}: consumer {letter.consumer} does not take replays yet "
                              "(its service runs an older version: upgrade and start it first)")
    headers = {"Nats-Msg-Id": f"replay:{letter.seq}", "Cmcoord-Replay-Of": str(letter.seq),
               "Cmcoord-Original-Subject": letter.original_subject}
    ack = await js.publish(subject, letter.data, headers=headers, timeout=5)
    try:
        await js.delete_msg(STREAM, letter.seq)
    except APIError as exc:
        if not isinstance(exc, NotFoundError) and exc.err_code != _NO_MESSAGE_FOUND:
            raise
        # deleted meanwhile by another replay, whose message id was the same one
    return ack.seq
