"""Deterministic fictional listings over real US and Canadian postcodes, denser in big cities."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
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

FIRST_NAMES = [
    "Avery", "Jordan", "Maya", "Elena", "Samuel", "Priya", "Daniel", "Noor", "Grace", "Marcus", "Lucia", "Theo",
    "Hannah", "Omar", "Camille", "Isaac", "Mei", "Rosa", "Julien", "Aisha", "Benjamin", "Chloe", "Diego", "Esther",
    "Farah", "Gabriel", "Helen", "Ivan", "Jasmine", "Kenji", "Leah", "Mateo", "Nadia", "Owen", "Paloma", "Quinn",
    "Rahul", "Sofia", "Tomas", "Uma", "Victor", "Wren", "Yara", "Zoe", "Amara", "Bilal", "Clara", "Dev",
]
LAST_NAMES = [
    "Abernathy", "Bellweather", "Castellano", "Desrosiers", "Eastwood", "Fairbanks", "Galloway", "Hollister",
    "Ibarra", "Jankowski", "Kowalczyk", "Lindqvist", "Marchetti", "Nakamura", "Okonkwo", "Pellegrino", "Quintero",
    "Rasmussen", "Sandoval", "Tremblay", "Underhill", "Valdivia", "Whitfield", "Yamamoto", "Zielinski", "Achebe",
    "Brightwater", "Cormier", "Delacroix", "Everly", "Fontaine", "Gunnarsson", "Haddad", "Iverson", "Juarez",
    "Kaplan", "Lachance", "Moreau", "Novak", "Ouellet", "Patel", "Rahimi", "Sorensen", "Thibodeau", "Varga",
]
US_CREDENTIALS = ["LCSW", "LMFT", "LPC", "PhD, Licensed Psychologist", "PsyD", "LMHC", "LPCC", "LCPC"]
CA_CREDENTIALS = ["RP", "RCC", "RSW", "C.Psych", "CCC", "RMFT", "MSW, RSW"]
US_INSURANCE = ["aetna", "bcbs", "cigna", "uhc", "kaiser", "medicare", "medicaid", "tricare", "humana"]
CA_INSURANCE = ["sun-life", "manulife", "canada-life", "green-shield", "blue-cross-canada"]
POPULAR_MODALITIES = {"eft": 5, "cbt": 6, "attachment-based": 4, "trauma-informed": 4, "relational": 3}
POPULAR_SPECIALTIES = {"depression": 8, "anxiety": 8, "insecure-attachment": 4, "relationship-issues": 4, "couples": 4}
STREETS = ["Maple", "Cedar", "King", "Queen", "Main", "Elm", "Harbour", "Lakeview", "Park", "Church", "Mill", "Oak"]
STREET_KINDS = ["Street", "Avenue", "Road", "Boulevard", "Lane"]
OPENINGS = [
    "{first} sees adults who feel stuck in the same painful patterns with the people closest to them.",
    "{first} works with individuals and couples who want steadier, more trusting relationships.",
    "{first} helps clients make sense of low mood, worry and the fear of being let down by others.",
    "{first} has spent years supporting people through depression, loneliness and hard transitions.",
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
    "New clients can book a free 15-minute consultation.",
    "Evening appointments are available.",
    "Couples and individuals welcome.",
    "",
]


@dataclass(frozen=True)
class Spot:
    """Where a generated listing is: a real postcode and its place."""

    postcode: str
    city: str
    region: str
    country: str
    lat: float
    lon: float


def _spot_from_place(place: Place) -> Spot:
    return Spot(place.postcode, place.name.rsplit(",", 1)[0], place.region, place.country, place.lat, place.lon)


class _SpotPicker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        us = [p for p in postcodes.us_places() if p.region in _MAINLAND_AND_HAWAII]
        fsas = [p for p in postcodes.fsa_places() if p.lat <= MAX_LATITUDE]
        self.anywhere = us + fsas
        self.metros = []
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
            self.weights.append(weight)
        self._codes: dict[str, list[tuple[str, str, float, float]]] = {}

    def pick(self) -> Spot:
        rng = self.rng
        if rng.random() < METRO_SHARE:
            near = rng.choices(self.metros, self.weights)[0]
            # Squaring the index crowds listings toward the metro centre, as practices are.
            place = near[int(len(near) * rng.random() ** 2)]
        else:
            place = rng.choice(self.anywhere)
        if place.country == "US":
            return _spot_from_place(place)
        codes = self._codes.get(place.postcode)
        if codes is None:
            codes = self._codes[place.postcode] = postcodes.codes_in_fsa(place.postcode)
        if not codes:
            return _spot_from_place(place)
        code, name, lat, lon = rng.choice(codes)
        if lat > MAX_LATITUDE:
            return _spot_from_place(place)
        return Spot(code, name, place.region, "CA", lat, lon)


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


def _bio(rng: random.Random, first: str, modalities: list[str], specialties: list[str]) -> str:
    """A listing's bio: four sentences drawn from the sample's phrases, after the line that says it is fictional."""
    return " ".join(filter(None, [
        "Fictional sample listing.",
        rng.choice(OPENINGS).format(first=first),
        rng.choice(METHODS).format(modalities=_names("modality", modalities)),
        rng.choice(FOCUS).format(specialties=_names("specialty", specialties).lower()),
        rng.choice(CLOSINGS),
    ]))


def generate(count: int, *, today: dt.date, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """Yield `count` fictional listings as dicts of Listing fields, confirmation dates counted back from `today`;
    the same (count, today, seed) gives the same data."""
    rng = random.Random(seed)
    spots = _SpotPicker(rng)
    modalities, specialties = vocabulary.slugs("modality"), vocabulary.slugs("specialty")
    languages = [s for s in vocabulary.slugs("language") if s not in ("english", "french")]
    for i in range(1, count + 1):
        spot = spots.pick()
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        name = f"{first} {last}"
        external_id = f"sample-{i:07d}"
        mods = _weighted_sample(rng, modalities, POPULAR_MODALITIES, rng.randint(1, 4))
        specs = _weighted_sample(rng, specialties, POPULAR_SPECIALTIES, rng.randint(2, 5))
        langs = ["french", "english"] if spot.region == "QC" else ["english"]
        if rng.random() < 0.25:
            langs.append(rng.choice(languages + ["french"] if spot.country == "CA" else languages))
        insurers = US_INSURANCE if spot.country == "US" else CA_INSURANCE
        in_person = rng.random() < 0.85
        telehealth = not in_person or rng.random() < 0.65
        fee_min = rng.randrange(80, 190, 10)
        own_coordinates = rng.random() < 0.5
        bio = _bio(rng, first, mods, specs)
        yield {
            "external_id": external_id,
            "slug": make_slug(name, spot.city, external_id),
            "name": name,
            "credentials": rng.choice(US_CREDENTIALS if spot.country == "US" else CA_CREDENTIALS),
            "license_number": f"{spot.region}-{rng.randrange(10000, 99999)}",
            "license_region": spot.region,
            "email": f"{first}.{last}.{i}@example.org".lower(),
            "phone": f"({rng.randrange(200, 989)}) 555-01{rng.randrange(0, 100):02d}",
            "website": f"https://example.org/therapists/{external_id}",
            "address": f"{rng.randrange(1, 2400)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}",
            "city": spot.city,
            "region": spot.region,
            "postcode": spot.postcode,
            "country": spot.country,
            "latitude": round(spot.lat + rng.uniform(-0.01, 0.01), 5) if own_coordinates else None,
            "longitude": round(spot.lon + rng.uniform(-0.01, 0.01), 5) if own_coordinates else None,
            "modalities": mods,
            "specialties": specs,
            "languages": langs,
            "insurance": rng.sample(insurers, rng.randint(0, 3)),
            "telehealth": telehealth,
            "in_person": in_person,
            "accepting_new_clients": rng.random() < 0.75,
            "availability_confirmed_on": _confirmed_on(rng, today),
            "fee_min": fee_min,
            "fee_max": fee_min + rng.randrange(0, 110, 10),
            "sliding_scale": rng.random() < 0.3,
            "gender": rng.choice(["woman", "man", "non-binary", ""]),
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
