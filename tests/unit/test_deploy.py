"""The production files agree with the code."""

from pathlib import Path

from shared.permissions import PERMISSIONS, authorization, permissions_of

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_nats_users_file_is_generated_from_the_permissions_table() -> None:
    text = (DEPLOY / "nats" / "auth.conf").read_text()
    assert text.split("\n", 1)[1] == authorization(), "run `cmcoord nats-auth --out deploy/nats/auth.conf`"
    for service in PERMISSIONS:
        assert f"$CMCOORD_{service.upper()}_NATS_PASSWORD" in text  # from the server's environment, not the file


def test_each_service_publishes_only_its_own_events() -> None:
    for service in PERMISSIONS:
        events = [s for s in permissions_of(service)["publish"] if s.startswith("cmcoord.") and ".svc." not in s
                  and not s.startswith("cmcoord.deadletter.")]
        assert all(s.startswith(f"cmcoord.{service}.") for s in events if s != "cmcoord.notify.notification.requested.v1")
    assert "cmcoord.notify.notification.requested.v1" in permissions_of("lessons")["publish"]  # a command to notify
