"""The search contract, checked against a brute-force computation over every listing in the database."""

from __future__ import annotations

import datetime as dt
import html
import random
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest
from flask import Flask
from flask.testing import FlaskClient
from geopy.distance import great_circle
from sqlalchemy import select

from directory.geo import Place, postcodes
from directory.models import Listing
from directory.search import engine
from directory.vocabulary import vocabulary
import text_oracle
from helpers import SAMPLE_DAY

KINDS = {"modality": "modalities", "specialty": "specialties", "language": "languages", "insurance": "insurance"}


@dataclass
class Row:
    """What the brute force needs of a listing, read straight from the database."""

    id: int
    external_id: str
    name: str
    published: bool
    lat: float
    lon: float
    terms: dict[str, set[str]]
    telehealth: bool
    in_person: bool
    accepting: bool
    confirmed_on: dt.date | None
    licence: str
    postcode: str


@pytest.fixture(scope="module")
def rows(shared_app: Flask) -> list[Row]:
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        result = []
        for listing in session.scalars(select(Listing).order_by(Listing.id)):  # random choices depend on order
            if listing.latitude is not None and listing.longitude is not None:
                lat, lon = listing.latitude, listing.longitude
            else:
                place = postcodes.lookup(listing.postcode)
                lat, lon = place.lat, place.lon
            result.append(Row(
                listing.id, listing.external_id, listing.name, listing.published, lat, lon,
                {kind: set(getattr(listing, attr)) for kind, attr in KINDS.items()},
                listing.telehealth, listing.in_person, listing.accepting_new_clients,
                listing.availability_confirmed_on, listing.license_region,
                listing.postcode,
            ))
        return result


def _availability(row: Row, today: dt.date) -> str:
    if row.confirmed_on is None or not today - dt.timedelta(days=90) <= row.confirmed_on <= today:
        return "unconfirmed"
    return "accepting" if row.accepting else "not_accepting"


STANDING = {"accepting": 0, "unconfirmed": 1, "not_accepting": 2}  # the contract's order within a group


def standing(row: Row, today: dt.date) -> int:
    """Where a listing's availability puts it in the order on the day `today`: confirmed accepting, then
    unconfirmed, then confirmed not accepting."""
    return STANDING[_availability(row, today)]


def brute_force(rows: list[Row], params: dict[str, Any], today: dt.date = SAMPLE_DAY, origin: Place | None = None
                ) -> tuple[list[tuple[str, float | None]], dict[str, dict[str, int]]]:
    """Every result (external id, rounded distance) in contract order, and the disjunctive facet counts of all four
    kinds, on the day `today` (an accepting claim counts when confirmed at most 90 days before it, and not after),
    from `origin` when given, else from the postcode. Without text every relevance is equal: by distance the order
    is in-person first (with format=any), then standing, distance, name, id; by relevance standing, distance,
    name, id."""
    oldest_counted = today - dt.timedelta(days=90)
    if origin is None:
        origin = postcodes.lookup(params["postcode"]) if params.get("postcode") else None
    fmt = params.get("format", "any")
    units = params.get("units") or ("km" if origin and origin.country == "CA" else "mi")
    radius = float(params.get("radius") or (40 if units == "km" else 25))

    def distance(row: Row) -> float:
        measured = great_circle((origin.lat, origin.lon), (row.lat, row.lon))
        return measured.km if units == "km" else measured.miles

    def base_match(row: Row) -> bool:
        if not row.published:
            return False
        if params.get("accepting") == "1" and not (
                row.accepting and row.confirmed_on and oldest_counted <= row.confirmed_on <= today):
            return False
        if origin is None:
            return fmt == "any" or (row.in_person if fmt == "in_person" else row.telehealth)
        in_person = fmt in ("any", "in_person") and row.in_person and distance(row) <= radius
        remote = fmt in ("any", "telehealth") and row.telehealth and row.licence == origin.region
        return in_person or remote

    def facet_ok(row: Row, kind: str) -> bool:
        return not params.get(kind) or bool(row.terms[kind] & set(params[kind]))

    base = [r for r in rows if base_match(r)]
    matched = [r for r in base if all(facet_ok(r, kind) for kind in KINDS)]
    if origin is not None:
        def online_only(row: Row) -> bool:  # with format=any, in-person matches come first
            return fmt == "any" and not (row.in_person and distance(row) <= radius)

        if params.get("sort", "distance") == "distance":
            matched.sort(key=lambda r: (online_only(r), standing(r, today), distance(r), r.name.casefold().encode(),
                                        r.id))
        else:
            matched.sort(key=lambda r: (standing(r, today), distance(r), r.name.casefold().encode(), r.id))
        results = [(r.external_id, round(distance(r), 1)) for r in matched]
    else:
        matched.sort(key=lambda r: (standing(r, today), r.name.casefold().encode(), r.id))
        results = [(r.external_id, None) for r in matched]
    facets = {}
    for kind in KINDS:
        pool = [r for r in base if all(facet_ok(r, other) for other in KINDS if other != kind)]
        facets[kind] = {slug: sum(1 for r in pool if slug in r.terms[kind]) for slug in vocabulary.slugs(kind)}
    return results, facets


def fetch_all(client: FlaskClient, params: dict[str, Any]) -> tuple[list[tuple[str, float | None]], dict, int]:
    """Page through the API; returns every result, the facets of page 1, and the reported total."""
    per_page = params.get("per_page", 20)
    page, results, facets, total = 1, [], None, None
    while True:
        response = client.get("/api/v1/search", query_string={**params, "page": page})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        facets = facets or body["facets"]
        total = body["total"] if total is None else total
        assert body["total"] == total
        results += [(r["id"], r["distance"]) for r in body["results"]]
        if page * per_page >= total:
            return results, facets, total
        assert len(body["results"]) == per_page
        page += 1


def random_params(rng: random.Random, rows: list[Row]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    # A listing's own postcode (in any accepted spelling) or a rural one, so most combinations have results.
    postcode = rng.choice(rows).postcode if rng.random() < 0.8 else rng.choice(["59601", "05401", "S4P 3Y2", "99501"])
    params["postcode"] = rng.choice([postcode, postcode.lower().replace(" ", ""), f" {postcode} "])
    radius = rng.choice([None, 5, 10, 25, 50, 100, round(rng.uniform(1, 500), 2)])
    if radius is not None:
        params["radius"] = radius
    if rng.random() < 0.3:
        params["units"] = rng.choice(["mi", "km"])
    for kind in ("modality", "specialty", "language", "insurance"):
        if rng.random() < {"modality": 0.4, "specialty": 0.4, "language": 0.1, "insurance": 0.1}[kind]:
            params[kind] = rng.sample(vocabulary.slugs(kind), rng.randint(1, 3))
    if rng.random() < 0.25:
        params["accepting"] = "1"
    params["format"] = rng.choice(["any", "any", "in_person", "telehealth"])
    params["per_page"] = rng.choice([5, 7, 20, 50])
    if rng.random() < 0.3:  # drawn last, so the earlier draws of each seed stay what they were
        params["sort"] = rng.choice(["distance", "relevance"])
    return params


SEEDS = range(36)


@pytest.mark.parametrize("seed", SEEDS)
def test_results_order_distances_and_facets_match_brute_force(
    seed: int, shared_client: FlaskClient, rows: list[Row]
) -> None:
    rng = random.Random(seed)
    params = random_params(rng, rows)
    expected, expected_facets = brute_force(rows, params)
    results, facets, total = fetch_all(shared_client, params)
    assert total == len(expected)
    assert results == expected
    assert len({r[0] for r in results}) == len(results), "a result appeared on two pages"
    assert facets == expected_facets


@pytest.mark.parametrize("seed", range(12))
def test_ordering_many_ties_by_name_rank_matches_brute_force(
    seed: int, shared_client: FlaskClient, rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Big answers (national, no text: every key ties) are ordered by precomputed name ranks instead of comparing
    # names; forced here on the small sample so both orderings face the same brute force.
    monkeypatch.setattr(engine, "PYTHON_ORDERING", 0)
    rng = random.Random(seed)
    params = random_params(rng, rows) if seed % 2 else {"format": rng.choice(["any", "telehealth"]), "per_page": 50}
    expected, expected_facets = brute_force(rows, params)
    results, facets, total = fetch_all(shared_client, params)
    assert total == len(expected)
    assert results == expected
    assert facets == expected_facets


def test_the_seeded_mix_exercises_results_telehealth_and_empty_answers(shared_client: FlaskClient,
                                                                       rows: list[Row]) -> None:
    pages = []
    remote_only = 0
    for seed in SEEDS:
        params = random_params(random.Random(seed), rows)
        expected, _ = brute_force(rows, params)
        pages.append(-(-len(expected) // params["per_page"]))
        if params["format"] == "telehealth" and expected:
            remote_only += 1
    assert sum(1 for n in pages if n > 1) >= 10, "too few multi-page answers"
    assert sum(1 for n in pages if n > 3) >= 3, "too few long answers"
    assert sum(1 for n in pages if n == 0) >= 3, "the empty answer is not exercised"
    assert remote_only >= 2, "telehealth-only answers are not exercised"


@pytest.mark.parametrize("params", [
    {"modality": ["eft"]},
    {"specialty": ["depression", "insecure-attachment"], "accepting": "1"},
    {"format": "telehealth", "language": ["spanish"]},
    {"format": "in_person", "insurance": ["aetna", "sun-life"], "per_page": 100},
])
def test_national_filters_match_brute_force(params: dict[str, Any], shared_client: FlaskClient,
                                            rows: list[Row]) -> None:
    expected, expected_facets = brute_force(rows, params)
    results, facets, total = fetch_all(shared_client, params)
    assert results == expected
    assert facets == expected_facets


def test_a_claim_counts_for_90_days_from_its_confirmation_and_not_a_day_longer(
        shared_app: Flask, shared_client: FlaskClient, rows: list[Row]) -> None:
    # The clock fixed on the days around one listing's boundary and long after: the filter, the facets and each
    # result's `availability` against the brute force run on the same day.
    row = next(r for r in rows if r.published and r.accepting and r.confirmed_on and r.in_person)
    by_id = {r.external_id: r for r in rows}
    boundary = row.confirmed_on + dt.timedelta(days=90)
    # Also the day before its confirmation: a date after today is a typing error, not a claim.
    days = [row.confirmed_on - dt.timedelta(days=1), boundary - dt.timedelta(days=1), boundary,
            boundary + dt.timedelta(days=1), SAMPLE_DAY + dt.timedelta(days=400)]
    near = {"postcode": row.postcode, "radius": 5, "format": "in_person", "per_page": 100}
    kept = []
    try:
        for today in days:
            shared_app.config["CLOCK"] = lambda today=today: today
            expected, expected_facets = brute_force(rows, {**near, "accepting": "1"}, today)
            results, facets, _ = fetch_all(shared_client, {**near, "accepting": "1"})
            assert results == expected and facets == expected_facets
            kept.append(row.external_id in [found for found, _ in results])
            if today < row.confirmed_on:
                shown = shared_client.get(f"/api/v1/therapists/{row.external_id}").get_json()
                assert shown["availability"] == "unconfirmed"
                profile = shared_client.get(shown["url"]).get_data(as_text=True)
                assert "Availability not confirmed (its date is in the future)" in profile
            body = shared_client.get("/api/v1/search", query_string=near).get_json()
            assert body["results"], "the search around the listing finds it at least"
            for result in body["results"]:
                listed = by_id[result["id"]]
                assert result["availability"] == _availability(listed, today), result
                assert result["availability_confirmed_on"] == (listed.confirmed_on and listed.confirmed_on.isoformat())
    finally:
        shared_app.config["CLOCK"] = lambda: SAMPLE_DAY
    assert kept == [False, True, True, False, False]
    assert sum(1 for r in rows if _availability(r, SAMPLE_DAY) == "unconfirmed") > 100  # the sample has stale claims


def test_radius_is_inclusive_on_the_reported_distance(shared_client: FlaskClient, rows: list[Row]) -> None:
    body = shared_client.get("/api/v1/search", query_string={
        "postcode": "10001", "radius": 5, "per_page": 100, "format": "in_person"}).get_json()
    farthest = body["results"][-1]["id"]
    row = next(r for r in rows if r.external_id == farthest)
    exact = great_circle((40.7484, -73.9967), (row.lat, row.lon)).miles
    body = shared_client.get("/api/v1/search", query_string={
        "postcode": "10001", "radius": repr(exact), "per_page": 100, "format": "in_person"}).get_json()
    assert body["results"][-1]["id"] == farthest
    body_less = shared_client.get("/api/v1/search", query_string={
        "postcode": "10001", "radius": repr(exact - 1e-9), "per_page": 100, "format": "in_person"}).get_json()
    assert farthest not in [r["id"] for r in body_less["results"]]


@pytest.mark.parametrize("q", [
    "depression", "self-esteem", '"low mood"', '"mood low"', '"fear of abandonment"', "insecure attachment",
    "emotionally-focused couples", '"attachment-based" teens', "Toronto grief", "depressive teen", "couple based",
])
def test_text_matches_brute_force_including_phrases(q: str, shared_app: Flask, shared_client: FlaskClient) -> None:
    # Brute force: each bare word somewhere in a published listing's words, each quoted or hyphenated chunk's words
    # side by side in its order, read by the test's own text oracle.
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        expected = {listing.external_id for listing in session.scalars(select(Listing).where(Listing.published))
                    if text_oracle.matches(q, listing)}
    results, _, total = fetch_all(shared_client, {"q": q, "per_page": 100})
    assert total == len(expected)
    assert {r[0] for r in results} == expected


def test_the_ways_out_of_an_empty_search_are_counted_as_the_brute_force_counts_them(
        shared_client: FlaskClient, rows: list[Row]) -> None:
    # Each offered change (a wider radius, one filter removed) is run by the brute force on the changed parameters.
    params = {"postcode": "10001", "radius": "5", "format": "in_person", "modality": ["eft"],
              "specialty": ["bipolar"], "language": ["korean"]}
    assert brute_force(rows, params)[0] == []
    page = shared_client.get("/", query_string=params).get_data(as_text=True)
    offered = re.findall(r'<li><a href="/\?([^"]+)">(\d+) ([^<]+)</a></li>', page.split('class="dead-end"')[1])
    expected = {}
    for radius in ("10", "25"):
        expected[f"within {radius} miles"] = len(brute_force(rows, {**params, "radius": radius})[0])
    expected["in person or online"] = len(brute_force(rows, {**params, "format": "any"})[0])
    for kind, names in (("modality", "Emotionally Focused Therapy (EFT)"), ("specialty", "Bipolar disorder"),
                        ("language", "Korean")):
        expected[f"without {names}"] = len(brute_force(rows, {**params, kind: []})[0])
    assert len(offered) >= 2 and {label: int(count) for _, count, label in offered} == {
        label: count for label, count in expected.items() if count}
    for query, count, _ in offered:  # and each link opens a search finding that many
        linked = parse_qs(html.unescape(query))
        assert shared_client.get("/api/v1/search", query_string=linked).get_json()["total"] == int(count)


@pytest.mark.parametrize("location, extra", [
    ("Brooklyn, NY", {"radius": "10"}), ("Toronto", {}), ("st jerome", {"radius": "50", "format": "in_person"}),
    ("Queens", {"specialty": ["depression"], "radius": "5"}), ("Halifax NS", {"format": "telehealth"}),
    ("Springfield, IL", {"radius": "100", "accepting": "1"}), ("The Bronx", {"units": "km", "radius": "12.5"}),
])
def test_a_place_searches_exactly_as_its_point_given_as_coordinates(
        location: str, extra: dict[str, Any], shared_client: FlaskClient, rows: list[Row]) -> None:
    params = {"location": location, "per_page": 100, **extra}
    results, facets, total = fetch_all(shared_client, params)
    origin = shared_client.get("/api/v1/search", query_string=params).get_json()["origin"]
    point = Place("", origin["country"], origin["region"], origin["lat"], origin["lon"], origin["place"], "point")
    expected, expected_facets = brute_force(rows, {k: v for k, v in params.items() if k != "location"}, origin=point)
    assert total == len(expected) and total > 0
    assert results == expected
    assert facets == expected_facets


NEWCOMER = {"postcode": "10001", "modality": ["eft", "attachment-based"], "specialty": ["depression"]}


@pytest.mark.parametrize("accepting", [None, "1"])
@pytest.mark.parametrize("sort", ["distance", "relevance"])
@pytest.mark.parametrize("search", [
    NEWCOMER, {"location": "Toronto"}, {"location": "st jerome", "radius": "50"},
    {"postcode": "10001", "format": "in_person", "radius": "10"}, {"specialty": ["depression"]},
])
def test_accepting_listings_come_first_in_either_sort_as_the_brute_force_orders_them(
        search: dict[str, Any], sort: str, accepting: str | None, shared_client: FlaskClient, rows: list[Row]) -> None:
    params = {**search, "sort": sort, "per_page": 7, **({"accepting": accepting} if accepting else {})}
    results, facets, total = fetch_all(shared_client, params)
    response = shared_client.get("/api/v1/search", query_string=params).get_json()
    origin = response["origin"]
    point = None if origin is None else Place("", origin["country"], origin["region"], origin["lat"], origin["lon"],
                                              origin["place"], "point")
    expected, expected_facets = brute_force(rows, {k: v for k, v in params.items() if k != "location"}, origin=point)
    assert total == len(expected) > 0
    assert results == expected
    assert facets == expected_facets
    if not accepting:  # every standing is met, and the first result is one who can take someone
        by_id = {r.external_id: r for r in rows}
        assert {standing(by_id[found], SAMPLE_DAY) for found, _ in results} == {0, 1, 2}
        assert response["results"][0]["availability"] == "accepting"


@pytest.mark.parametrize("seed", range(6))
def test_the_standing_order_by_name_ranks_matches_brute_force(
        seed: int, shared_client: FlaskClient, rows: list[Row], monkeypatch: pytest.MonkeyPatch) -> None:
    # The NumPy ordering of big answers, forced on national answers in both sorts with and without accepting=1.
    monkeypatch.setattr(engine, "PYTHON_ORDERING", 0)
    params = {"sort": ["distance", "relevance"][seed % 2], "per_page": 50,
              "format": ["any", "telehealth", "in_person"][seed % 3], **({"accepting": "1"} if seed >= 3 else {})}
    expected, expected_facets = brute_force(rows, params)
    results, facets, total = fetch_all(shared_client, params)
    assert total == len(expected)
    assert results == expected
    assert facets == expected_facets


@pytest.mark.parametrize("sort", ["distance", "relevance"])
@pytest.mark.parametrize("search", [
    {"q": "attachment"}, {"q": "depression", "postcode": "10001"}, {"q": '"low mood"', "postcode": "11201"},
    {"q": "couples", "location": "Toronto", "radius": "100"},
])
def test_text_answers_come_accepting_first_then_by_relevance_or_distance(
        search: dict[str, Any], sort: str, shared_app: Flask, shared_client: FlaskClient, rows: list[Row]) -> None:
    # Relevance (BM25) is not recomputed here; what is: the matches (the text oracle within the brute force's
    # answer without text), that the standings come in order (and by distance, each group's distances), and that
    # within the accepting standing the order is the one accepting=1 gives, which ranks by relevance or distance
    # alone.
    params = {**search, "sort": sort, "per_page": 20}
    body = shared_client.get("/api/v1/search", query_string=params).get_json()
    origin = body["origin"]
    point = None if origin is None else Place("", origin["country"], origin["region"], origin["lat"], origin["lon"],
                                              origin["place"], "point")
    without_text, _ = brute_force(rows, {k: v for k, v in params.items() if k not in ("location", "q")}, origin=point)
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        found_by_text = {listing.external_id for listing in session.scalars(select(Listing).where(Listing.published))
                         if text_oracle.matches(search["q"], listing)}
    results, _, total = fetch_all(shared_client, params)
    assert total == len(results) > 0
    assert [found for found, _ in results if found in found_by_text] == [found for found, _ in results]
    assert {found for found, _ in results} == {found for found, _ in without_text if found in found_by_text}
    by_id = {r.external_id: r for r in rows}
    standings = [standing(by_id[found], SAMPLE_DAY) for found, _ in results]
    if sort == "distance" and point is not None:
        def away(row: Row) -> float:
            measured = great_circle((point.lat, point.lon), (row.lat, row.lon))
            return measured.km if body["units"] == "km" else measured.miles

        # In person within the radius first, then online only; in each, by standing, then nearest first.
        keys = [(not (by_id[found].in_person and away(by_id[found]) <= body["radius"]), rank, away(by_id[found]))
                for (found, _), rank in zip(results, standings, strict=True)]
        assert keys == sorted(keys)
    else:
        assert standings == sorted(standings)
    assert set(standings) == {0, 1, 2}
    accepting_only, _, _ = fetch_all(shared_client, {**params, "accepting": "1"})
    assert [result for result, rank in zip(results, standings, strict=True) if rank == 0] == accepting_only


def test_a_weaker_match_taking_clients_comes_before_a_stronger_one_that_cannot(client: FlaskClient,
                                                                             app: Flask) -> None:
    # Three listings at one place: the strongest text match confirmed not accepting, the middle one never
    # confirmed, the weakest confirmed accepting. By relevance or by distance, standing comes first.
    with app.app_context(), app.extensions["db"]() as session:
        for external_id, bio, accepting, confirmed_on in (
                ("t-strong", "Kintsugi, kintsugi and kintsugi.", False, SAMPLE_DAY),
                ("t-middle", "Kintsugi and kintsugi.", True, None),
                ("t-weak", "Some kintsugi metaphors.", True, SAMPLE_DAY - dt.timedelta(days=3))):
            session.add(Listing(external_id=external_id, slug=external_id, name="Same Name", country="US",
                                postcode="59601", bio=bio, in_person=True, accepting_new_clients=accepting,
                                availability_confirmed_on=confirmed_on))
        session.commit()
    for params in ({"q": "kintsugi"}, {"q": "kintsugi", "postcode": "59601", "sort": "relevance"},
                   {"q": "kintsugi", "postcode": "59601"}):
        body = client.get("/api/v1/search", query_string=params).get_json()
        assert [r["id"] for r in body["results"]] == ["t-weak", "t-middle", "t-strong"], params
        assert [r["availability"] for r in body["results"]] == ["accepting", "unconfirmed", "not_accepting"]
    body = client.get("/api/v1/search", query_string={"q": "kintsugi", "accepting": "1"}).get_json()
    assert [r["id"] for r in body["results"]] == ["t-weak"]
