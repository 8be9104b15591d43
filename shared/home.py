"""Where a `cmcoord` command finds the stack it works on: the home the last `cmcoord up`
recorded, and the rule that a command does not make an empty store where it expected one.

The standard library only: every command reads this before it knows what it will import
(`cmcoord --help` must not pay for a database driver)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def recorded_home_file() -> Path:
    """Where `cmcoord up` records the absolute path of its home: `$XDG_CONFIG_HOME/cmcoord/home`,
    else `~/.config/cmcoord/home`."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "cmcoord" / "home"


def record_home(home: Path) -> None:
    """Remember `home` (made absolute) for `cmcoord` commands run later from any folder. Written
    aside, then renamed into place: a reader sees the old path or the new one, never half of one."""
    path = recorded_home_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        draft.write_text(str(home.resolve()) + "\n")
        os.replace(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def recorded_home() -> Path | None:
    """The home the last `cmcoord up` recorded, if any."""
    try:
        text = recorded_home_file().read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


class StoreMissing(Exception):
    """A SQLite store that is not there, opened by a command that must not create it."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"no store at {path}")
        self.path = path


_create_missing = True  # the services make their store at first start; `cmcoord` commands turn this off


def creates_missing_stores() -> bool:
    """Whether a store opened on a SQLite file that is not there may create it (shared.store asks)."""
    return _create_missing


def refuse_missing_stores() -> Callable[[], None]:
    """From now on in this process, a Database opened on a SQLite file that does not exist raises
    StoreMissing: a command run from the wrong folder must say so, not work on a new, empty store.
    (A server database's URL is not checked.) Returns what puts the earlier rule back, for a command
    run inside a longer-lived process."""
    global _create_missing
    before, _create_missing = _create_missing, False

    def restore() -> None:
        global _create_missing
        _create_missing = before

    return restore
