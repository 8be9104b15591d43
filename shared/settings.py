"""Settings every service shares, read from the environment by pydantic-settings.

Each service defines its own `Settings(ServiceSettings)` with the prefix
`CMCOORD_<SERVICE>_`; the NATS URL and the data folder are common to all and read
from `CMCOORD_NATS_URL` and `CMCOORD_HOME`. `cmcoord` commands run by hand without
`CMCOORD_HOME` use the home the last `cmcoord up` recorded (shared/home.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CMCOORD_", extra="ignore", populate_by_name=True)

    home: Path = Path(".cmcoord")
    nats_url: str = "nats://127.0.0.1:4222"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"
    clock_file: Path | None = None  # a shared clock (simulation, training): see shared/clock.py


def _common(name: str) -> AliasChoices:
    # Only the prefixed name: a bare alias such as "home" would match $HOME.
    return AliasChoices(f"CMCOORD_{name.upper()}")


class ServiceSettings(BaseSettings):
    """Base for a service's settings: its own prefix, plus the shared variables."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    home: Path = Field(default=Path(".cmcoord"), validation_alias=_common("home"))
    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias=_common("nats_url"))
    log_format: Literal["auto", "json", "console"] = Field(default="auto", validation_alias=_common("log_format"))
    log_level: str = Field(default="info", validation_alias=_common("log_level"))
    clock_file: Path | None = Field(default=None, validation_alias=_common("clock_file"),
                                    description="a shared clock file (simulation, training); none: the system clock")
    instance: str = Field(default="", description="this process's name among replicas; defaults to host:pid")
    health_host: str = "127.0.0.1"
    health_port: int = 0
    database_url: str = ""
    max_deliver: int = 5
    nats_user: str = Field(default="", description="this service's NATS user (deploy/nats/auth.conf)")
    nats_password: SecretStr = Field(default=SecretStr(""))
    nats_tls_ca: str = Field(default="", validation_alias=_common("nats_tls_ca"),
                             description="CA file to verify the NATS servers' TLS certificates (one for the stack)")
    migrate_on_start: bool = Field(default=False, description="upgrade the store (Alembic) at start; else "
                                   "`cmcoord <service> migrate` does it, and a store without a history gets tables")
    # Retention of the shared tables (shared/store.py, pruned by the outbox relay in short batches).
    # Published outbox rows only serve a look back at what went out: JetStream's duplicate
    # window (2 minutes) is what stops a re-publish. Idempotency records guard against a message
    # coming back: a redelivery, or a durable consumer created again, which reads back all that
    # its stream still holds (DeliverPolicy.ALL; events are kept 30 days, `StreamSpec.max_age`).
    # So a record must outlive the stream's copy of its event: never less than 31 days.
    outbox_keep_days: float = Field(default=7, gt=0, description="published outbox rows are kept this long")
    processed_events_keep_days: float = Field(
        default=35, ge=31, description="a consumer's record of an event it applied is kept this long; more "
        "than the event streams' 30-day max_age, so nothing the streams can deliver again is applied twice")

    @property
    def outbox_keep(self) -> timedelta:
        return timedelta(days=self.outbox_keep_days)

    @property
    def processed_events_keep(self) -> timedelta:
        return timedelta(days=self.processed_events_keep_days)

    @property
    def nats_identity(self) -> str:
        """Whose NATS credentials these settings read: the service of the variables' prefix
        (`CMCOORD_ROSTER_` -> roster), or the operator (`CMCOORD_ADMIN_` -> admin)."""
        prefix = str(self.model_config.get("env_prefix") or "")
        return prefix.removeprefix("CMCOORD_").removesuffix("_").lower()

    def nats_auth(self) -> dict[str, Any]:
        """nats-py connect options: this identity's user (from the settings, else from the file
        `cmcoord up` keeps under the home folder), and TLS when a CA is given."""
        options: dict[str, Any] = {}
        user, password = self.nats_user, self.nats_password.get_secret_value()
        if not password and self.nats_identity:
            stored = nats_secret_file(self.home, self.nats_identity)
            if stored.exists():
                password = stored.read_text().strip()
        if password and not user:
            user = self.nats_identity  # each identity's user is named after it
        if user:
            options.update(user=user, password=password)
        if self.nats_tls_ca:
            options["tls"] = ssl.create_default_context(cafile=self.nats_tls_ca)
        return options

    def sqlite_url(self, service: str) -> str:
        path = (self.home / f"{service}.db").resolve()
        return f"sqlite+aiosqlite:///{path}"


class OperatorSettings(ServiceSettings):
    """The operator's NATS identity (`cmcoord nats-init`, `deadletter`, `status`): CMCOORD_ADMIN_NATS_USER,
    CMCOORD_ADMIN_NATS_PASSWORD; under `cmcoord up`, the file it keeps in the home folder."""

    model_config = SettingsConfigDict(env_prefix="CMCOORD_ADMIN_", extra="ignore", populate_by_name=True)


def nats_secret_file(home: Path, identity: str) -> Path:
    """Where `cmcoord up` keeps an identity's generated NATS password (mode 0600, folder 0700)."""
    return home / "secrets" / f"nats-{identity}.password"


def secret_file(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in `path` (mode 0600), made once by `make` if the file is not there yet.
    Written aside, then linked into place: a reader never sees a half-written secret (a crash
    leaves no empty file behind), and of two processes making one at once the first one wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(make() + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink(missing_ok=True)
    return path.read_text().strip()
