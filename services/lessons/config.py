from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Lessons settings: environment variables prefixed CMCOORD_LESSONS_."""

    model_config = SettingsConfigDict(env_prefix="CMCOORD_LESSONS_")

    health_port: int = 8103
    aar_due_days: int = 30  # an AAR falls due this many days after the deployment ended
    reminder_days_before: int = 7  # the first reminder, before the due date (the second is on it)
    adviser_after_days: int = 7  # overdue this long: the regional adviser is told
    desk_after_days: int = 14  # overdue this long: the CMCS desk is told
    reminder_hour_utc: int = 8  # the hour of the day reminders go out (notify holds them in quiet hours)
    tick_seconds: float = 60.0  # how often due reminders are looked for
    similarity_threshold: float = 0.3  # how alike two texts must be to be linked as a recurrence
    query_timeout_seconds: float = 5.0
    # A search asks the roster what the asker may read (never the asker's word); the answer is
    # kept this long per person, and waited for at most rights_timeout_seconds: then the search
    # is answered as for the public, and says so (well within the bot's own 5 s for the search).
    rights_cache_seconds: float = 60.0
    rights_timeout_seconds: float = 1.0

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url("lessons")
