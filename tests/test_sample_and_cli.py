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
    assert all(l["bio"].startswith("Fictional sample listing.") and l["email"].endswith("@example.org") for l in listings)
    assert all("555-01" in l["phone"] for l in listings)
    assert len({l["external_id"] for l in listings}) == len({l["slug"] for l in listings}) == 1000
    for listing in listings:
        place = postcodes.lookup(listing["postcode"])
        assert place.country == listing["country"] and place.region == listing["region"]
    countries = Counter(l["country"] for l in listings)
    assert countries["US"] > 700 and countries["CA"] > 60
    assert len({l["region"] for l in listings}) > 30
    assert sum(1 for l in listings if l["latitude"] is None) > 300 < sum(1 for l in listings if l["latitude"] is not None)
    near_nyc = [l for l in listings if l["region"] in ("NY", "NJ")]
    assert len(near_nyc) > 80  # the densest metro gets its share
    assert sum(1 for l in listings if "eft" in l["modalities"]) > 150
    assert {l["telehealth"] or l["in_person"] for l in listings} == {True}


def test_sample_load_command_fills_only_an_empty_database(empty_app: Flask) -> None:
    runner = empty_app.test_cli_runner()
    client = empty_app.test_client()
    result = runner.invoke(args=["sample", "load", "--count", "120"])
    assert result.exit_code == 0 and "Loaded 120 sample listings." in result.output
    published = sum(1 for l in generate(120, today=DAY) if l["published"])
    assert client.get("/api/v1/search").get_json()["total"] == published
    again = runner.invoke(args=["sample", "load", "--count", "120"])
    assert "already has listings" in again.output
    assert runner.invoke(args=["index", "check"]).exit_code == 0
