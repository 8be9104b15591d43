"""Settings every service shares, read from the environment by pydantic-settings.

Each service defines its own `Settings(ServiceSettings)` with the prefix
`CMCOORD_<SERVICE>_`; the NATS URL and the data folder are common to all and read
from `CMCOORD_NATS_URL` and `CMCOORD_HOME`.
"""

from __future__ import annotations

import ssl
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
    ack_wait_seconds: float = 30.0
    nats_user: str = Field(default="", description="this service's NATS user (deploy/nats/auth.conf)")
    nats_password: SecretStr = Field(default=SecretStr(""))
    nats_tls_ca: str = Field(default="", description="CA file to verify the servers' TLS certificates")
    stream_replicas: int = Field(default=1, ge=1, le=5, description="JetStream replicas of the streams this "
                                 "service creates (3 on a three-node cluster)")
    migrate_on_start: bool = Field(default=False, description="upgrade the store (Alembic) at start; else "
                                   "`cmcoord <service> migrate` does it, and a store without a history gets tables")

    def nats_auth(self) -> dict[str, Any]:
        """nats-py connect options: this service's user, and TLS when a CA is given."""
        options: dict[str, Any] = {}
        if self.nats_user:
            options.update(user=self.nats_user, password=self.nats_password.get_secret_value())
        if self.nats_tls_ca:
            options["tls"] = ssl.create_default_context(cafile=self.nats_tls_ca)
        return options

    def sqlite_url(self, service: str) -> str:
        path = (self.home / f"{service}.db").resolve()
        return f"sqlite+aiosqlite:///{path}"
