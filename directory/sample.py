"""Deterministic fictional listings over real US and Canadian postcodes, denser in big cities."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageColor, ImageDraw
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from directory import photos
from directory.geo import Place, great_circle_km, postcodes
from directory.listings import make_slug
from directory.models import Listing, Photo
from directory.vocabulary import vocabulary

SEED = 20261122
METRO_RADIUS_KM = 45.0
METRO_SHARE = 0.85
# Canada Post's H0H 0H0 (Santa's North Pole address) sits at latitude 90; no practice lies north of this.
MAX_LATITUDE = 84.0

# (postcode at the centre, relative weight): roughly metro populations, in millions.
METROS = [
    ("10001", 19.5), ("90012", 13.0), ("60602", 9.4), ("75201", 7.6), ("77002", 7.1), ("20001", 6.3),
    ("33131", 6.1), ("19103", 6.2), ("30303", 6.1), ("02108", 4.9), ("85004", 4.9), ("94103", 4.7),
    ("92501", 4.6), ("48226", 4.4), ("98101", 4.0), ("55401", 3.7), ("92101", 3.3), ("33602", 3.2),
    ("80202", 3.0), ("21201", 2.8), ("63101", 2.8), ("97204", 2.5), ("78205", 2.6), ("95814", 2.4),
    ("15222", 2.4), ("89101", 2.3), ("78701", 2.4), ("45202", 2.3), ("64105", 2.2), ("43215", 2.1),
    ("46204", 2.1), ("28202", 2.7), ("37203", 2.0), ("84101", 1.3), ("73102", 1.4), ("87102", 0.9),
    ("70112", 1.3), ("96813", 1.0), ("99501", 0.4), ("04101", 0.6), ("05401", 0.2), ("59601", 0.1),
    ("M5V 3L9", 6.2), ("H3B 4W8", 4.3), ("V6B 1A1", 2.6), ("T2P 1J9", 1.5), ("T5J 0N3", 1.4),
    ("K1P 1J1", 1.4), ("R3C 4T3", 0.8), ("G1R 4S9", 0.8), ("L8P 4R5", 0.8), ("B3J 3K5", 0.4),
    ("S4P 3Y2", 0.25), ("A1C 5M2", 0.2),
]

# Names and real area codes are data (sample_data.json). First names are grouped by the gender they are most often
# given to, so that a listing's name and gender seldom disagree.
DATA = json.loads(Path(__file__).with_name("sample_data.json").read_text(encoding="utf-8"))
FIRST_NAMES = {gender: DATA["first_names"][gender] + DATA["first_names"]["either"] for gender in ("woman", "man")}
ANY_NAME = [name for names in DATA["first_names"].values() for name in names]
LAST_NAMES = DATA["last_names"]
US_CREDENTIALS = ["LCSW", "LMFT", "LPC", "PhD, Licensed Psychologist", "PsyD", "LMHC", "LPCC", "LCPC"]
CA_CREDENTIALS = ["RP", "RCC", "RSW", "C.Psych", "CCC", "RMFT", "MSW, RSW"]
US_INSURANCE = ["aetna", "bcbs", "cigna", "uhc", "kaiser", "medicare", "medicaid", "tricare", "humana"]
CA_INSURANCE = ["sun-life", "manulife", "canada-life", "green-shield", "blue-cross-canada"]
POPULAR_MODALITIES = {"eft": 5, "cbt": 6, "attachment-based": 4, "trauma-informed": 4, "relational": 3}
POPULAR_SPECIALTIES = {"depression": 8, "anxiety": 8, "insecure-attachment": 4, "relationship-issues": 4}
STREETS = ["Maple", "Cedar", "King", "Queen", "Main", "Elm", "Harbour", "Lakeview", "Park", "Church", "Mill", "Oak"]
STREET_KINDS = ["Street", "Avenue", "Road", "Boulevard", "Lane"]
# Each phrase with the ages and client types it says the therapist sees, so that a bio never claims couples or adults
# the listing's own fields leave out.
OPENINGS = [
    ("{first} sees adults who feel stuck in the same painful patterns with the people closest to them.", {"adults"}),
    ("{first} works with individuals and couples who want steadier, more trusting relationships.",
     {"individuals", "couples"}),
    ("{first} helps clients make sense of low mood, worry and the fear of being let down by others.", set()),
    ("{first} has spent years supporting people through depression, loneliness and hard transitions.", set()),
]
METHODS = [
    "Sessions draw on {modalities}, paced to what each client can take on.",
    "The approach combines {modalities} with practical tools for the week between sessions.",
    "Training includes {modalities}; the work is collaborative and goal-oriented.",
]
FOCUS = [
    "Common themes: {specialties}.",
    "Areas of focus include {specialties}.",
    "Clients often come for help with {specialties}.",
]
CLOSINGS = [
    ("New clients can book a free 15-minute consultation.", set()),
    ("Evening appointments are available.", set()),
    ("Couples and individuals welcome.", {"individuals", "couples"}),
    ("", set()),
]

# Who the therapists see, what their practices affirm and their gender, in rough shares of what large directories'
# profiles claim (their filter counts in big metros; profiles tick generously, so these are claims, not caseloads).
# Ages: adults 90%, young adults 55%, teens 35%, children 15%, older adults 35%. One practice in ten sees no adults
# (a child and adolescent practice); elsewhere children come with teens, as child therapists mostly see both.
YOUTH_PRACTICE = 0.10
# Client types: individuals 95%, couples 35%, families 25%, groups 8%. Couples go with the approaches and themes
# couples work is done with (EFT, Gottman, relationship issues), families with children and teens, and the few
# without individual clients are couples or family practices.
COUPLES_CUES = {"eft", "gottman", "relationship-issues"}
# Communities: LGBTQ+ affirming 45%; trans and non-binary affirming 25%, nearly always with LGBTQ+ affirming (and
# nearly always for non-binary therapists); BIPOC-centred 15%; veterans 10%, more among those who take TRICARE;
# neurodivergent-affirming 15%; disability-affirming 10%; immigrants and refugees 8%, more among those speaking a
# further language; faith-informed 10%, most Christian, then Jewish and Muslim, the others rare.
FAITHS = {"faith-christian": 58, "faith-jewish": 20, "faith-muslim": 10, "faith-buddhist": 5, "faith-hindu": 4,
          "faith-sikh": 3}
# Gender: about seven in ten women (the US counselling and psychology workforce is roughly that, in BLS and APA
# figures), 22% men, 3% non-binary, 0.3% a gender the vocabulary does not name (kept as written, so the admin's
# unmapped-gender list has something to show), the rest not said.
GENDERS = {"woman": 700, "man": 220, "non-binary": 30, "unmapped": 3, "": 47}
UNMAPPED_GENDERS = ["Two-Spirit", "Bigender"]
# Fees: $80-180 at the least, up to $100 more at the most. Directories make fees optional and some profiles leave
# them out ("contact for rates"); one in ten here, so the sample shows that such a listing is never under a fee
# ceiling.
NO_FEE_SHARE = 0.10


@dataclass(frozen=True)
class Spot:
    """Where a generated listing is: a real postcode and its place."""

    postcode: str
    city: str
    region: str
    country: str
    lat: float
    lon: float
    metro: str = ""  # the postcode at the centre of the metro whose radius holds it, if one does


def _spot_from_place(place: Place, metro: str) -> Spot:
    return Spot(place.postcode, place.name.rsplit(",", 1)[0], place.region, place.country, place.lat, place.lon,
                metro)


class _SpotPicker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        us = [p for p in postcodes.us_places() if p.region in _MAINLAND_AND_HAWAII]
        fsas = [p for p in postcodes.fsa_places() if p.lat <= MAX_LATITUDE]
        self.anywhere = us + fsas
        self.metros = []
        self.centres = []
        self.centre_places = []
        self.weights = []
        for code, weight in METROS:
            centre = postcodes.lookup(code)
            pool = fsas if centre.country == "CA" else us
            near = [
                p for p in pool
                if abs(p.lat - centre.lat) < 0.5 and abs(p.lon - centre.lon) < 0.8
                and great_circle_km(centre.lat, centre.lon, p.lat, p.lon) <= METRO_RADIUS_KM
            ]
            near.sort(key=lambda p: great_circle_km(centre.lat, centre.lon, p.lat, p.lon))
            self.metros.append(near)
            self.centres.append(code)
            self.centre_places.append(centre)
            self.weights.append(weight)
        self._codes: dict[str, list[tuple[str, str, float, float]]] = {}

    def pick(self) -> Spot:
        rng = self.rng
        metro = ""
        if rng.random() < METRO_SHARE:
            chosen = rng.choices(range(len(self.metros)), self.weights)[0]
            near, metro = self.metros[chosen], self.centres[chosen]
            # Squaring the index crowds listings toward the metro centre, as practices are.
            place = near[int(len(near) * rng.random() ** 2)]
        else:
            place = rng.choice(self.anywhere)
            metro = self._metro_around(place)
        if place.country == "US":
            return _spot_from_place(place, metro)
        codes = self._codes.get(place.postcode)
        if codes is None:
            codes = self._codes[place.postcode] = postcodes.codes_in_fsa(place.postcode)
        if not codes:
            return _spot_from_place(place, metro)
        code, name, lat, lon = rng.choice(codes)
        if lat > MAX_LATITUDE:
            return _spot_from_place(place, metro)
        return Spot(code, name, place.region, "CA", lat, lon, metro)

    def _metro_around(self, place: Place) -> str:
        """The centre of a metro whose radius holds a place drawn from anywhere, or "" (so its phone looks local)."""
        for code, centre in zip(self.centres, self.centre_places, strict=True):
            if abs(place.lat - centre.lat) < 0.5 and abs(place.lon - centre.lon) < 0.8 \
                    and great_circle_km(centre.lat, centre.lon, place.lat, place.lon) <= METRO_RADIUS_KM:
                return code
        return ""


_MAINLAND_AND_HAWAII = {
    r for r in (
        "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
        "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR"
    ).split()
}


def _weighted_sample(rng: random.Random, slugs: list[str], popular: dict[str, int], k: int) -> list[str]:
    weights = [popular.get(s, 1) for s in slugs]
    chosen: list[str] = []
    while len(chosen) < k:
        slug = rng.choices(slugs, weights)[0]
        if slug not in chosen:
            chosen.append(slug)
    return chosen


def _names(kind: str, slugs: list[str]) -> str:
    names = [vocabulary.terms[kind][s].name for s in slugs]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _confirmed_on(rng: random.Random, today: dt.date) -> dt.date | None:
    """When availability was last confirmed, counted back from the day of generation: like a kept directory, most
    within the last 90 days, a quarter long ago and one in ten never."""
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.75:
        return today - dt.timedelta(days=int((roll - 0.1) / 0.65 * 90))
    return today - dt.timedelta(days=91 + int((roll - 0.75) / 0.25 * 400))  # day 90 still counts


def _gender(rng: random.Random) -> tuple[str, str]:
    """(gender slug or "", the gender as written when the vocabulary names none)."""
    drawn = rng.choices(list(GENDERS), list(GENDERS.values()))[0]
    return ("", rng.choice(UNMAPPED_GENDERS)) if drawn == "unmapped" else (drawn, "")


def _ages(rng: random.Random) -> list[str]:
    """The ages a therapist sees, youngest first (YOUTH_PRACTICE and the shares above it)."""
    if rng.random() < YOUTH_PRACTICE:
        seen = {"children": rng.random() < 0.6, "teens": rng.random() < 0.95, "young-adults": rng.random() < 0.2}
        if not any(seen.values()):
            seen["teens"] = True
        seen |= {"adults": False, "older-adults": False}
    else:
        teens = rng.random() < 0.28
        seen = {"children": teens and rng.random() < 0.36, "teens": teens, "young-adults": rng.random() < 0.59,
                "adults": True, "older-adults": rng.random() < 0.39}
    return [slug for slug in vocabulary.slugs("age") if seen.get(slug)]


def _client_types(rng: random.Random, ages: list[str], cues: set[str]) -> list[str]:
    """The client types a therapist sees, given their ages and their approaches and themes (COUPLES_CUES)."""
    youth_only = "adults" not in ages
    couples = rng.random() < (0.02 if youth_only else 0.48 if cues & COUPLES_CUES else 0.2)
    families = rng.random() < (0.5 if {"children", "teens"} & set(ages) else 0.12)
    seen = {"individuals": not ((couples or families) and rng.random() < 0.1), "couples": couples,
            "families": families, "groups": rng.random() < 0.08}
    return [slug for slug in vocabulary.slugs("client_type") if seen[slug]]


def _communities(rng: random.Random, gender: str, insurance: list[str], extra_language: bool) -> list[str]:
    """The communities a practice affirms or centres (the shares above FAITHS)."""
    lgbtq = rng.random() < (0.95 if gender == "non-binary" else 0.45)
    seen = {
        "lgbtq-affirming": lgbtq,
        "trans-affirming": lgbtq and rng.random() < (0.9 if gender == "non-binary" else 0.52),
        "bipoc-centered": rng.random() < 0.15,
        "veterans": rng.random() < (0.35 if "tricare" in insurance else 0.06),
        "neurodivergent-affirming": rng.random() < 0.15,
        "disability-affirming": rng.random() < 0.10,
        "immigrants-refugees": rng.random() < (0.2 if extra_language else 0.05),
    }
    if rng.random() < 0.10:
        seen[rng.choices(list(FAITHS), list(FAITHS.values()))[0]] = True
    return [slug for slug in vocabulary.slugs("community") if seen.get(slug)]


def _phone(rng: random.Random, spot: Spot) -> str:
    """A fictional number (555-0100 to 555-0199, reserved for fiction) that looks local: a real area code of the
    listing's metro when it is in the metro's region, else of its region (Canada's are the same numbering plan)."""
    metro = DATA["metro_area_codes"].get(spot.metro, ())
    local = metro if metro and _region_of(spot.metro) == spot.region else DATA["region_area_codes"][spot.region]
    return f"({rng.choice(local)}) 555-01{rng.randrange(0, 100):02d}"


@functools.cache
def _region_of(postcode: str) -> str:
    return postcodes.lookup(postcode).region


def _fees(rng: random.Random) -> tuple[int | None, int | None]:
    """(fee_min, fee_max) a session; NO_FEE_SHARE of listings name none."""
    if rng.random() < NO_FEE_SHARE:
        return None, None
    fee_min = rng.randrange(80, 190, 10)
    return fee_min, fee_min + rng.randrange(0, 110, 10)


def _bio(rng: random.Random, first: str, modalities: list[str], specialties: list[str], sees: set[str]) -> str:
    """A listing's bio: four sentences drawn from the sample's phrases, after the line that says it is fictional;
    none claims an age or client type outside `sees`."""
    return " ".join(filter(None, [
        "Fictional sample listing.",
        rng.choice([text for text, needs in OPENINGS if needs <= sees]).format(first=first),
        rng.choice(METHODS).format(modalities=_names("modality", modalities)),
        rng.choice(FOCUS).format(specialties=_names("specialty", specialties).lower()),
        rng.choice([text for text, needs in CLOSINGS if needs <= sees]),
    ]))


def _approaches_and_specialties(rng: random.Random, modalities: list[str],
                                specialties: list[str]) -> tuple[list[str], list[str]]:
    return (_weighted_sample(rng, modalities, POPULAR_MODALITIES, rng.randint(1, 4)),
            _weighted_sample(rng, specialties, POPULAR_SPECIALTIES, rng.randint(2, 5)))


def _languages(rng: random.Random, spot: Spot, further: list[str]) -> list[str]:
    languages = ["french", "english"] if spot.region == "QC" else ["english"]
    if rng.random() < 0.25:  # a further language: French too in Canada, outside Quebec where it is already one
        languages.append(rng.choice(further + ["french"] if spot.country == "CA" and "french" not in languages
                                    else further))
    return languages


def _formats(rng: random.Random) -> tuple[bool, bool]:
    """(in person, online): most see people in person, and two thirds of those online too."""
    in_person = rng.random() < 0.85
    return in_person, not in_person or rng.random() < 0.65


def _own_point(rng: random.Random, spot: Spot, own: bool) -> dict[str, float | None]:
    """The listing's latitude and longitude: its own, near the spot, or None (its postcode's)."""
    return {"latitude": round(spot.lat + rng.uniform(-0.01, 0.01), 5) if own else None,
            "longitude": round(spot.lon + rng.uniform(-0.01, 0.01), 5) if own else None}


def generate(count: int, *, today: dt.date, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """Yield `count` fictional listings as dicts of Listing fields, confirmation dates counted back from `today`;
    the same (count, today, seed) gives the same data."""
    rng = random.Random(seed)
    spots = _SpotPicker(rng)
    modalities, specialties = vocabulary.slugs("modality"), vocabulary.slugs("specialty")
    languages = [s for s in vocabulary.slugs("language") if s not in ("english", "french")]
    for i in range(1, count + 1):
        spot = spots.pick()
        gender, gender_unmapped = _gender(rng)
        first, last = rng.choice(FIRST_NAMES.get(gender, ANY_NAME)), rng.choice(LAST_NAMES)
        name = f"{first} {last}"
        external_id = f"sample-{i:07d}"
        mods, specs = _approaches_and_specialties(rng, modalities, specialties)
        ages = _ages(rng)
        client_types = _client_types(rng, ages, {*mods, *specs})
        langs = _languages(rng, spot, languages)
        insurance = rng.sample(US_INSURANCE if spot.country == "US" else CA_INSURANCE, rng.randint(0, 3))
        communities = _communities(rng, gender, insurance, extra_language=langs[-1] not in ("english", "french"))
        in_person, telehealth = _formats(rng)
        fee_min, fee_max = _fees(rng)
        own_coordinates = rng.random() < 0.5
        bio = _bio(rng, first, mods, specs, {*ages, *client_types})
        yield {
            "external_id": external_id,
            "slug": make_slug(name, spot.city, external_id),
            "name": name,
            "credentials": rng.choice(US_CREDENTIALS if spot.country == "US" else CA_CREDENTIALS),
            "license_number": f"{spot.region}-{rng.randrange(10000, 99999)}",
            "license_region": spot.region,
            "email": f"{first}.{last}.{i}@example.org".lower(),
            "phone": _phone(rng, spot),
            "website": f"https://example.org/therapists/{external_id}",
            "address": f"{rng.randrange(1, 2400)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}",
            "city": spot.city,
            "region": spot.region,
            "postcode": spot.postcode,
            "country": spot.country,
            **_own_point(rng, spot, own_coordinates),
            "modalities": mods,
            "specialties": specs,
            "languages": langs,
            "insurance": insurance,
            "ages": ages,
            "client_types": client_types,
            "communities": communities,
            "telehealth": telehealth,
            "in_person": in_person,
            "accepting_new_clients": rng.random() < 0.75,
            "availability_confirmed_on": _confirmed_on(rng, today),
            "fee_min": fee_min,
            "fee_max": fee_max,
            "sliding_scale": rng.random() < 0.3,
            "gender": gender,
            "gender_unmapped": gender_unmapped,
            "bio": bio,
            "published": rng.random() < 0.97,
            # By the id's hash, not the generator, so adding photos left every other sample value as it was.
            "photo": _portrait_for(external_id),
        }


PORTRAIT_SHARE = 0.35
# (background top, background bottom, figure): soft, non-photographic colours, so nobody mistakes them for a face.
PORTRAIT_COLOURS = [("#dce8f2", "#a9c6de", "#4d6a85"), ("#f2e6dc", "#dec3a9", "#85654d"),
                    ("#e3f2dc", "#bcdea9", "#55854d"), ("#efdcf2", "#d2a9de", "#7a4d85"),
                    ("#f2f0dc", "#ded8a9", "#857c4d"), ("#dcf2ef", "#a9ded6", "#4d857d")]


@functools.cache
def portraits() -> dict[str, bytes]:
    """The sample's placeholder portraits (a head-and-shoulders figure on a gradient), drawn here with Pillow and
    prepared like an upload: digest → JPEG."""
    made = {}
    for top, bottom, figure in PORTRAIT_COLOURS:
        image = Image.new("RGB", (240, 240), top)
        draw = ImageDraw.Draw(image)
        start, end = ImageColor.getrgb(top), ImageColor.getrgb(bottom)
        for y in range(240):
            draw.line([(0, y), (239, y)], fill=tuple(a + (b - a) * y // 239 for a, b in zip(start, end, strict=True)))
        draw.ellipse((80, 50, 160, 130), fill=figure)
        draw.ellipse((40, 140, 200, 300), fill=figure)
        out = io.BytesIO()
        image.save(out, "PNG")
        jpeg = photos.prepare(out.getvalue())
        made[hashlib.sha256(jpeg).hexdigest()] = jpeg
    return made


def _portrait_for(external_id: str) -> str:
    roll = int(hashlib.sha256(external_id.encode()).hexdigest()[:8], 16)
    if roll % 1000 >= PORTRAIT_SHARE * 1000:
        return ""
    digests = sorted(portraits())
    return digests[roll % len(digests)]


def load_if_empty(session_factory: sessionmaker[Session], count: int, today: dt.date) -> int:
    """Insert `count` sample listings (confirmed relative to `today`) when the database has no listings; returns how
    many were added."""
    with session_factory() as session:
        if session.scalar(select(exists().where(Listing.id.isnot(None)))):
            return 0
        session.add_all(Listing(**fields) for fields in generate(count, today=today))
        session.add_all(Photo(digest=digest, data=jpeg) for digest, jpeg in portraits().items())
        try:
            session.commit()
        except IntegrityError:
            # Another worker loaded them first.
            session.rollback()
            return 0
    return count
