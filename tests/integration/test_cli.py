"""`cmcoord roster ...` as an operator runs it."""

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from services.roster.admin import private_file
from services.roster.config import Settings
from services.roster.models import RegistrationToken
from services.roster.store import hash_token
from shared.store import Database
from tests.helpers import cli, roster_env
from tests.integration.roster_db import counts


async def test_directory_in_csv_hxl_and_json(sample_roster: str, roster_settings: Settings) -> None:
    env = roster_env(roster_settings)
    code, out, err = await cli("roster", "directory", "--format", "hxl", "--region", "rowca", env=env)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["name", "email", "phone"]
    assert rows[1][:3] == ["#contact+name", "#contact+email", "#contact+phone"]
    assert len(rows) > 3 and {r[8] for r in rows[2:]} == {"ROWCA"}

    code, out, _ = await cli("roster", "directory", "--format", "json", "--country", "Mali", env=env)
    items = json.loads(out)
    assert code == 0 and items and {i["country"] for i in items} == {"ML"}
    assert all(i["region"] == "ROWCA" and i["email"] for i in items)

    code, _, err = await cli("roster", "directory", "--region", "Narnia", env=env)
    assert code == 2 and "unknown region 'Narnia'" in err


async def test_invite_creates_a_single_use_hashed_token(sample_roster: str, roster_settings: Settings) -> None:
    env = roster_env(roster_settings)
    email = next(csv.DictReader(io.StringIO(sample_roster)))["email"]
    code, out, err = await cli("roster", "invite", email.upper(), env=env)
    assert code == 0, err
    lines = out.strip().splitlines()
    token = lines[-1]  # alone on the last line, for the sandbox's /start <token>
    assert f"https://t.me/CMCoordHubBot?start={token}" in lines  # the link stays
    assert len(token) >= 32  # 192 random bits, URL-safe
    db = Database(roster_settings.db_url)
    async with db.read() as s:
        stored = (await s.exec(select(RegistrationToken))).all()
    await db.dispose()
    assert [t.token_hash for t in stored] == [hash_token(token)]  # only the hash is kept
    assert token not in stored[0].token_hash
    assert stored[0].expires_at - stored[0].created_at == timedelta(days=7) and stored[0].used_at is None

    code, _, err = await cli("roster", "invite", "nobody@nowhere.example", env=env)
    assert code == 1 and "nobody on the roster" in err


async def test_a_bad_file_is_refused_with_line_numbers(roster_settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "roster.csv"
    bad.write_text(
        "name,email,country,duty_station,post_title,role,start,planned_end\n"
        "Ok,ok@ocha.example,ML,Bamako,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30\n"
        "Bad,bad@ocha,ML,Bamako,CMCoord Officer 2,cmcoord_officer,2026-01-01,2026-06-30\n"
    )
    code, _, err = await cli("roster", "import", str(bad), env=roster_env(roster_settings))
    assert code == 1
    assert "line 3: bad email 'bad@ocha'" in err and "nothing was written" in err
    assert await counts(roster_settings) == (0, 0)
    code, _, err = await cli("roster", "import", env=roster_env(roster_settings))
    assert code == 2 and "FILE or --sample" in err


async def _run_in(folder: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`cmcoord ARGS` started from `folder` (not the clone)."""
    import asyncio
    import sys

    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "shared.cli", *args, env=env, cwd=folder,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_run_elsewhere_a_command_refuses_to_make_an_empty_store_and_finds_the_recorded_home(
    sample_roster: str, roster_settings: Settings, tmp_path: Path
) -> None:
    import os

    elsewhere, config = tmp_path / "elsewhere", tmp_path / "config"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMCOORD_")}
    env["XDG_CONFIG_HOME"] = str(config)  # no `cmcoord up` has recorded a home there yet
    for command in (("roster", "directory"), ("notify", "stats"), ("notify", "send-status", "M-00000000"),
                    ("lessons", "aar", "list")):
        code, out, err = await _run_in(elsewhere, *command, env=env)
        store = elsewhere / ".cmcoord" / f"{command[0]}.db"
        assert code == 2 and out == "", (command, out, err)
        assert err.startswith(f"error: no store at {store} (home: ./.cmcoord under the current folder")
        assert "set CMCOORD_HOME" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(elsewhere.iterdir()) == []  # nothing made

    (config / "cmcoord").mkdir(parents=True)
    (config / "cmcoord" / "home").write_text(f"{roster_settings.home.resolve()}\n")  # as `cmcoord up` records it
    code, out, err = await _run_in(elsewhere, "roster", "directory", env=env)
    assert code == 0, err
    assert out.startswith("name,email,phone") and len(out.splitlines()) > 5  # the sample roster's current posts
    code, _, err = await _run_in(elsewhere, "notify", "stats", env=env)  # that home holds no notify store
    assert code == 2 and f"no store at {roster_settings.home.resolve() / 'notify.db'}" in err
    assert "the home the last `cmcoord up` recorded in" in err
    code, _, err = await _run_in(elsewhere, "roster", "directory", env={**env, "CMCOORD_HOME": str(tmp_path / "x")})
    assert code == 2 and f"no store at {tmp_path / 'x' / 'roster.db'} (home: CMCOORD_HOME)" in err  # the variable wins
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "x").exists()


async def test_unlinked_people_are_listed_and_invited_in_bulk_and_a_registered_one_is_warned_about(
    sample_roster: str, roster_settings: Settings, tmp_path: Path
) -> None:
    from services.roster.models import Person, TelegramLink
    from shared.clock import SystemClock

    env = roster_env(roster_settings)
    rowca = [r for r in csv.DictReader(io.StringIO(sample_roster)) if r["region"] == "ROWCA"]
    linked = rowca[0]
    db = Database(roster_settings.db_url)
    async with db.write() as s:
        person = (await s.exec(select(Person).where(Person.email == linked["email"]))).one()
        s.add(TelegramLink(person_id=person.id, telegram_user_id=4711, linked_at=SystemClock().now()))
    await db.dispose()

    code, out, err = await cli("roster", "unlinked", "--region", "West and Central Africa", env=env)
    assert code == 0, err
    lines = out.strip().splitlines()
    listed = lines[:-1]
    assert listed and all(line.startswith("ROWCA") and "not invited" in line for line in listed)
    assert linked["name"] not in out  # registered
    assert not any(r["phone"] in out for r in rowca)
    assert lines[-1] == f"{len(listed)} person(s) in West and Central Africa without a Telegram link"

    links = tmp_path / "links.csv"
    code, out, err = await cli("roster", "invite", "--unlinked", "--region", "rowca", "--out", str(links), env=env)
    assert code == 0, err
    assert f"{len(listed)} invitation(s) written to {links}" in out
    rows = list(csv.DictReader(io.StringIO(links.read_text())))
    assert len(rows) == len(listed) and linked["email"] not in {r["email"] for r in rows}
    assert all(r["link"] == f"https://t.me/CMCoordHubBot?start={r['token']}" and r["valid_until"] for r in rows)
    assert links.stat().st_mode & 0o077 == 0  # the links are keys: the desk's eyes only
    db = Database(roster_settings.db_url)
    async with db.read() as s:
        stored = {t.token_hash for t in (await s.exec(select(RegistrationToken))).all()}
    await db.dispose()
    assert {hash_token(r["token"]) for r in rows} == stored

    # a second run does not revoke the links just sent, and never overwrites a file of links
    code, out, err = await cli("roster", "invite", "--unlinked", "--region", "ROWCA", "--out", str(links), env=env)
    assert code == 2 and "exists" in err
    again = tmp_path / "again.csv"
    code, out, err = await cli("roster", "invite", "--unlinked", "--region", "ROWCA", "--out", str(again), env=env)
    assert code == 0 and "0 invitation(s)" in out and f"{len(listed)} person(s) skipped" in out, out

    code, out, err = await cli("roster", "invite", linked["email"], env=env)
    assert code == 1 and f"{linked['name']} is already registered" in err and "--force" in err and not out
    code, out, err = await cli("roster", "invite", linked["email"], "--force", env=env)
    assert code == 0 and out.startswith(f"warning: {linked['name']} was registered") and len(out.splitlines()[-1]) >= 32


def test_the_file_of_links_is_private_from_the_start_and_removed_if_saving_them_fails(tmp_path: Path) -> None:
    links = tmp_path / "links.csv"
    with pytest.raises(RuntimeError), private_file(links) as f:
        assert links.stat().st_mode & 0o077 == 0  # created so, not made so afterwards
        f.write("name,email,link\n")
        raise RuntimeError("the invitations were not saved")
    assert not links.exists()  # its links never worked
    links.write_text("kept")
    with pytest.raises(FileExistsError), private_file(links):
        pass
    assert links.read_text() == "kept"
