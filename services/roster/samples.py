"""Synthetic rosters: fictional people in real countries and duty stations.

`generate(people=60)` is the demo roster (gapped posts, people with three
hats, deployments ending within two weeks, successors already assigned);
larger sizes feed the benchmarks. Dates are relative to `today`, and the same
seed always gives the same people.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import date, timedelta

FIRST = (
    "Aminata Moussa Fatou Ibrahim Mariam Oumar Awa Seydou Hawa Boubacar Nadia Karim Leila Samir Rania Tarek Yara "
    "Omar Hana Bilal Amina Hassan Salma Youssef Priya Arjun Mai Thanh Siti Rizal Ayesha Farid Nilufar Tenzin Ana "
    "Diego Lucia Mateo Camila Jorge Valentina Andres Olena Taras Iryna Giorgi Nino Elif Mehmet Sofia Lars Ingrid "
    "Grace Peter Achieng Otieno Wanjiru Tesfaye Hiwot Abdi Faduma Nyakim Deng Chipo Tendai Lindiwe Joao Esperanca"
).split()
LAST = (
    "Diallo Traore Keita Coulibaly Ouedraogo Sawadogo Mahamat Abakar Ndiaye Sow Ba Camara Haddad Khoury Nasser "
    "Mansour Saleh Al-Amin Rahman Hossain Nguyen Tran Santoso Wijaya Khan Ahmadi Karimi Wangchuk Gonzalez Rojas "
    "Herrera Pierre Joseph Moreno Kovalenko Shevchenko Bondarenko Beridze Kapanadze Yilmaz Demir Lindqvist Hansen "
    "Odhiambo Mwangi Kiprop Bekele Tadesse Mohamed Warsame Garang Akech Moyo Ncube Dlamini Macuacua Langa"
).split()

# (region, country, duty station): real places where CMCoord officers serve
STATIONS: tuple[tuple[str, str, str], ...] = (
    ("ROWCA", "ML", "Bamako"), ("ROWCA", "ML", "Mopti"), ("ROWCA", "NE", "Niamey"), ("ROWCA", "BF", "Ouagadougou"),
    ("ROWCA", "NG", "Maiduguri"), ("ROWCA", "TD", "N'Djamena"), ("ROWCA", "CF", "Bangui"), ("ROWCA", "CM", "Maroua"),
    ("ROWCA", "CD", "Goma"), ("ROSEA", "ET", "Addis Ababa"), ("ROSEA", "SO", "Mogadishu"), ("ROSEA", "SS", "Juba"),
    ("ROSEA", "SD", "Port Sudan"), ("ROSEA", "MZ", "Pemba"), ("ROSEA", "KE", "Nairobi"),
    ("ROMENA", "SY", "Damascus"), ("ROMENA", "YE", "Aden"), ("ROMENA", "LB", "Beirut"), ("ROMENA", "LY", "Tripoli"),
    ("ROMENA", "IQ", "Erbil"), ("ROMENA", "PS", "Jerusalem"), ("ROAP", "MM", "Yangon"), ("ROAP", "AF", "Kabul"),
    ("ROAP", "PH", "Cotabato"), ("ROAP", "BD", "Cox's Bazar"), ("ROAP", "PK", "Islamabad"), ("ROAP", "TH", "Bangkok"),
    ("ROLAC", "HT", "Port-au-Prince"), ("ROLAC", "CO", "Bogotá"), ("ROLAC", "VE", "Caracas"), ("ROLAC", "PA", "Panama City"),
    ("ROECA", "UA", "Kyiv"), ("ROECA", "UA", "Dnipro"), ("ROECA", "TR", "Gaziantep"), ("ROECA", "GE", "Tbilisi"),
)
HUBS = {"ROWCA": ("SN", "Dakar"), "ROSEA": ("KE", "Nairobi"), "ROMENA": ("LB", "Beirut"), "ROAP": ("TH", "Bangkok"),
        "ROLAC": ("PA", "Panama City"), "ROECA": ("TR", "Istanbul")}
TIMEZONES = {"ML": "Africa/Bamako", "NE": "Africa/Niamey", "BF": "Africa/Ouagadougou", "NG": "Africa/Lagos",
             "TD": "Africa/Ndjamena", "CF": "Africa/Bangui", "CM": "Africa/Douala", "CD": "Africa/Lubumbashi",
             "ET": "Africa/Addis_Ababa", "SO": "Africa/Mogadishu", "SS": "Africa/Juba", "SD": "Africa/Khartoum",
             "MZ": "Africa/Maputo", "KE": "Africa/Nairobi", "SY": "Asia/Damascus", "YE": "Asia/Aden",
             "LB": "Asia/Beirut", "LY": "Africa/Tripoli", "IQ": "Asia/Baghdad", "PS": "Asia/Gaza", "MM": "Asia/Yangon",
             "AF": "Asia/Kabul", "PH": "Asia/Manila", "BD": "Asia/Dhaka", "PK": "Asia/Karachi", "TH": "Asia/Bangkok",
             "HT": "America/Port-au-Prince", "CO": "America/Bogota", "VE": "America/Caracas", "PA": "America/Panama",
             "UA": "Europe/Kyiv", "TR": "Europe/Istanbul", "GE": "Asia/Tbilisi", "SN": "Africa/Dakar",
             "CH": "Europe/Zurich"}
AGENCIES = ("WFP", "UNHCR", "UNICEF", "IOM", "WHO", "NRC", "Save the Children", "IFRC")
HATS = ("Access focal point", "HNS4D focal point", "Security focal point", "PoC focal point",
        "Information management", "Inter-cluster coordination", "Deputy head of office", "NSAG engagement")
COURSE = "UN-CMCoord Course"
LANGS = {"ROWCA": "fr;en", "ROSEA": "en;sw", "ROMENA": "ar;en", "ROAP": "en", "ROLAC": "es;en", "ROECA": "en;uk"}

HEADER = ("name", "email", "phone", "telegram", "organisation", "languages", "timezone", "country", "duty_station",
          "region", "post_title", "role", "start", "planned_end", "actual_end", "hats", "trainings")


@dataclass
class _Person:
    name: str
    email: str
    phone: str
    telegram: str
    organisation: str
    languages: str
    timezone: str
    trainings: str


def generate(*, people: int = 60, today: date, seed: int = 2020) -> str:
    """A roster CSV of about `people` people, dates relative to `today`."""
    rng = random.Random(seed)
    used: set[str] = set()
    rows: list[tuple[str, ...]] = []
    count = 0

    def person(region: str, country: str, organisation: str, *, trained: bool = True) -> _Person:
        nonlocal count
        count += 1
        while True:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            base = f"{first}.{last}".lower().replace("'", "")
            email = f"{base}@{organisation.lower().replace(' ', '')}.example"
            if email not in used:
                break
            email = f"{base}{count}@{organisation.lower().replace(' ', '')}.example"
            if email not in used:
                break
        used.add(email)
        course_date = today - timedelta(days=rng.randint(200, 2500))
        trainings = f"{COURSE}@{course_date}" if trained else "HEAT@" + str(course_date)
        return _Person(
            name=f"{first} {last}",
            email=email,
            phone=f"+{rng.randint(200, 999)} {rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            telegram=f"{first}{last}{count}".replace("-", "").replace("'", "")[:30] if rng.random() < 0.7 else "",
            organisation=organisation,
            languages=LANGS.get(region, "en"),
            timezone=TIMEZONES.get(country, "UTC"),
            trainings=trainings,
        )

    def row(p: _Person, region: str, country: str, station: str, title: str, role: str, start: date,
            planned_end: date, actual_end: date | None = None, hats: tuple[str, ...] = ()) -> None:
        rows.append((p.name, p.email, p.phone, p.telegram, p.organisation, p.languages, p.timezone, country, station,
                     region, title, role, str(start), str(planned_end), str(actual_end or ""), ";".join(hats),
                     p.trainings))

    # CMCS desk in Geneva and one regional adviser per region
    for i in range(3):
        p = person("ROECA", "CH", "OCHA")
        row(p, "ROECA", "CH", "Geneva", f"CMCS Desk Officer {i + 1}", "cmcs_desk",
            today - timedelta(days=rng.randint(300, 900)), today + timedelta(days=rng.randint(200, 700)))
    for region, (country, station) in HUBS.items():
        p = person(region, country, "OCHA")
        row(p, region, country, station, "Regional CMCoord Adviser", "regional_adviser",
            today - timedelta(days=rng.randint(200, 700)), today + timedelta(days=rng.randint(120, 500)))

    posts: list[tuple[str, str, str, str, str]] = []
    k = 0
    while count + len(posts) < people:
        region, country, station = STATIONS[k % len(STATIONS)]
        n = k // len(STATIONS)
        posts.append((region, country, station, "CMCoord Officer" + (f" {n + 1}" if n else ""), "OCHA"))
        if k % 3 == 1:
            agency = AGENCIES[k % len(AGENCIES)]
            posts.append((region, country, station, f"{agency} Civil-Military Focal Point" + (f" {n + 1}" if n else ""), agency))
        k += 1

    for index, (region, country, station, title, org) in enumerate(posts):
        if count >= people:
            break
        role = "cmcoord_officer" if org == "OCHA" else "focal_point"
        kind = index % 12
        hats: tuple[str, ...] = tuple(rng.sample(HATS, 3 if kind == 5 else rng.randint(0, 2)))
        trained = kind not in (4, 9)
        if kind in (2, 8):  # gapped: the last officer left, nobody took over
            p = person(region, country, org, trained=trained)
            end = today - timedelta(days=rng.randint(3, 40))
            row(p, region, country, station, title, role, end - timedelta(days=rng.randint(90, 270)), end, end, hats)
        elif kind in (3, 10):  # ending within two weeks
            p = person(region, country, org, trained=trained)
            row(p, region, country, station, title, role, today - timedelta(days=rng.randint(60, 300)),
                today + timedelta(days=rng.randint(2, 13)), None, hats)
            if kind == 10 and count < people:  # … with a successor already assigned
                s = person(region, country, org)
                start = today + timedelta(days=rng.randint(14, 30))
                row(s, region, country, station, title, role, start, start + timedelta(days=rng.randint(180, 365)))
        elif kind == 7:  # surge cover on a three-month rotation
            p = person(region, country, "OCHA", trained=trained)
            row(p, region, country, station, title, "surge", today - timedelta(days=rng.randint(10, 60)),
                today + timedelta(days=rng.randint(30, 80)), None, hats)
        else:
            p = person(region, country, org, trained=trained)
            row(p, region, country, station, title, role, today - timedelta(days=rng.randint(20, 400)),
                today + timedelta(days=rng.randint(22, 400)), None, hats)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue()
