"""The sample-data generator and the commands that load it."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from flask import Flask

from directory.geo import postcodes
from directory.sample import generate

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
