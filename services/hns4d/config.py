from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """HNS4D settings: environment variables prefixed CMCOORD_HNS4D_."""

    model_config = SettingsConfigDict(env_prefix="CMCOORD_HNS4D_")

    health_port: int = 8105
    tick_seconds: float = 60.0  # how often parties' silences past their deadline are looked for
    query_timeout_seconds: float = 5.0  # the roster's answer to a command naming people by e-mail
    # what an asker of /hns4d may see: waited for this long only (the bot waits 5 s for the whole answer);
    # then their own records only
    rights_timeout_seconds: float = 1.0

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url("hns4d")
