from __future__ import annotations

from datetime import timedelta

from pydantic_settings import SettingsConfigDict

from services.notify.policy import Rules

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
    daily_cap: int = 20  # non-urgent messages a person gets one by one per day; the rest in one summary at 18:00
    unreached_gather_minutes: float = 10.0  # failures gather this long before the desk's daily summary

    def rules(self) -> Rules:
        return Rules(daily_cap=self.daily_cap, unreached_gather=timedelta(minutes=self.unreached_gather_minutes))

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url("notify")
