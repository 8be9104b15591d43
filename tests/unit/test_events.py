import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared.events import (
    REGISTRY,
    DeploymentEnded,
    Envelope,
    PostGapped,
    catalogue,
    deterministic_id,
)

FACTS = dict(deployment_id=uuid.uuid4(), person_id=uuid.uuid4(), post_id=uuid.uuid4(), country="ML",
             region="ROWCA", role="cmcoord_officer", start=date(2026, 1, 1), planned_end=date(2026, 6, 30))


def test_envelope_round_trip_and_subject() -> None:
    event = DeploymentEnded(**FACTS, ended_on=date(2026, 6, 30))
    env = Envelope.wrap(event, source="roster", occurred_at=datetime(2026, 7, 1, tzinfo=UTC))
    assert env.subject == "cmcoord.roster.deployment.ended.v1" == DeploymentEnded.subject()
    back = Envelope.from_bytes(env.to_bytes())
    assert back == env and back.decode() == event
    assert back.correlation_id == str(env.id)


def test_unknown_fields_are_ignored_in_envelope_and_data() -> None:
    event = DeploymentEnded(**FACTS, ended_on=date(2026, 6, 30))
    env = Envelope.wrap(event, source="roster", occurred_at=datetime(2026, 7, 1, tzinfo=UTC))
    raw = env.model_dump(mode="json")
    raw["priority"] = "high"
    raw["data"]["new_field_from_a_newer_producer"] = 42
    decoded = Envelope.model_validate(raw).decode()
    assert decoded == event


def test_occurred_at_is_normalised_to_utc_and_must_be_aware() -> None:
    plus3 = timezone(timedelta(hours=3))
    env = Envelope.wrap(PostGapped(post_id=uuid.uuid4(), country="ML", region="ROWCA", title="t", duty_station="d",
                                   gapped_since=date(2026, 1, 1), alert_number=1),
                        source="roster", occurred_at=datetime(2026, 1, 1, 12, tzinfo=plus3))
    assert env.occurred_at.utcoffset() == timedelta(0) and env.occurred_at.hour == 9
    raw = env.model_dump(mode="json")
    raw["occurred_at"] = "2026-01-01T12:00:00"
    with pytest.raises(ValidationError):
        Envelope.model_validate(raw)


def test_a_payload_breaking_the_schema_fails_validation() -> None:
    env = Envelope.wrap(DeploymentEnded(**FACTS, ended_on=date(2026, 6, 30)), source="roster",
                        occurred_at=datetime(2026, 7, 1, tzinfo=UTC))
    raw = env.model_dump(mode="json")
    raw["data"]["role"] = "general"
    with pytest.raises(ValidationError):
        Envelope.model_validate(raw).decode()


def test_every_event_has_a_schema_and_a_versioned_subject() -> None:
    items = catalogue()
    assert len(items) == len(REGISTRY) >= 9
    for item in items:
        assert item["subject"].startswith("cmcoord.") and item["subject"].endswith(f".v{item['version']}")
        assert len(item["subject"].split(".")) == 5
        assert item["schema"]["type"] == "object"


def test_deterministic_ids() -> None:
    assert deterministic_id("a", 1) == deterministic_id("a", 1) != deterministic_id("a", 2)


def test_contract_files_are_current_and_examples_decode() -> None:
    from pathlib import Path

    from shared.contracts.catalogue import query_contract_files
    from shared.events import contract_files

    folder = Path(__file__).resolve().parents[2] / "shared" / "contracts"
    expected = {**contract_files(), **query_contract_files()}  # the queries' files: tests/unit/test_query_contracts.py
    on_disk = {p.name: p.read_text() for p in folder.glob("*.json")}
    assert on_disk == expected, "run `cmcoord events --write shared/contracts` and commit the result"
    for name, text in on_disk.items():
        if name.endswith(".example.json") and name in contract_files():
            envelope = Envelope.model_validate_json(text)
            assert envelope.decode() is not None


def test_a_new_major_version_runs_beside_the_old_one_on_its_own_subject() -> None:
    """The compatibility rule: within a major version producers only add fields (consumers
    ignore what they do not know); a breaking change is a new class with version 2, published
    on its own subject beside v1 until every consumer has moved."""
    from shared.bus import ConsumerRunner
    from shared.events import register

    class DeploymentEndedV2(DeploymentEnded):
        version = 2
        ended_on: date
        reason: str  # required: a v1 consumer could not have read it

    register(DeploymentEndedV2)
    try:
        v1 = Envelope.wrap(DeploymentEnded(**FACTS, ended_on=date(2026, 6, 30)), source="roster",
                           occurred_at=datetime(2026, 7, 1, tzinfo=UTC))
        v2 = Envelope.wrap(DeploymentEndedV2(**FACTS, ended_on=date(2026, 6, 30), reason="medical evacuation"),
                           source="roster", occurred_at=datetime(2026, 7, 1, tzinfo=UTC))
        assert (v1.subject, v2.subject) == ("cmcoord.roster.deployment.ended.v1", "cmcoord.roster.deployment.ended.v2")
        assert type(v1.decode()) is DeploymentEnded and type(v2.decode()) is DeploymentEndedV2
        consumer_of_v1 = ConsumerRunner(bus=_NoBus(), stream="ROSTER", durable="x--y",  # type: ignore[arg-type]
                                        handlers={DeploymentEnded: _ignore})
        # v2 never reaches it (beside v1 it takes only its own replay subject: `cmcoord deadletter replay`)
        assert consumer_of_v1.config().filter_subjects == [v1.subject, consumer_of_v1.replay_subject]
    finally:
        del REGISTRY[(DeploymentEndedV2.type, 2)]


class _NoBus:
    def on_reconnect(self, _callback: object) -> None:
        pass


async def _ignore(*_args: object) -> None:
    pass
