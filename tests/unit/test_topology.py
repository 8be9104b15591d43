"""The topology table (shared/topology.py) says what each service's code consumes: a durable
declared by `cmcoord nats-init` takes exactly the subjects its service handles."""

from typing import Any

from services.hns4d.consumers import consumers as hns4d_consumers
from services.lessons.consumers import consumers as lessons_consumers
from services.lessons.duties import DutyPolicy
from services.notify.consumers import consumers as notify_consumers
from services.notify.mail import Mailer
from services.roster.consumers import CONSUMERS as ROSTER_CONSUMERS
from shared import events
from shared.bus import ConsumerRunner
from shared.events import REGISTRY
from shared.permissions import commands_of
from shared.service import consumers_of
from shared.topology import BY_NAME, DURABLES


class _NoBus:
    source = "test"

    def on_reconnect(self, _callback: object) -> None:
        pass


def _runners() -> list[ConsumerRunner]:
    bus: Any = _NoBus()
    mailer = Mailer(db=None, settings=None, links=None)  # type: ignore[arg-type]  # with e-mail on: one durable more
    tables = [ROSTER_CONSUMERS, notify_consumers(db=None, roster=None, mailer=mailer),  # type: ignore[arg-type]
              lessons_consumers(policy=DutyPolicy(), due_days=30, threshold=0.5), hns4d_consumers()]
    return [runner for table in tables
            for runner in consumers_of(table, bus=bus, db=None, max_deliver=5)]  # type: ignore[arg-type]


def test_every_service_durable_is_declared_with_the_subjects_its_code_handles() -> None:
    runners = _runners()
    for runner in runners:
        declared = BY_NAME[runner.durable]
        assert declared.stream == runner.stream and runner.durable.startswith(f"{declared.service}--")
        assert sorted(declared.filter_subjects) == sorted(runner.config().filter_subjects or []), runner.durable
    # the bot's one durable (services/bot/consumers.py) takes the deliver commands, and the closing of a copy
    # (acknowledged by another, or expired with nobody's answer)
    assert BY_NAME["bot--on_deliver"].takes == (events.DeliverTelegram, events.NotificationClosed,
                                                events.NotificationExpired)
    assert {r.durable for r in runners} | {"bot--on_deliver"} == set(BY_NAME) and len(BY_NAME) == len(DURABLES)


def test_a_durable_reads_only_another_owners_stream_for_events_that_owner_publishes() -> None:
    for durable in DURABLES:
        assert all(cls.owner() == durable.stream.lower() for cls in durable.takes), durable.name


def test_commands_between_services_are_only_the_declared_ones() -> None:
    assert commands_of("lessons") == ["cmcoord.notify.notification.requested.v1"]
    assert commands_of("bot") == ["cmcoord.notify.notification.requested.v1"]  # /send: advisers' and the desk's messages
    assert all(commands_of(s) == [] for s in ("roster", "notify"))
    assert all(cls.owner() not in cls.senders for cls in REGISTRY.values())
