"""The sample-data generator and the commands that load it."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

from flask import Flask
from sqlalchemy import select

from directory.geo import postcodes
from directory.models import Listing
from directory.sample import generate
from directory.vocabulary import vocabulary

DAY = dt.date(2026, 12, 1)


def test_generator_is_deterministic_and_prefix_stable() -> None:
    assert list(generate(50, today=DAY)) == list(generate(50, today=DAY))
    assert list(generate(20, today=DAY)) == list(generate(50, today=DAY))[:20]
    assert list(generate(20, today=DAY, seed=1)) != list(generate(20, today=DAY))


def test_generated_listings_are_fictional_real_placed_and_varied() -> None:
    listings = list(generate(1000, today=DAY))
    assert all(row["bio"].startswith("Fictional sample listing.") and row["email"].endswith("@example.org")
               for row in listings)
    assert all("555-01" in row["phone"] for row in listings)
    assert len({row["external_id"] for row in listings}) == len({row["slug"] for row in listings}) == 1000
    for listing in listings:
        place = postcodes.lookup(listing["postcode"])
        assert place.country == listing["country"] and place.region == listing["region"]
    countries = Counter(row["country"] for row in listings)
    assert countries["US"] > 700 and countries["CA"] > 60
    assert len({row["region"] for row in listings}) > 30
    without_coordinates = sum(1 for row in listings if row["latitude"] is None)
    with_coordinates = sum(1 for row in listings if row["latitude"] is not None)
    assert without_coordinates > 300 < with_coordinates
    near_nyc = [row for row in listings if row["region"] in ("NY", "NJ")]
    assert len(near_nyc) > 80  # the densest metro gets its share
    assert sum(1 for row in listings if "eft" in row["modalities"]) > 150
    assert {row["telehealth"] or row["in_person"] for row in listings} == {True}


# The shares sample.py says it draws (rough directory figures), each checked within 4 points over 3,000 listings.
STATED_SHARES = {
    ("ages", "adults"): 0.90, ("ages", "young-adults"): 0.55, ("ages", "teens"): 0.35, ("ages", "children"): 0.15,
    ("ages", "older-adults"): 0.35, ("client_types", "individuals"): 0.95, ("client_types", "couples"): 0.35,
    ("client_types", "families"): 0.25, ("client_types", "groups"): 0.08,
    ("communities", "lgbtq-affirming"): 0.45, ("communities", "trans-affirming"): 0.25,
    ("communities", "bipoc-centered"): 0.15, ("communities", "veterans"): 0.10,
    ("communities", "neurodivergent-affirming"): 0.15, ("communities", "disability-affirming"): 0.10,
    ("communities", "immigrants-refugees"): 0.08,
}


def test_generated_listings_say_who_they_see_in_the_stated_shares() -> None:
    listings = list(generate(3000, today=DAY))
    for (column, slug), share in STATED_SHARES.items():
        seen = sum(1 for row in listings if slug in row[column]) / len(listings)
        assert abs(seen - share) < 0.04, (column, slug, seen)
    faiths = Counter(slug for row in listings for slug in row["communities"] if slug.startswith("faith-"))
    assert 0.07 < sum(faiths.values()) / len(listings) < 0.13
    assert faiths.most_common(1)[0][0] == "faith-christian" and len(faiths) == 6
    genders = Counter(row["gender"] for row in listings)
    assert 0.66 < genders["woman"] / 3000 < 0.74 and 0.18 < genders["man"] / 3000 < 0.26
    assert 0.015 < genders["non-binary"] / 3000 < 0.05 and genders[""] > 100
    unmapped = [row["gender_unmapped"] for row in listings if row["gender_unmapped"]]
    assert unmapped and all(not vocabulary.match("gender", text) for text in unmapped)
    assert all(not (row["gender"] and row["gender_unmapped"]) for row in listings)
    for row in listings:
        assert row["ages"] and row["client_types"]
        for column in ("modalities", "specialties", "languages", "insurance", "ages", "client_types", "communities"):
            assert len(set(row[column])) == len(row[column]), (column, row[column])  # each term once
        for column, kind in (("ages", "age"), ("client_types", "client_type"), ("communities", "community")):
            assert all(vocabulary.get(kind, slug) for slug in row[column]), row[column]
        # Who a therapist sees is no longer a specialty.
        assert not {"couples", "adolescents"} & set(row["specialties"])
        if "couples" in row["bio"].casefold():
            assert "couples" in row["client_types"], row["bio"]
        if " sees adults " in row["bio"]:
            assert "adults" in row["ages"], row["bio"]
        if "trans-affirming" in row["communities"]:
            assert "lgbtq-affirming" in row["communities"]
    no_fee = sum(1 for row in listings if row["fee_min"] is None and row["fee_max"] is None)
    assert 150 < no_fee < 450  # some profiles name no fee: never under a fee ceiling


# Regions with a single area code, written out here: their listings must carry it.
ONE_AREA_CODE = {"HI": "808", "AK": "907", "DC": "202", "ME": "207", "VT": "802", "MT": "406", "DE": "302",
                 "RI": "401", "NB": "506", "NL": "709", "WY": "307", "SD": "605", "ND": "701", "NH": "603"}


def test_generated_phones_are_fictional_numbers_with_local_area_codes() -> None:
    listings = list(generate(3000, today=DAY))
    area_codes: dict[str, set[str]] = {}
    for row in listings:
        area, rest = row["phone"][1:4], row["phone"][5:]
        assert row["phone"][0] == "(" and row["phone"][4] == ")" and rest.startswith(" 555-01"), row["phone"]
        area_codes.setdefault(row["country"], set()).add(area)
        if row["region"] in ONE_AREA_CODE:
            assert area == ONE_AREA_CODE[row["region"]], (row["region"], row["phone"])
        if row["region"] == "NY" and row["city"] == "New York":
            assert area in {"212", "646", "332", "917", "718", "347", "929"}, row["phone"]
    assert not area_codes["US"] & area_codes["CA"]  # the two countries' codes never overlap
    assert sum(1 for row in listings if row["region"] in ONE_AREA_CODE) > 50


def test_sample_load_command_fills_only_an_empty_database(empty_app: Flask) -> None:
    runner = empty_app.test_cli_runner()
    client = empty_app.test_client()
    result = runner.invoke(args=["sample", "load", "--count", "120"])
    assert result.exit_code == 0 and "Loaded 120 sample listings." in result.output
    published = sum(1 for row in generate(120, today=DAY) if row["published"])
    assert client.get("/api/v1/search").get_json()["total"] == published
    again = runner.invoke(args=["sample", "load", "--count", "120"])
    assert "already has listings" in again.output
    assert runner.invoke(args=["index", "check"]).exit_code == 0


def test_prepare_says_the_instance_is_ready_with_what_it_holds(empty_app: Flask) -> None:
    runner = empty_app.test_cli_runner()
    assert runner.invoke(args=["sample", "load", "--count", "30"]).exit_code == 0
    result = runner.invoke(args=["prepare"])
    assert result.exit_code == 0
    assert result.output == f"Ready: 30 listings in the database, indexed in {empty_app.config['INDEX_DIR']}.\n"


def test_listings_unmapped_genders_prints_each_with_the_text_as_written(app: Flask) -> None:
    with app.extensions["db"]() as session:
        marked = session.scalars(select(Listing).order_by(Listing.id).limit(2)).all()
        for listing, written in zip(marked, ("Two-Spirit", "Genderfluid, mostly"), strict=True):
            listing.gender, listing.gender_unmapped = "", written
        session.commit()
        expected = sorted((listing.name, listing.external_id, listing.gender_unmapped) for listing in session.scalars(
            select(Listing).where(Listing.gender_unmapped != "")))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["listings", "unmapped-genders"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert sorted((name, external_id, written) for external_id, name, written in rows) == expected
    assert f"{len(expected)} listings with a gender that names none of woman, man, non-binary" in result.stderr
    as_json = runner.invoke(args=["listings", "unmapped-genders", "--json"])
    assert as_json.exit_code == 0
    assert sorted((row["name"], row["external_id"], row["gender"]) for row in json.loads(as_json.stdout)) == expected
    assert {"gender": "Genderfluid, mostly", "external_id": marked[1].external_id, "name": marked[1].name} in \
        json.loads(as_json.stdout)
