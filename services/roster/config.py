from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Roster settings: environment variables prefixed CMCOORD_ROSTER_."""

    model_config = SettingsConfigDict(env_prefix="CMCOORD_ROSTER_")

    health_port: int = 8101
    scan_interval_seconds: float = 60.0
    ending_soon_days: int = 21
    gap_repeat_days: int = 7
    announce_window_days: int = 30
    invite_ttl_days: int = 7
    bot_username: str = "CMCoordHubBot"
    required_course: str = "UN-CMCoord Course"
    # how long a query may answer from the cached directory before re-checking the store
    query_cache_seconds: float = 0.5

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url("roster")
