"""`cmcoord roster ...` as an operator runs it."""

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

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
