"""Roster queries over NATS request/reply against the running roster."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.roster.bootstrap import RosterApp
from services.roster.admin import import_text
from services.roster.config import Settings
from services.roster.models import TelegramLink
from shared.bus import Bus, QueryError
from shared.clock import ManualClock
from shared.store import Database

HEADER = "name,email,phone,organisation,country,duty_station,post_title,role,start,planned_end,hats,trainings,languages\n"


@pytest.fixture
async def people(roster_settings: Settings, clock: ManualClock) -> None:
    t = clock.now().date()
    s, e = t - timedelta(days=30), t + timedelta(days=150)
    rows = [
        f"Aminata Diallo,aminata@ocha.example,+223 70 00 00 01,OCHA,ML,Bamako,CMCoord Officer,cmcoord_officer,{s},{e},"
        "Access focal point;HNS4D focal point;Security focal point,UN-CMCoord Course@2024-01-10,fr;bm",
        f"Éloïse Bâ,eloise@wfp.example,+227 90 00 00 02,WFP,NE,Niamey,WFP Civil-Military Focal Point,focal_point,{s},{e},,,"
        "French;Hausa",
        f"Karim Haddad,karim@ocha.example,+961 1 000 003,OCHA,SN,Dakar,Regional CMCoord Adviser,regional_adviser,{s},{e},,"
        "UN-CMCoord Course@2022-05-01,Arabic;French;English",
        f"Tenzin Wangchuk,tenzin@ocha.example,+66 2 000 0004,OCHA,MM,Yangon,CMCoord Officer,cmcoord_officer,{s},{e},,"
        "UN-CMCoord Course@2023-03-03,en",
        f"Moussa Diallo,moussa@ocha.example,+223 70 00 00 05,OCHA,ML,Mopti,CMCoord Officer,cmcoord_officer,"
        f"{t - timedelta(days=200)},{t - timedelta(days=20)},,UN-CMCoord Course@2020-01-01,fr",
        f"Maria Keller,maria@ocha.example,+41 22 000 0006,OCHA,CH,Geneva,CMCS Desk Officer,cmcs_desk,{s},{e},,"
        "UN-CMCoord Course@2019-01-01,de;en",
    ]
    _, errors, _ = await import_text(HEADER + "\n".join(rows) + "\n", settings=roster_settings, clock=clock, publish=False)
    assert errors == []


async def contacts(bus: Bus, query: str, **kw: object) -> dict:
    return await bus.request("cmcoord.roster.svc.contacts", {"query": query, **kw})


def names(page: dict) -> list[str]:
    return [item["name"] for item in page["items"]]


async def test_contacts_by_country_region_organisation_and_name(people: None, roster: RosterApp, bus: Bus) -> None:
    assert names(await contacts(bus, "Mali")) == ["Aminata Diallo"]  # Moussa's deployment has ended
    assert names(await contacts(bus, "MLI")) == ["Aminata Diallo"]
    assert sorted(names(await contacts(bus, "ROWCA"))) == ["Aminata Diallo", "Karim Haddad", "Éloïse Bâ"]
    assert sorted(names(await contacts(bus, "west and central africa"))) == ["Aminata Diallo", "Karim Haddad", "Éloïse Bâ"]
    assert names(await contacts(bus, "WFP")) == ["Éloïse Bâ"]
    assert names(await contacts(bus, "eloise ba")) == ["Éloïse Bâ"]  # accents and case ignored
    assert names(await contacts(bus, "Bamako")) == ["Aminata Diallo"]
    diallo = names(await contacts(bus, "diallo"))
    assert diallo[0] == "Aminata Diallo" and "Moussa Diallo" in diallo  # people off deployment are still findable
    assert names(await contacts(bus, "Wangchuck")) == ["Tenzin Wangchuk"]  # misspelt
    assert names(await contacts(bus, "Atlantis")) == []


async def test_contact_cards_carry_hats_flags_and_contacts(people: None, roster: RosterApp, bus: Bus) -> None:
    page = await contacts(bus, "Aminata")
    card = page["items"][0]
    assert card["phone"] == "+223 70 00 00 01" and card["email"] == "aminata@ocha.example"
    assert card["deployments"][0]["duty_station"] == "Bamako" and card["deployments"][0]["region"] == "ROWCA"
    assert card["other_hats"] == ["Access focal point", "HNS4D focal point", "Security focal point"]
    assert card["flags"] == ["more_than_two_hats"]
    eloise = (await contacts(bus, "Niger"))["items"][0]
    assert eloise["flags"] == ["no_cmcoord_course"]


async def test_contacts_paginate(people: None, roster: RosterApp, bus: Bus) -> None:
    first = await contacts(bus, "ROWCA", limit=2)
    second = await contacts(bus, "ROWCA", limit=2, offset=2)
    assert first["total"] == second["total"] == 3
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert not set(names(first)) & set(names(second))


async def test_bad_queries_get_clear_errors(people: None, roster: RosterApp, bus: Bus) -> None:
    with pytest.raises(QueryError) as err:
        await bus.request("cmcoord.roster.svc.contacts", {"query": ""})
    assert err.value.code == "400"
    with pytest.raises(QueryError) as err:
        await bus.request("cmcoord.roster.svc.directory", {"region": "Mordor"})
    assert err.value.code == "400" and "Mordor" in err.value.description


async def test_directory_and_post_holder(people: None, roster: RosterApp, bus: Bus) -> None:
    rows = await bus.request("cmcoord.roster.svc.directory", {"region": "ROWCA"})
    assert sorted((r["deployment"]["country"], r["person"]["name"]) for r in rows) == [
        ("ML", "Aminata Diallo"), ("NE", "Éloïse Bâ"), ("SN", "Karim Haddad")]
    post_id = rows[0]["deployment"]["post_id"]
    holder = await bus.request("cmcoord.roster.svc.post_holder", {"post_id": post_id})
    assert [h["person"]["name"] for h in holder["holders"]] == [rows[0]["person"]["name"]]


async def test_a_role_s_holders_in_a_region_or_in_one_country(people: None, roster: RosterApp, bus: Bus) -> None:
    async def holders(**where: str) -> list[str]:
        return sorted(r["name"] for r in await bus.request("cmcoord.roster.svc.recipients",
                                                            {"role": "cmcoord_officer", **where}))

    assert await holders() == ["Aminata Diallo", "Tenzin Wangchuk"]  # Moussa's deployment ended
    assert await holders(region="ROWCA") == ["Aminata Diallo"]
    assert await holders(region="ROWCA", country="ML") == ["Aminata Diallo"]
    assert await holders(region="ROWCA", country="NE") == []  # Niger's focal point holds no officer's post
    assert await holders(country="MM") == ["Tenzin Wangchuk"]


async def test_person_by_telegram(people: None, roster: RosterApp, roster_settings: Settings, bus: Bus) -> None:
    with pytest.raises(QueryError) as err:
        await bus.request("cmcoord.roster.svc.person_by_telegram", {"telegram_user_id": 4242})
    assert err.value.code == "404"
    page = await contacts(bus, "Tenzin")
    db = Database(roster_settings.db_url)
    async with db.unit_of_work(source="test", clock=roster.clock) as uow:
        uow.session.add(TelegramLink(person_id=uuid.UUID(page["items"][0]["person_id"]), telegram_user_id=4242,
                                     linked_at=datetime.now(UTC)))
    await db.dispose()
    card = await bus.request("cmcoord.roster.svc.person_by_telegram", {"telegram_user_id": 4242})
    assert card["name"] == "Tenzin Wangchuk"


async def test_countries_by_french_and_arabic_names_hats_roles_and_languages(
    people: None, roster: RosterApp, bus: Bus
) -> None:
    for query in ("مالي", "République du Mali", "mali", "MLI"):
        page = await contacts(bus, query)
        assert names(page) == ["Aminata Diallo"] and page["matched"] == [{"kind": "country", "value": "ML"}], query
    assert names(await contacts(bus, "Sénégal")) == ["Karim Haddad"]
    chad = await contacts(bus, "Tchad")  # nobody there: the answer still says which country it understood
    assert chad["total"] == 0 and chad["matched"] == [{"kind": "country", "value": "TD"}]
    hns4d = await contacts(bus, "HNS4D")
    assert names(hns4d) == ["Aminata Diallo"] and hns4d["matched"] == [{"kind": "hat", "value": "HNS4D"}]
    assert names(await contacts(bus, "access focal point")) == ["Aminata Diallo"]
    for query in ("Arabic", "arabe", "العربية", "ara"):
        page = await contacts(bus, query)
        assert names(page) == ["Karim Haddad"] and {"kind": "language", "value": "ar"} in page["matched"], query
    # by language, people between deployments count too (surge planning): Moussa's ended
    assert sorted(names(await contacts(bus, "français"))) == [
        "Aminata Diallo", "Karim Haddad", "Moussa Diallo", "Éloïse Bâ"]
    assert names(await contacts(bus, "Haoussa")) == ["Éloïse Bâ"]
    for query in ("regional adviser", "conseiller régional"):
        page = await contacts(bus, query)
        assert names(page) == ["Karim Haddad"] and page["matched"] == [{"kind": "role", "value": "regional_adviser"}]


async def test_a_gapped_post_answers_with_who_covers_it(people: None, roster: RosterApp, bus: Bus) -> None:
    # Moussa left Mopti 20 days ago and nobody took over: the post is gapped
    page = await contacts(bus, "Mopti")
    assert page["total"] == 0 and page["gaps_total"] == 1
    gap = page["gaps"][0]
    assert (gap["duty_station"], gap["country"], gap["region"]) == ("Mopti", "ML", "ROWCA")
    assert gap["gapped_since"] == str(roster.clock.now().date() - timedelta(days=19))
    assert gap["cover_role"] == "regional_adviser" and [c["name"] for c in gap["covered_by"]] == ["Karim Haddad"]
    assert gap["covered_by"][0]["phone"] == "+961 1 000 003"
    by_country = await contacts(bus, "Mali")  # the country's gaps come with its people
    assert names(by_country) == ["Aminata Diallo"] and [g["duty_station"] for g in by_country["gaps"]] == ["Mopti"]
    assert (await contacts(bus, "Bamako"))["gaps"] == []


async def test_counterparts_follow_their_classification_and_the_desk_sees_them(
    people: None, roster: RosterApp, roster_settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    from tests.helpers import cli, roster_env

    csv = tmp_path / "counterparts.csv"
    csv.write_text("country,unit,function,channel,classification\n"
                   "Mali,MINUSMA Civil Affairs,Liaison,+223 20 00 00 00 (duty phone),\n"
                   "Tchad,Gendarmerie,Escort requests,+235 22 00 00 00,restricted\n"
                   "ML,Governor's office,Humanitarian desk,+223 20 11 11 11,public\n"
                   "مالي,Operation cell,Deconfliction,+223 20 22 22 22,community\n")
    env = roster_env(roster_settings)
    code, _, err = await cli("roster", "counterparts", str(csv), env=env)
    assert code == 0, err
    ids = {item["name"]: item["person_id"] for item in (await contacts(bus, "ROWCA"))["items"]}
    for name in ("Tenzin", "Maria"):
        ids[(await contacts(bus, name))["items"][0]["name"]] = (await contacts(bus, name))["items"][0]["person_id"]

    async def seen(name: str, country: str = "ML") -> list[tuple[str, str]]:
        found = await bus.request("cmcoord.roster.svc.counterparts", {"country": country, "requester_person_id": ids[name]})
        return [(c["unit"], c["classification"]) for c in found]

    everything = [("Governor's office", "public"), ("Operation cell", "community"),
                  ("MINUSMA Civil Affairs", "restricted")]  # no classification given: restricted
    for name in ("Aminata Diallo", "Karim Haddad", "Maria Keller"):  # officer in Mali, adviser of the region, desk
        assert await seen(name) == everything, name
    assert await seen("Maria Keller", "Tchad") == [("Gendarmerie", "restricted")]  # the desk: every country
    for name in ("Éloïse Bâ", "Tenzin Wangchuk"):  # agency focal point; officer of another region
        assert await seen(name) == everything[:2], name
    with pytest.raises(QueryError) as err:
        await bus.request("cmcoord.roster.svc.counterparts", {"country": "ML", "requester_person_id": str(uuid.uuid4())})
    assert err.value.code == "403"


async def invite(settings: Settings, clock: ManualClock, email: str) -> str:
    from services.roster.handlers import create_invite

    db = Database(settings.db_url)
    async with db.unit_of_work(source="test", clock=clock) as uow:
        _, token = await create_invite(uow, email=email, ttl=timedelta(days=settings.invite_ttl_days))
    await db.dispose()
    return token


async def register(bus: Bus, token: str, telegram_user_id: int) -> dict:
    return await bus.request("cmcoord.roster.svc.register", {"token": token, "telegram_user_id": telegram_user_id})


async def test_registration_good_reused_expired_garbage_and_taken(
    people: None, roster: RosterApp, roster_settings: Settings, clock: ManualClock, bus: Bus
) -> None:
    from tests.helpers import eventually, stream_events

    token = await invite(roster_settings, clock, "aminata@ocha.example")
    card = await register(bus, token, 7001)
    assert card["name"] == "Aminata Diallo"
    assert (await bus.request("cmcoord.roster.svc.person_by_telegram", {"telegram_user_id": 7001}))["name"] == card["name"]
    linked = await eventually(lambda: stream_events(bus.js, "ROSTER", type_prefix="roster.telegram.linked"))
    assert linked[0].data == {"person_id": card["person_id"], "telegram_user_id": 7001, "confirmed_by_desk": False}

    refusals = []
    for attempt in (token, "not-a-token"):  # reused; garbage
        with pytest.raises(QueryError) as err:
            await register(bus, attempt, 7002)
        refusals.append((err.value.code, err.value.description))
    other = await invite(roster_settings, clock, "tenzin@ocha.example")
    with pytest.raises(QueryError) as err:  # this Telegram account already belongs to Aminata
        await register(bus, other, 7001)
    refusals.append((err.value.code, err.value.description))
    assert (await register(bus, other, 7004))["name"] == "Tenzin Wangchuk"  # the refused token was not spent
    late = await invite(roster_settings, clock, "karim@ocha.example")
    clock.advance(timedelta(days=7, seconds=1))
    with pytest.raises(QueryError) as err:
        await register(bus, late, 7003)
    refusals.append((err.value.code, err.value.description))
    assert refusals == [
        ("409", "invitation already used"),
        ("404", "unknown invitation"),
        ("409", "this Telegram account is linked to someone else"),
        ("410", "invitation expired"),
    ]
