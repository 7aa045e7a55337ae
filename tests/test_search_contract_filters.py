"""The search contract's new filters (who it is for, communities, gender, fees), checked against the brute force.

Ages, client types, communities, gender, a fee ceiling and the sliding scale, against search_oracle.py's brute force:
the world holding every case they decide, the ways out they offer, fee ceilings by a border and on each kind of fee,
genders that name no term, and text with them.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from directory.geo import Place
from directory.models import Listing
from directory.vocabulary import vocabulary
import text_oracle
from search_oracle import (
    AGES, BORDER_CITIES, CLIENT_TYPES, COMMUNITIES, GENDERS, SEEDS, UNMAPPED_GENDERS, Row, brute_force, check_ways_out,
    fetch_all, lowest_fee, random_params,
)


def test_the_world_holds_every_case_the_new_filters_decide(rows: list[Row]) -> None:
    # The terms the world draws are the vocabulary's (one renamed there would otherwise be a filter nobody matches).
    assert (vocabulary.slugs("age"), vocabulary.slugs("client_type"), vocabulary.slugs("community"),
            vocabulary.slugs("gender")) == (AGES, CLIENT_TYPES, COMMUNITIES, GENDERS)
    published = [r for r in rows if r.published]
    assert sum(1 for r in published if r.fee_min is None and r.fee_max is None) > 100
    assert sum(1 for r in published if r.fee_min is None and r.fee_max is not None) > 100
    assert sum(1 for r in published if r.fee_min == 0) > 10
    assert sum(1 for r in published if r.gender_unmapped) > 100
    assert all(not r.terms["gender"] for r in rows if r.gender_unmapped)
    assert {r.country for r in rows if r.external_id.startswith("border-")} == {"US", "CA"}


def test_the_seeded_mix_exercises_every_new_filter_with_results(rows: list[Row]) -> None:
    answered: dict[str, int] = {}
    for seed in SEEDS:
        params = random_params(random.Random(seed), rows)
        if brute_force(rows, params)[0]:
            for name in ("age", "client_type", "community", "gender", "max_fee", "sliding_scale"):
                answered[name] = answered.get(name, 0) + (name in params)
            border = params["postcode"] in BORDER_CITIES
            answered["max_fee by a border"] = answered.get("max_fee by a border", 0) + (border and "max_fee" in params)
    assert min(answered.values()) >= 2 and len(answered) == 7, answered


def test_the_ways_out_of_an_empty_search_by_the_new_filters_are_counted_as_the_brute_force_counts_them(
        contract_client: FlaskClient, rows: list[Row]) -> None:
    # A fee ceiling, the sliding scale and a filter of a new kind to remove.
    params = {"postcode": "10001", "radius": "5", "format": "in_person", "max_fee": "70", "sliding_scale": "1",
              "client_type": ["groups"]}
    check_ways_out(contract_client, rows, params, {
        "at any fee (not only up to $70)": {"max_fee": None},
        "without “offers a sliding scale”": {"sliding_scale": "0"}, "without Groups": {"client_type": []}},
        at_least=3)


def _origin_of(body: dict[str, Any]) -> Place | None:
    origin = body["origin"]
    return None if origin is None else Place("", origin["country"], origin["region"], origin["lat"], origin["lon"],
                                             origin["place"], "point")


@pytest.mark.parametrize("search", [
    {"postcode": "48226"}, {"postcode": "48226", "max_fee": "150"},
    {"postcode": "48226", "max_fee": "100000", "format": "in_person", "sort": "relevance"},
    {"postcode": "N9A 1A1"}, {"postcode": "N9A 1A1", "max_fee": "150", "units": "mi", "radius": "25"},
    {"postcode": "14202", "radius": "30"}, {"postcode": "14202", "radius": "30", "max_fee": "200", "age": ["adults"]},
    {"location": "Niagara Falls, ON", "radius": "50", "max_fee": "180", "sliding_scale": "1"},
    {"location": "Windsor, ON", "max_fee": "160", "client_type": ["individuals", "couples"]},
])
def test_a_fee_ceiling_by_a_border_keeps_only_the_searchers_country(
        search: dict[str, Any], contract_client: FlaskClient, rows: list[Row]) -> None:
    # A ceiling is in the currency of the search's country, so across the border nobody is under it, however low
    # their fee; without one, the other side's therapists within the radius are found like any others.
    params = {**search, "per_page": 50}
    results, facets, total = fetch_all(contract_client, params)
    point = _origin_of(contract_client.get("/api/v1/search", query_string=params).get_json())
    assert point is not None
    expected, expected_facets = brute_force(rows, {k: v for k, v in params.items() if k != "location"}, origin=point)
    assert total == len(expected) > 0
    assert results == expected
    assert facets == expected_facets
    by_id = {r.external_id: r for r in rows}
    countries = {by_id[found].country for found, _ in results}
    if "max_fee" in params:
        assert countries == {point.country}
        assert all((fee := lowest_fee(by_id[found])) is not None and fee <= int(params["max_fee"])
                   for found, _ in results)
    else:
        assert countries == {"US", "CA"}, "the other side of the border is within the radius"


def test_without_a_place_a_fee_ceiling_reads_each_listing_in_its_own_currency(contract_client: FlaskClient,
                                                                              rows: list[Row]) -> None:
    results, _, _ = fetch_all(contract_client, {"max_fee": "120", "per_page": 100})
    by_id = {r.external_id: r for r in rows}
    assert {by_id[found].country for found, _ in results} == {"US", "CA"}
    everyone = {r.external_id for r in rows if r.published and (fee := lowest_fee(r)) is not None and fee <= 120}
    assert {found for found, _ in results} == everyone


@pytest.mark.parametrize("case", ["both fees", "only fee_max", "only fee_min", "free"])
def test_a_fee_ceiling_on_the_lowest_fee_keeps_it_and_a_dollar_under_drops_it(
        case: str, contract_client: FlaskClient, rows: list[Row]) -> None:
    def fits(row: Row) -> bool:
        return {"both fees": row.fee_min is not None and row.fee_max is not None and 0 < row.fee_min < row.fee_max,
                "only fee_max": row.fee_min is None and row.fee_max is not None,
                "only fee_min": row.fee_min is not None and row.fee_min > 0 and row.fee_max is None,
                "free": row.fee_min == 0}[case]

    row = next(r for r in rows if r.published and r.in_person and fits(r) and r.postcode)
    fee = row.fee_min if row.fee_min is not None else row.fee_max
    assert fee is not None
    near = {"postcode": row.postcode, "radius": 1, "format": "in_person", "per_page": 100}
    for ceiling, kept in ((fee, True), (fee + 1, True), (fee - 1, False)):
        if ceiling < 0:
            continue
        params = {**near, "max_fee": str(ceiling)}
        results, facets, _ = fetch_all(contract_client, params)
        assert (row.external_id in [found for found, _ in results]) is kept, (case, ceiling)
        assert (results, facets) == brute_force(rows, params)
    if case == "both fees":  # between the two fees is at or over the lowest: kept
        params = {**near, "max_fee": str(row.fee_max - 1)}
        assert row.external_id in [found for found, _ in fetch_all(contract_client, params)[0]]


def test_a_listing_that_gives_no_fee_is_under_no_ceiling(contract_client: FlaskClient, rows: list[Row]) -> None:
    row = next(r for r in rows if r.published and r.in_person and r.fee_min is None and r.fee_max is None)
    near = {"postcode": row.postcode, "radius": 1, "format": "in_person", "per_page": 100}
    assert row.external_id in [found for found, _ in fetch_all(contract_client, near)[0]]
    for ceiling in ("0", "150", "100000"):
        results, _, _ = fetch_all(contract_client, {**near, "max_fee": ceiling})
        assert row.external_id not in [found for found, _ in results]
    national, _, total = fetch_all(contract_client, {"max_fee": "100000", "per_page": 100})
    assert total == sum(1 for r in rows if r.published and lowest_fee(r) is not None)


def test_a_gender_written_as_no_term_is_never_a_gender_filters_match(contract_client: FlaskClient,
                                                                     rows: list[Row]) -> None:
    unmapped = [r for r in rows if r.published and r.gender_unmapped]
    assert {r.gender_unmapped for r in unmapped} == set(UNMAPPED_GENDERS)
    everyone, facets, total = fetch_all(contract_client, {"per_page": 100})
    found = {external_id for external_id, _ in everyone}
    assert {r.external_id for r in unmapped} <= found
    # Each gender counts its own listings; those who said none, or one that is no term, are in no count.
    assert facets["gender"] == {slug: sum(1 for r in rows if r.published and r.terms["gender"] == {slug})
                                for slug in GENDERS}
    assert sum(facets["gender"].values()) == total - sum(1 for r in rows if r.published and not r.terms["gender"])
    chosen, _, _ = fetch_all(contract_client, {"gender": GENDERS, "per_page": 100})
    assert not {external_id for external_id, _ in chosen} & {r.external_id for r in unmapped}
    assert len(chosen) == sum(facets["gender"].values())


@pytest.mark.parametrize("search", [
    {"q": "depression", "age": ["adults", "young-adults"], "max_fee": "150"},
    {"q": "consultation", "postcode": "10001", "community": ["lgbtq-affirming"], "sliding_scale": "1"},
    {"q": '"low mood"', "postcode": "60602", "gender": ["woman"], "client_type": ["individuals"]},
    {"q": "attachment", "location": "Detroit, MI", "max_fee": "200", "accepting": "1"},
])
def test_text_and_the_new_filters_together_find_what_each_finds(
        search: dict[str, Any], contract_app: Flask, contract_client: FlaskClient, rows: list[Row]) -> None:
    params = {**search, "per_page": 20}
    body = contract_client.get("/api/v1/search", query_string=params).get_json()
    assert body["filter_offers"] == []  # the words name no filter: they are searched as words
    with contract_app.app_context(), contract_app.extensions["db"]() as session:
        found_by_text = {listing.external_id for listing in session.scalars(select(Listing).where(Listing.published))
                         if text_oracle.matches(search["q"], listing)}
    # The brute force over the listings the words find: its answer as a set (relevance is not recomputed), and
    # its facet counts exactly.
    expected, expected_facets = brute_force([r for r in rows if r.external_id in found_by_text],
                                            {k: v for k, v in params.items() if k not in ("location", "q")},
                                            origin=_origin_of(body))
    results, facets, total = fetch_all(contract_client, params)
    assert {found for found, _ in results} == {found for found, _ in expected}
    assert total == len(results) > 0
    assert facets == expected_facets
