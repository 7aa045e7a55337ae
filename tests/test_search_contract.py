"""The search contract, checked against a brute-force computation over every listing in the database.

Results, order, distances and facets of seeded and chosen searches, the 90-day window of an availability claim, the
radius, text and phrases, the ways out of an empty search, places, and availability's standing in either sort. The
world and the brute force are in search_oracle.py; the checks proper to the new filters (who it is for, gender, fees)
in test_search_contract_filters.py.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from geopy.distance import great_circle
from sqlalchemy import select

from directory.geo import Place
from directory.models import Listing
from directory.search import engine
import text_oracle
from helpers import SAMPLE_DAY
from search_oracle import Row, SEEDS, availability, brute_force, check_ways_out, fetch_all, random_params, standing


@pytest.mark.parametrize("seed", SEEDS)
def test_results_order_distances_and_facets_match_brute_force(
    seed: int, contract_client: FlaskClient, rows: list[Row]
) -> None:
    rng = random.Random(seed)
    params = random_params(rng, rows)
    expected, expected_facets = brute_force(rows, params)
    results, facets, total = fetch_all(contract_client, params)
    assert total == len(expected)
    assert results == expected
    assert len({r[0] for r in results}) == len(results), "a result appeared on two pages"
    assert facets == expected_facets


@pytest.mark.parametrize("seed", range(12))
def test_ordering_many_ties_by_name_rank_matches_brute_force(
    seed: int, contract_client: FlaskClient, rows: list[Row], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Big answers (national, no text: every key ties) are ordered by precomputed name ranks instead of comparing
    # names; forced here on the small sample so both orderings face the same brute force.
    monkeypatch.setattr(engine, "PYTHON_ORDERING", 0)
    rng = random.Random(seed)
    params = random_params(rng, rows) if seed % 2 else {"format": rng.choice(["any", "telehealth"]), "per_page": 50}
    expected, expected_facets = brute_force(rows, params)
    results, facets, total = fetch_all(contract_client, params)
    assert total == len(expected)
    assert results == expected
    assert facets == expected_facets


def test_the_seeded_mix_exercises_results_telehealth_and_empty_answers(contract_client: FlaskClient,
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
    {"age": ["teens"]},
    {"age": ["children", "older-adults"], "client_type": ["families"], "per_page": 100},
    {"client_type": ["couples", "groups"], "accepting": "1", "modality": ["eft"]},
    {"community": ["lgbtq-affirming", "trans-affirming"], "gender": ["non-binary", "woman"]},
    {"community": ["faith-christian"], "format": "telehealth", "language": ["spanish"], "per_page": 100},
    {"gender": ["man"], "specialty": ["depression"], "sort": "relevance"},
    {"max_fee": "120"},  # without an origin each listing in its own currency: both countries' listings
    {"max_fee": "0", "per_page": 100},  # only the free ones
    {"max_fee": "100000", "per_page": 100},  # everyone who gives a fee, nobody who does not
    {"sliding_scale": "1", "format": "telehealth"},
    {"max_fee": "150", "sliding_scale": "1", "age": ["adults"], "modality": ["cbt"], "accepting": "1"},
    {"max_fee": "99", "insurance": ["aetna", "sun-life"], "client_type": ["individuals"], "per_page": 100},
])
def test_national_filters_match_brute_force(params: dict[str, Any], contract_client: FlaskClient,
                                            rows: list[Row]) -> None:
    expected, expected_facets = brute_force(rows, params)
    results, facets, total = fetch_all(contract_client, params)
    assert results == expected
    assert facets == expected_facets


def test_a_claim_counts_for_90_days_from_its_confirmation_and_not_a_day_longer(
        contract_app: Flask, contract_client: FlaskClient, rows: list[Row]) -> None:
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
            contract_app.config["CLOCK"] = lambda today=today: today
            expected, expected_facets = brute_force(rows, {**near, "accepting": "1"}, today)
            results, facets, _ = fetch_all(contract_client, {**near, "accepting": "1"})
            assert results == expected and facets == expected_facets
            kept.append(row.external_id in [found for found, _ in results])
            if today < row.confirmed_on:
                shown = contract_client.get(f"/api/v1/therapists/{row.external_id}").get_json()
                assert shown["availability"] == "unconfirmed"
                profile = contract_client.get(shown["url"]).get_data(as_text=True)
                assert "Availability not confirmed (its date is in the future)" in profile
            body = contract_client.get("/api/v1/search", query_string=near).get_json()
            assert body["results"], "the search around the listing finds it at least"
            for result in body["results"]:
                listed = by_id[result["id"]]
                assert result["availability"] == availability(listed, today), result
                assert result["availability_confirmed_on"] == (listed.confirmed_on and listed.confirmed_on.isoformat())
    finally:
        contract_app.config["CLOCK"] = lambda: SAMPLE_DAY
    assert kept == [False, True, True, False, False]
    assert sum(1 for r in rows if availability(r, SAMPLE_DAY) == "unconfirmed") > 100  # the sample has stale claims


def test_radius_is_inclusive_on_the_reported_distance(contract_client: FlaskClient, rows: list[Row]) -> None:
    body = contract_client.get("/api/v1/search", query_string={
        "postcode": "10001", "radius": 5, "per_page": 100, "format": "in_person"}).get_json()
    farthest = body["results"][-1]["id"]
    row = next(r for r in rows if r.external_id == farthest)
    exact = great_circle((40.7484, -73.9967), (row.lat, row.lon)).miles
    body = contract_client.get("/api/v1/search", query_string={
        "postcode": "10001", "radius": repr(exact), "per_page": 100, "format": "in_person"}).get_json()
    assert body["results"][-1]["id"] == farthest
    body_less = contract_client.get("/api/v1/search", query_string={
        "postcode": "10001", "radius": repr(exact - 1e-9), "per_page": 100, "format": "in_person"}).get_json()
    assert farthest not in [r["id"] for r in body_less["results"]]


@pytest.mark.parametrize("q", [
    "depression", "self-esteem", '"low mood"', '"mood low"', '"fear of abandonment"', "insecure attachment",
    "emotionally-focused couples", '"attachment-based" teens', "Toronto grief", "depressive teen", "couple based",
])
def test_text_matches_brute_force_including_phrases(q: str, contract_app: Flask, contract_client: FlaskClient) -> None:
    # Brute force: each bare word somewhere in a published listing's words, each quoted or hyphenated chunk's words
    # side by side in its order, read by the test's own text oracle.
    with contract_app.app_context(), contract_app.extensions["db"]() as session:
        expected = {listing.external_id for listing in session.scalars(select(Listing).where(Listing.published))
                    if text_oracle.matches(q, listing)}
    results, _, total = fetch_all(contract_client, {"q": q, "per_page": 100})
    assert total == len(expected)
    assert {r[0] for r in results} == expected


def test_the_ways_out_of_an_empty_search_are_counted_as_the_brute_force_counts_them(
        contract_client: FlaskClient, rows: list[Row]) -> None:
    params = {"postcode": "10001", "radius": "5", "format": "in_person", "modality": ["eft"],
              "specialty": ["bipolar"], "language": ["korean"]}
    check_ways_out(contract_client, rows, params, {
        "without Emotionally Focused Therapy (EFT)": {"modality": []}, "without Bipolar disorder": {"specialty": []},
        "without Korean": {"language": []}}, at_least=2)


@pytest.mark.parametrize("location, extra", [
    ("Brooklyn, NY", {"radius": "10"}), ("Toronto", {}), ("st jerome", {"radius": "50", "format": "in_person"}),
    ("Queens", {"specialty": ["depression"], "radius": "5"}), ("Halifax NS", {"format": "telehealth"}),
    ("Springfield, IL", {"radius": "100", "accepting": "1"}), ("The Bronx", {"units": "km", "radius": "12.5"}),
])
def test_a_place_searches_exactly_as_its_point_given_as_coordinates(
        location: str, extra: dict[str, Any], contract_client: FlaskClient, rows: list[Row]) -> None:
    params = {"location": location, "per_page": 100, **extra}
    results, facets, total = fetch_all(contract_client, params)
    origin = contract_client.get("/api/v1/search", query_string=params).get_json()["origin"]
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
        search: dict[str, Any], sort: str, accepting: str | None, contract_client: FlaskClient,
        rows: list[Row]) -> None:
    params = {**search, "sort": sort, "per_page": 7, **({"accepting": accepting} if accepting else {})}
    results, facets, total = fetch_all(contract_client, params)
    response = contract_client.get("/api/v1/search", query_string=params).get_json()
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
        seed: int, contract_client: FlaskClient, rows: list[Row], monkeypatch: pytest.MonkeyPatch) -> None:
    # The NumPy ordering of big answers, forced on national answers in both sorts with and without accepting=1.
    monkeypatch.setattr(engine, "PYTHON_ORDERING", 0)
    params = {"sort": ["distance", "relevance"][seed % 2], "per_page": 50,
              "format": ["any", "telehealth", "in_person"][seed % 3], **({"accepting": "1"} if seed >= 3 else {})}
    expected, expected_facets = brute_force(rows, params)
    results, facets, total = fetch_all(contract_client, params)
    assert total == len(expected)
    assert results == expected
    assert facets == expected_facets


@pytest.mark.parametrize("sort", ["distance", "relevance"])
@pytest.mark.parametrize("search", [
    {"q": "attachment"}, {"q": "depression", "postcode": "10001"}, {"q": '"low mood"', "postcode": "11201"},
    # Not "couples" any more: alone, it names the client type couples, a filter (tests/test_filter_words.py).
    {"q": "consultation", "location": "Toronto", "radius": "100"},
])
def test_text_answers_come_accepting_first_then_by_relevance_or_distance(
        search: dict[str, Any], sort: str, contract_app: Flask, contract_client: FlaskClient, rows: list[Row]) -> None:
    # Relevance (BM25) is not recomputed here; what is: the matches (the text oracle within the brute force's
    # answer without text), that the standings come in order (and by distance, each group's distances), and that
    # within the accepting standing the order is the one accepting=1 gives, which ranks by relevance or distance
    # alone.
    params = {**search, "sort": sort, "per_page": 20}
    body = contract_client.get("/api/v1/search", query_string=params).get_json()
    origin = body["origin"]
    point = None if origin is None else Place("", origin["country"], origin["region"], origin["lat"], origin["lon"],
                                              origin["place"], "point")
    without_text, _ = brute_force(rows, {k: v for k, v in params.items() if k not in ("location", "q")}, origin=point)
    with contract_app.app_context(), contract_app.extensions["db"]() as session:
        found_by_text = {listing.external_id for listing in session.scalars(select(Listing).where(Listing.published))
                         if text_oracle.matches(search["q"], listing)}
    results, _, total = fetch_all(contract_client, params)
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
    accepting_only, _, _ = fetch_all(contract_client, {**params, "accepting": "1"})
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
