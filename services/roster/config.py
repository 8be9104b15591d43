from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.roster.rotation import RotationPolicy
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Roster settings: environment variables prefixed CMCOORD_ROSTER_."""

    model_config = SettingsConfigDict(env_prefix="CMCOORD_ROSTER_")

    health_port: int = 8101
    scan_interval_seconds: float = 60.0
    ending_soon_days: int = 21
    gap_repeat_days: int = 7
    announce_window_days: int = 30
    # A scan more than this past the last accepted one is refused (a misset clock would announce
    # facts that are false and silence the true ones). 48 h lets the service come back from a
    # weekend's outage by itself, and is the most an accepted jump can announce early: within the
    # handover campaign's last step (departure confirmation 2 days before). 0 turns the check off.
    scan_max_jump_hours: float = Field(default=48.0, ge=0)
    invite_ttl_days: int = 7
    # Member rights (contacts, directory, calls, agenda, lessons as a member, messages to everyone)
    # hold while a person has a deployment not ended, or ended at most this many days ago
    member_grace_days: int = Field(default=30, ge=0)
    bot_username: str = "CMCoordHubBot"
    required_course: str = "UN-CMCoord Course"
    # how long a query may answer from the cached directory before re-checking the store
    query_cache_seconds: float = 0.5

    @property
    def rotation_policy(self) -> RotationPolicy:
        return RotationPolicy(ending_soon_days=self.ending_soon_days, gap_repeat_days=self.gap_repeat_days,
                              announce_window_days=self.announce_window_days)

    @property
    def scan_max_jump(self) -> timedelta | None:
        return timedelta(hours=self.scan_max_jump_hours) if self.scan_max_jump_hours else None

    @property
    def member_grace(self) -> timedelta:
        return timedelta(days=self.member_grace_days)

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url("roster")
