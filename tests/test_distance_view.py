"""The distance view without a browser: each marker sits where the listing's true bearing and distance from the
searched place put it (computed here with vectors, not the app's formula), numbered as its card; online-only results
are counted, not drawn; the page asks no other host unless map tiles are configured, and then only that one."""

from __future__ import annotations

import html
import math
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from directory.geo import postcodes
from directory.models import Listing
from directory.web.security import tile_source

EARTH_MILES = 3958.8
CENTRE, OUTER = 160, 140  # the view's centre and the radius ring, in its units


def _vector(lat: float, lon: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lon)
    return math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)


def _expected(origin: tuple[float, float], point: tuple[float, float], radius: float) -> tuple[float, float]:
    """Where a point belongs on the view: its bearing from the east and north directions at the origin (3-D unit
    vectors), its distance from the angle between the two vectors."""
    o, t = _vector(*origin), _vector(*point)
    phi, lam = math.radians(origin[0]), math.radians(origin[1])
    east = (-math.sin(lam), math.cos(lam), 0.0)
    north = (-math.sin(phi) * math.cos(lam), -math.sin(phi) * math.sin(lam), math.cos(phi))

    def dot(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    angle = math.atan2(dot(t, east), dot(t, north))
    miles = EARTH_MILES * math.acos(max(-1.0, min(1.0, dot(o, t))))
    r = miles / radius * OUTER
    return CENTRE + r * math.sin(angle), CENTRE - r * math.cos(angle)


def _cards(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'<li class="card" id="listing-(\d+)"', page)]


def test_markers_sit_at_each_listings_bearing_and_distance_numbered_as_its_card(shared_client: FlaskClient,
                                                                                shared_app: Flask) -> None:
    checked_beyond = 0
    # (60614 within 5 miles, page 2: offices past the radius, listed for their online sessions.)
    for query in ({"location": "11201", "radius": "10"}, {"location": "10001", "radius": "25", "page": "2"},
                  {"location": "60614", "radius": "5"}, {"location": "60614", "radius": "5", "page": "2"}):
        page = shared_client.get("/", query_string=query).get_data(as_text=True)
        markers = re.findall(r'<a class="marker" href="[^"]*" aria-label="([^"]*)"[^>]*data-number="(\d+)">\s*'
                             r'<circle cx="([\d.]+)" cy="([\d.]+)"', page)
        cards = _cards(page)
        first = (int(query.get("page", "1")) - 1) * 20 + 1
        origin = postcodes.lookup(query["location"])
        with shared_app.app_context(), shared_app.extensions["db"]() as session:
            listings = [session.get(Listing, listing_id) for listing_id in cards]
            drawn, beyond = [], 0
            for number, listing in enumerate(listings, start=first):
                point = (listing.latitude, listing.longitude) if listing.latitude is not None else \
                    (postcodes.lookup(listing.postcode).lat, postcodes.lookup(listing.postcode).lon)
                x, y = _expected((origin.lat, origin.lon), point, float(query["radius"]))
                if listing.in_person and math.hypot(x - CENTRE, y - CENTRE) < OUTER + 0.5:
                    drawn.append((number, listing.name, x, y))
                elif listing.in_person:
                    beyond += 1
            online = sum(not listing.in_person for listing in listings)
        assert [int(number) for _, number, _, _ in markers] == [number for number, *_ in drawn], query
        for (label, _, cx, cy), (number, name, x, y) in zip(markers, drawn, strict=True):
            assert abs(float(cx) - x) <= 1 and abs(float(cy) - y) <= 1, (query, number, cx, cy, x, y)
            assert html.unescape(label).startswith(f"{number}. {name}, ")
        caption = re.search(r'<figcaption id="map-caption">(.*?)</figcaption>', page, re.S).group(1)
        assert (f"{len(markers)} therapist" in caption) if markers else "No therapist of this page" in caption
        assert (f"{online} online-only therapist" in caption) if online else "online-only" not in caption
        assert (f"{beyond} seen online from here" in caption) if beyond else "farther than" not in caption
        checked_beyond += beyond
    assert checked_beyond > 0  # the case of offices past the radius was met


def test_the_page_names_no_other_host_unless_tiles_are_configured(shared_client: FlaskClient,
                                                                  shared_app: Flask) -> None:
    response = shared_client.get("/", query_string={"location": "11201", "radius": "10"})
    page = response.get_data(as_text=True)
    # Nothing the page loads (scripts, images, styles) comes from elsewhere; links to therapists' sites are links.
    assert re.findall(r'(?:src="|<link[^>]*href=")(?:https?:)?//', page) == [] and "map.js" not in page
    assert "img-src 'self' data:;" in response.headers["Content-Security-Policy"]
    shared_app.config.update(MAP_TILE_URL="https://tiles.example.org/{z}/{x}/{y}.png", MAP_ATTRIBUTION="Test")
    try:
        response = shared_client.get("/", query_string={"location": "11201", "radius": "10"})
    finally:
        shared_app.config.update(MAP_TILE_URL="", MAP_ATTRIBUTION="")
    assert "img-src 'self' data: https://tiles.example.org;" in response.headers["Content-Security-Policy"]
    assert 'data-tiles="https://tiles.example.org/{z}/{x}/{y}.png"' in response.get_data(as_text=True)


def test_a_tile_url_that_could_not_go_into_the_policy_safely_is_refused() -> None:
    assert tile_source("https://{s}.tile.example.org/{z}/{x}/{y}.png") == "https://*.tile.example.org"
    assert tile_source("http://127.0.0.1:8080/{z}/{x}/{y}.png") == "http://127.0.0.1:8080"
    for bad in ("tiles.example.org/{z}/{x}/{y}.png", "https://a.org;script-src */{z}", "https://u:p@a.org/{z}",
                "ftp://a.org/{z}", "https://a.org/{z} x", "javascript:alert(1)"):
        with pytest.raises(ValueError, match="MAP_TILE_URL"):
            tile_source(bad)
