"""`cmcoord hns4d`, as an operator runs it on the server: the store readied, a party listed, a file with
mistakes refused with each mistake named, an unknown reference, a quarter mistyped, an export of nothing;
without the roster, a command naming a person says so (and changes nothing)."""

import json
from pathlib import Path

from tests.helpers import cli, service_env


def env(home: Path) -> dict[str, str]:
    return service_env(home, "nats://127.0.0.1:1", CMCOORD_HNS4D_QUERY_TIMEOUT_SECONDS="1")


async def hns4d(home: Path, *args: str) -> tuple[int, str, str]:
    return await cli("hns4d", *args, env=env(home))


async def test_the_hns4d_commands_name_each_mistake_and_keep_the_store_as_it_was(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out, err = await hns4d(home, "migrate")
    assert code == 0 and "hns4d store at revision 0002" in out, err
    code, out, err = await hns4d(home, "party", "add", "ML", "Groupe armé du Nord", "--kind", "armed_group",
                                 "--channel", "recorded")
    assert code == 0 and "ML Groupe armé du Nord: armed_group, reached by recorded" in out, err
    code, out, _ = await hns4d(home, "party", "list", "ml")
    assert out.split("\t")[0] == "Groupe armé du Nord"
    code, _, err = await hns4d(home, "party", "add", "ML", "FAMa", "--kind", "state_forces", "--channel", "telegram")
    assert code == 1 and "cannot: a party reached by telegram has a liaison on the roster" in err

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "convoy", "country": "ML", "organisation": "WFP", "name": "x",
                               "points": [[12.6, "west"]], "starts_at": "2026-07-01T08:00", "ends_at": "soon"}))
    code, out, err = await hns4d(home, "submit", str(bad), "--by", "ana@wfp.example")
    assert code == 1 and "Traceback" not in err
    for mistake in ("kind: Input should be 'site' or 'movement'", "points.0.1: Input should be a valid number",
                    "starts_at: Input should have timezone info", "ends_at: Input should be a valid datetime"):
        assert mistake in err, err

    good = tmp_path / "site.json"
    good.write_text(json.dumps({"kind": "site", "country": "ML", "organisation": "WFP", "name": "Mopti warehouse",
                                "points": [[14.4843, -4.1827]], "starts_at": "2026-07-01T08:00+00:00",
                                "ends_at": "2027-07-01T08:00+00:00", "function": "warehouse", "occupancy": 12}))
    code, _, err = await hns4d(home, "submit", str(good), "--by", "ana@wfp.example")  # the roster is not there
    assert code == 1 and "cannot: the roster did not answer" in err

    code, _, err = await hns4d(home, "show", "HN-ML-2026-9999")
    assert code == 1 and "cannot: no notification HN-ML-2026-9999" in err
    code, _, err = await hns4d(home, "figures", "--quarter", "2026Q5")
    assert code == 1 and "a quarter is written 2026Q3" in err
    code, out, err = await hns4d(home, "figures", "--quarter", "2026Q3", "--json")
    assert code == 0 and json.loads(out) == [], err
    code, out, err = await hns4d(home, "digest", "--quarter", "2026Q3")
    assert code == 0 and "nothing was sent to the parties in 2026 Q3: nothing to tell" in out, err
    party_export = ("export", "--format", "geojson", "--out", str(tmp_path / "party.geojson"), "--party",
                    "groupe armé du nord")
    code, _, err = await hns4d(home, *party_export)
    assert code == 1 and "cannot: a party is named with its --country" in err, err
    code, _, err = await hns4d(home, *party_export, "--country", "ml")
    assert code == 1 and "Groupe armé du Nord (ML) is not given exports" in err, err
    assert not (tmp_path / "party.geojson").exists()
    code, out, err = await hns4d(home, "party", "add", "ML", "Groupe armé du Nord", "--kind", "armed_group",
                                 "--channel", "recorded", "--exports")
    assert code == 0 and "may be given exports of what was sent to it" in out, err
    code, out, _ = await hns4d(home, "party", "list", "ML")
    assert out.strip().split("\t") == ["Groupe armé du Nord", "armed_group", "recorded", "exports"]
    code, out, err = await hns4d(home, *party_export, "--country", "ML")
    assert code == 0 and "0 notifications written" in out, err
    code, out, err = await hns4d(home, "party", "add", "ML", "Groupe armé du Nord", "--kind", "armed_group",
                                 "--channel", "recorded")  # a change that does not say keeps the permission
    assert code == 0 and "may be given exports" in out, err
    code, out, err = await hns4d(home, "party", "add", "ML", "Groupe armé du Nord", "--kind", "armed_group",
                                 "--channel", "recorded", "--no-exports")
    assert code == 0 and "may be given exports" not in out, err
    code, _, err = await hns4d(home, *party_export, "--country", "ML")
    assert code == 1 and "is not given exports" in err, err
    code, out, err = await hns4d(home, "export", "--format", "kml", "--out", str(tmp_path / "n.kml"))
    assert code == 0 and "0 notifications written" in out, err
    assert (tmp_path / "n.kml").read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>')
