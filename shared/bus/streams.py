"""The streams and durable consumers of the topology, as JetStream configures them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import nats.js.api
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)

from shared.events import SUBJECT_ROOT


DEAD_LETTER_PREFIX = f"{SUBJECT_ROOT}.deadletter"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    duplicate_window: timedelta = timedelta(minutes=2)
    max_age: timedelta = timedelta(days=30)
    replicas: int = 1


def owner_stream(owner: str, *, replicas: int = 1) -> StreamSpec:
    # Events have five tokens: cmcoord.<owner>.<entity>.<event>.v<N>. Queries use
    # four (cmcoord.<owner>.svc.<verb>) and so are never captured by a stream.
    return StreamSpec(name=owner.upper(), subjects=(f"{SUBJECT_ROOT}.{owner}.*.*.*",), replicas=replicas)


def dead_letter_stream(*, replicas: int = 1) -> StreamSpec:
    return StreamSpec(
        name="DEADLETTER", subjects=(f"{DEAD_LETTER_PREFIX}.>",), max_age=timedelta(days=90), replicas=replicas
    )


OWNERS = ("roster", "notify", "lessons", "hns4d", "bot")


def all_streams(*, replicas: int = 1) -> list[StreamSpec]:
    return [owner_stream(o, replicas=replicas) for o in OWNERS] + [dead_letter_stream(replicas=replicas)]


JS_NO_SUITABLE_PEERS = 10005


def raise_if_placement_pending(exc: nats.js.errors.BadRequestError) -> None:
    """A cluster still forming has not met all its peers: that refusal means "not ready yet"
    (ServiceUnavailableError, waited for like a JetStream without a leader), not a conflict."""
    if exc.err_code == JS_NO_SUITABLE_PEERS:
        raise nats.js.errors.ServiceUnavailableError(code=503, err_code=exc.err_code,
                                                     description=exc.description) from exc


async def ensure_streams(js: JetStreamContext, specs: Sequence[StreamSpec]) -> None:
    for spec in specs:
        config = StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            storage=StorageType.FILE,
            duplicate_window=spec.duplicate_window.total_seconds(),
            max_age=spec.max_age.total_seconds(),
            num_replicas=spec.replicas,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            raise_if_placement_pending(exc)
            # It exists with another configuration: bring it to this one.
            await js.update_stream(config)


class TopologyMissing(Exception):
    """A stream or durable consumer this process needs is not there, or not as declared
    (shared/topology.py): `cmcoord nats-init` creates it."""


def explain_missing(problems: Sequence[str]) -> str:
    return "missing on NATS: " + "; ".join(problems) + " (run `cmcoord nats-init` with the operator's credentials)"


def filters_of(info: nats.js.api.ConsumerInfo) -> list[str]:
    """The subjects a durable consumer on the server takes, sorted."""
    config = info.config
    return sorted(config.filter_subjects or ([config.filter_subject] if config.filter_subject else []))


def durable_config(name: str, filter_subjects: Sequence[str], *, ack_wait: float) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=name,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        # Unbounded: a database locked for an hour is waited out, and the consumer dead-letters
        # real failures itself (a server-side limit would drop a message without a trace).
        max_deliver=-1,
        ack_wait=ack_wait,
        filter_subjects=list(filter_subjects),
        max_ack_pending=10_000,
    )


def replay_subject(stream: str, durable: str) -> str:
    """The subject on which `cmcoord deadletter replay` gives a dead letter back to one durable
    consumer of `stream`, and to no other: five tokens, so the owner's stream captures it."""
    return f"{SUBJECT_ROOT}.{stream.lower()}.replay.{durable}.v1"
