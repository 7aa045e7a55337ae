"""The edges of every request (issue 25): OPTIONS is refused like any method a path does not take, and the format
characters pasted text carries (zero-width spaces and joiners, direction marks, soft hyphens) are ignored wherever
they stand in a location, a postcode or the keywords."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from directory.geo import POSTCODE_PATTERN

ZWSP, ZWJ, RLM, LRM, SHY, BOM = "\u200b", "\u200d", "\u200f", "\u200e", "\u00ad", "\ufeff"


@pytest.mark.parametrize(("path", "allow"), [
    ("/", "GET, HEAD"), ("/api/v1/search", "GET, HEAD"), ("/api/v1/vocabulary", "GET, HEAD"),
    ("/static/style.css", "GET, HEAD"), ("/admin/login", "GET, HEAD, POST"),
])
def test_options_is_refused_with_the_methods_the_path_takes(shared_client: FlaskClient, path: str,
                                                             allow: str) -> None:
    response = shared_client.open(path, method="OPTIONS")
    assert (response.status_code, response.headers["Allow"]) == (405, allow)
    if path.startswith("/api/"):
        assert response.get_json()["error"] == "method_not_allowed"


def test_every_route_refuses_options(shared_app: Flask) -> None:
    client = shared_app.test_client()
    for rule in shared_app.url_map.iter_rules():
        url = rule.build({arg: "1" for arg in rule.arguments})[1]
        response = client.open(url, method="OPTIONS")
        assert response.status_code in (404, 405), (rule, response.status_code)  # 404: no such listing or photo
        if response.status_code == 405:
            allowed = set(response.headers["Allow"].split(", "))
            assert "OPTIONS" not in allowed and allowed & {"GET", "POST"}, rule


def _origin(client: FlaskClient, **params: str) -> dict:
    response = client.get("/api/v1/search", query_string={**params, "per_page": "1"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize(("written", "plain"), [
    (f"Brook{ZWSP}lyn, NY", "Brooklyn, NY"), (f"{RLM}Toronto{LRM}", "Toronto"), (f"Mont{ZWJ}réal", "Montréal"),
    (f"st{SHY} jerome", "st jerome"), (f"1000{ZWSP}1", "10001"), (f"M5V{BOM} 3L9", "M5V 3L9"),
    (f"Brooklyn, NY 112{ZWSP}01", "Brooklyn, NY 11201"),
])
def test_format_characters_inside_a_location_are_ignored(shared_client: FlaskClient, written: str,
                                                          plain: str) -> None:
    found, expected = _origin(shared_client, location=written), _origin(shared_client, location=plain)
    assert (found["origin"], found["total"]) == (expected["origin"], expected["total"])


@pytest.mark.parametrize("written", [f"1000{ZWSP}1", f"{LRM}10001", f"10001-{ZWJ}1234", f"m5v{SHY}3l9"])
def test_format_characters_inside_a_postcode_are_ignored_and_the_pattern_says_so(shared_client: FlaskClient,
                                                                                 written: str) -> None:
    plain = re.sub(f"[{ZWSP}{ZWJ}{LRM}{SHY}]", "", written)
    assert re.fullmatch(POSTCODE_PATTERN, written) and re.fullmatch(POSTCODE_PATTERN, plain)
    assert _origin(shared_client, postcode=written)["origin"] == _origin(shared_client, postcode=plain)["origin"]


@pytest.mark.parametrize("written", [f"1000{ZWSP}x", f"{ZWSP}", f"100{ZWSP}{ZWSP}0"])
def test_format_characters_do_not_make_a_malformed_postcode_well_formed(shared_client: FlaskClient,
                                                                        written: str) -> None:
    assert not re.fullmatch(POSTCODE_PATTERN, written)
    assert shared_client.get("/api/v1/search", query_string={"postcode": written}).status_code == 400


def test_format_characters_inside_keywords_are_ignored(shared_client: FlaskClient) -> None:
    written = _origin(shared_client, postcode="10001", q=f"dep{ZWSP}ression {SHY}grief")
    plain = _origin(shared_client, postcode="10001", q="depression grief")
    assert written["total"] == plain["total"] > 0
