"""The bus's topology, declared once: every stream, every durable consumer and the
documents bucket, whose they are and what each takes.

`cmcoord nats-init` (the operator's identity) creates and updates all of it from this
table (`init_topology`); the services and their commands only check that what they
need is there (`missing`) and say clearly what is not. Each service's NATS
permissions are generated from the same table (shared/permissions.py): a service
reads through its own durables only, so a durable's owner is part of the security
model, not a naming habit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import structlog
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, ObjectStoreConfig

from shared import events
from shared.bus import (
    OWNERS,
    Bus,
    all_streams,
    durable_config,
    ensure_streams,
    filters_of,
    raise_if_placement_pending,
    replay_subject,
)
from shared.documents import BUCKET as DOCUMENTS_BUCKET

log = structlog.get_logger("topology")

DOCUMENTS_STREAM = f"OBJ_{DOCUMENTS_BUCKET}"  # the object store's stream (nats-py's naming)
DEFAULT_ACK_WAIT = 30.0


@dataclass(frozen=True)
class Durable:
    """A service's durable pull consumer on a stream, taking these events (and its replay subject)."""

    service: str
    stream: str
    name: str
    takes: tuple[type[events.Event], ...]

    @property
    def filter_subjects(self) -> list[str]:
        return [*sorted(cls.subject() for cls in self.takes), replay_subject(self.stream, self.name)]

    def config(self, *, ack_wait: float = DEFAULT_ACK_WAIT) -> ConsumerConfig:
        return durable_config(self.name, self.filter_subjects, ack_wait=ack_wait)


E = events
DURABLES: tuple[Durable, ...] = (
    Durable("roster", "BOT", "roster--on_handover_submitted", (E.HandoverNoteSubmitted,)),
    Durable("roster", "BOT", "roster--on_departure_changed", (E.DepartureChanged,)),
    Durable("roster", "BOT", "roster--on_profile_updated", (E.ProfileUpdated,)),
    Durable("notify", "ROSTER", "notify--on_facts", (
        E.PostGapped, E.PostFilled, E.DeploymentEndingSoon, E.DeploymentEnded, E.HandoverRecorded,
        E.DeploymentAssigned, E.TelegramLinked, E.TelegramUnlinked, E.TelegramLinkHeld)),
    Durable("notify", "NOTIFY", "notify--on_requests", (E.NotificationRequested, E.NotificationsSettled)),
    Durable("notify", "NOTIFY", "notify--on_deliver_email", (E.DeliverEmail,)),  # with e-mail on only
    Durable("notify", "LESSONS", "notify--on_lessons", (E.AarCompleted,)),
    Durable("notify", "BOT", "notify--on_bot_reports", (
        E.CallAgendaAdded, E.CallSubscriptionChanged, E.CallSummarySent, E.DeliverySent, E.DeliveryFailed,
        E.NotificationReplied, E.DepartureChanged)),
    Durable("lessons", "ROSTER", "lessons--on_roster", (E.DeploymentEnded,)),
    Durable("lessons", "BOT", "lessons--on_bot", (E.ReportSubmitted, E.AarSubmitted)),
    Durable("lessons", "HNS4D", "lessons--on_hns4d", (E.IncidentRecorded,)),
    Durable("hns4d", "NOTIFY", "hns4d--on_notify", (E.NotificationTransitioned,)),  # parties' acknowledgements
    Durable("bot", "NOTIFY", "bot--on_deliver", (E.DeliverTelegram, E.NotificationClosed, E.NotificationExpired)),
)
BY_NAME = {d.name: d for d in DURABLES}

# Who reads and who writes the documents bucket (files sent with notifications).
DOCUMENT_WRITERS = ("lessons",)
DOCUMENT_READERS = ("lessons", "bot", "notify")  # notify: attached to a mail


def durables_of(service: str) -> list[Durable]:
    return [d for d in DURABLES if d.service == service]


async def init_topology(js: JetStreamContext, *, replicas: int = 1, ack_wait: float = DEFAULT_ACK_WAIT) -> list[str]:
    """Create or update every stream, durable consumer and the documents bucket; what was done, one line each."""
    copies = f"{replicas} replica{'s' if replicas > 1 else ''}"
    done: list[str] = []
    specs = all_streams(replicas=replicas)
    await ensure_streams(js, specs)
    done += [f"stream {s.name} ({copies})" for s in specs]
    for durable in DURABLES:
        await js.add_consumer(durable.stream, durable.config(ack_wait=ack_wait))
        done.append(f"consumer {durable.stream}/{durable.name}")
    config = ObjectStoreConfig(bucket=DOCUMENTS_BUCKET, replicas=replicas, description="files sent with notifications")
    try:
        info = await js.stream_info(DOCUMENTS_STREAM)
    except nats.js.errors.NotFoundError:
        try:
            await js.create_object_store(bucket=DOCUMENTS_BUCKET, config=config)
        except nats.js.errors.BadRequestError as exc:
            raise_if_placement_pending(exc)
            raise
    else:
        if info.config.num_replicas != replicas:  # there already: bring its replicas to the asked number
            info.config.num_replicas = replicas
            await js.update_stream(info.config)
    done.append(f"bucket {DOCUMENTS_BUCKET} ({copies})")
    return done


async def init_topology_when_ready(js: JetStreamContext, *, replicas: int = 1, ack_wait: float = DEFAULT_ACK_WAIT,
                                   patience: float = 60.0) -> list[str]:
    """`init_topology`, waiting out a cluster still forming: no JetStream leader yet, or too few
    peers known for the replicas asked."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return await init_topology(js, replicas=replicas, ack_wait=ack_wait)
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError) as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("jetstream_not_ready_waiting", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(1.0)  # back-off while the cluster forms


async def declare_topology(url: str, *, auth: dict[str, Any], replicas: int = 1,
                           ack_wait: float = DEFAULT_ACK_WAIT) -> list[str]:
    """What `cmcoord nats-init` does, over a connection of its own with the operator's `auth`."""
    bus = await Bus.open(url, source="admin", patience=30, auth=auth)
    try:
        return await init_topology_when_ready(bus.js, replicas=replicas, ack_wait=ack_wait)
    finally:
        await bus.close()


async def missing(js: JetStreamContext, service: str) -> list[str]:
    """What `service` needs and does not find: its own stream (where it publishes), each of its
    durables as declared. Empty when everything is there. Asks only what the service's own
    NATS user may ask."""
    problems: list[str] = []
    own = service.upper()
    if service in OWNERS:
        try:
            await js.stream_info(own)
        except nats.js.errors.NotFoundError:
            problems.append(f"stream {own}")
    for durable in durables_of(service):
        try:
            info = await js.consumer_info(durable.stream, durable.name)
        except nats.js.errors.NotFoundError:
            problems.append(f"consumer {durable.stream}/{durable.name}")
            continue
        have = filters_of(info)
        if have != sorted(durable.filter_subjects):
            problems.append(f"consumer {durable.stream}/{durable.name} takes {have}, not {durable.filter_subjects}")
    return problems
