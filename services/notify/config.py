from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, field_validator
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
    # The regional calls' calendar feed: its own listener, apart from the internal health port, since
    # calendar apps fetch it from outside (behind a TLS proxy). Off unless a port is given.
    calendar_host: str = "127.0.0.1"
    calendar_port: int = Field(default=0, ge=0, le=65535, description="the feed's port; 0: no feed")
    calendar_secret: SecretStr = Field(default=SecretStr(""), description=(
        "keys each region's feed URL; empty: one generated and kept under CMCOORD_HOME (replicas without a "
        "shared home must be given the same one); changing it revokes every URL"))
    calendar_base_url: str = Field(default="", description=(
        "the public listener's address (calendar feeds, e-mail links), e.g. https://calls.cmcoord.example "
        "(`cmcoord calls feed-url`)"))
    # E-mail, for those Telegram cannot reach (no link, the bot blocked, the chat gone). Off unless a host is
    # given. Its buttons are links to the public listener above (calendar_port, calendar_base_url).
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = True  # off only for a mail server on the same host (the local mail catcher)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_timeout_seconds: float = 20.0
    mail_from: str = "CMCoord Hub <cmcoord-hub@localhost>"
    link_days: int = Field(default=14, ge=1, description="how long an e-mail's links work")
    link_secret: SecretStr = Field(default=SecretStr(""), description=(
        "signs the e-mail links; empty: one generated and kept under CMCOORD_HOME (replicas without a shared "
        "home must be given the same one); changing it voids every link sent"))

    @field_validator("calendar_secret", "link_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        # a short secret makes every region's URL guessable from one of them
        if value.get_secret_value() and len(value.get_secret_value()) < 16:
            raise ValueError("at least 16 characters (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        return value

    def rules(self) -> Rules:
        return Rules(daily_cap=self.daily_cap, unreached_gather=timedelta(minutes=self.unreached_gather_minutes),
                     email=bool(self.smtp_host))

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url("notify")
