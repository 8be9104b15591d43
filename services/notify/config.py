from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Notify settings: environment variables prefixed CMCOORD_NOTIFY_."""

    model_config = SettingsConfigDict(env_prefix="CMCOORD_NOTIFY_")

    health_port: int = 8102
    tick_seconds: float = 1.0  # how often scheduled steps are looked for (new work wakes it at once)
    query_timeout_seconds: float = 5.0
    role_cache_seconds: float = 30.0  # regional advisers and the desk, as the roster last said
    call_reminders: bool = True  # off: no regional call reminders from this deployment
    call_tick_seconds: float = 60.0  # how often regional call reminders are looked for

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url("notify")
