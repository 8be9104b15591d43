"""The calendar feed's URLs and caching rules: a token per region and secret, nothing guessable
from another region's URL; a calendar app's conditional poll matched as HTTP says."""

import pytest
from pydantic import SecretStr, ValidationError

from services.notify.calendar_feed import _matches, etag_of, feed_path, feed_url, token
from services.notify.config import Settings
from shared.regions import REGIONS

SECRET = b"k" * 32


def test_a_token_per_region_and_secret_that_stays_the_same() -> None:
    tokens = {token(SECRET, code) for code in REGIONS}
    assert len(tokens) == len(REGIONS)
    assert token(SECRET, "ROWCA") == token(SECRET, "ROWCA")  # a restart keeps the URL
    assert token(b"j" * 32, "ROWCA") != token(SECRET, "ROWCA")  # a new secret revokes it
    assert all(len(t) == 32 and t.isalnum() and t == t.lower() for t in tokens)  # 160 bits, base32


def test_the_url_names_the_region_and_its_token() -> None:
    path = feed_path(SECRET, "ROWCA")
    assert path == f"/calendar/rowca/{token(SECRET, 'ROWCA')}.ics"
    assert feed_url("https://calls.example/", SECRET, "ROWCA") == "https://calls.example" + path


def test_if_none_match_compares_weakly_as_http_says() -> None:
    etag = etag_of(b"BEGIN:VCALENDAR")
    assert etag.startswith('"') and etag.endswith('"') and etag == etag_of(b"BEGIN:VCALENDAR")
    assert _matches([etag], etag) and _matches([f"W/{etag}"], etag) and _matches(["*"], etag)
    assert _matches([f'"old", {etag}'], etag) and _matches(['"old"', etag], etag)
    assert not _matches([], etag) and not _matches(['"old"'], etag) and not _matches([etag.strip('"')], etag)


def test_a_short_calendar_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(calendar_secret=SecretStr("short"))
    assert Settings(calendar_secret=SecretStr("")).calendar_port == 0  # none given: kept under home; feed off
