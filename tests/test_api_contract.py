"""Issue 16: the API does exactly what its OpenAPI document says, checked by tools we did not write (Schemathesis and
openapi-spec-validator), plus the choices the document states about leniency, by hand."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from directory.web.openapi import VERSION, openapi_document
from helpers import REPO, live_server

SCHEMATHESIS = Path(sys.executable).with_name("st")
# sha256 of the document without info.version, for each version: a change to the contract must come with a new one.
CONTRACTS = REPO / "tests" / "api_contracts.json"


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(openapi_document())


def test_the_version_changes_whenever_the_contract_does() -> None:
    document = openapi_document()
    document["info"].pop("version")
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    recorded = json.loads(CONTRACTS.read_text())
    assert recorded.get(VERSION) == digest, (
        f"the OpenAPI document changed: give it a new VERSION in directory/web/openapi.py (the README says which "
        f"number) and record {VERSION!r} -> {digest!r} in {CONTRACTS.name}")
    assert list(recorded.values()).count(digest) == 1


def test_schemathesis_finds_nothing_in_positive_and_negative_modes(shared_app: Flask) -> None:
    # Every check, both modes, a fixed seed, bounded examples (and time: the subprocess timeout); the repository's
    # schemathesis.toml applies (it is found from the working directory), as it does for `st run` by hand.
    with live_server(shared_app) as url:
        done = subprocess.run(
            [str(SCHEMATHESIS), "run", f"{url}/api/v1/openapi.json", "--checks", "all", "--mode", "all",
             "--seed", "20261201", "--max-examples", "1000", "--generation-database", "none",
             "--no-color", "--workers", "2"],
            cwd=REPO, capture_output=True, text=True, timeout=420)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts is not None, output[-3000:]
    generated, passed = (int(n) for n in counts.groups())
    assert generated == passed and generated >= 600, output[-3000:]
    assert "3 selected / 3 total" in output and "Configuration:" in output, output[:2000]


@pytest.mark.parametrize("params", [
    {"accepting": "true"}, {"accepting": "yes"}, {"accepting": "on"}, {"accepting": "TRUE"},
    {"radius": " 5", "postcode": "10001"}, {"radius": "1_0", "postcode": "10001"},
    {"radius": "\u0661\u0660", "postcode": "10001"}, {"radius": "+5", "postcode": "10001"},
    {"page": "1.0"}, {"page": "02"}, {"per_page": "\uff15"},
    {"units": " mi"}, {"format": "ANY"}, {"sort": "distance "}, {"modality": " cbt"},
])
def test_a_documented_enum_or_number_means_what_it_says(params: dict[str, str], shared_client: FlaskClient) -> None:
    response = shared_client.get("/api/v1/search", query_string=params)
    assert response.status_code == 400
    name = next(key for key in params if key != "postcode")
    assert response.get_json()["error"] == "invalid_parameter" and name in response.get_json()["message"]


def test_an_empty_value_is_the_same_as_leaving_the_parameter_out(shared_client: FlaskClient) -> None:
    # The search page's GET form sends every field, filled in or not.
    empty = {name: "" for name in ("radius", "units", "q", "accepting", "format", "sort", "page", "per_page",
                                   "modality", "specialty", "language", "insurance")}
    with_empties = shared_client.get("/api/v1/search", query_string={"postcode": "10001", **empty}).get_json()
    without = shared_client.get("/api/v1/search", query_string={"postcode": "10001"}).get_json()
    assert with_empties == without and without["total"] > 0


@pytest.mark.parametrize("q, status", [
    (" ".join(["word"] * 24), 200), (" ".join(["word"] * 25), 400),
    ("\t".join(["word"] * 25), 400), ("a" * 200, 200), ("a" * 201, 400), (" " * 201, 400),
])
def test_the_text_limits_are_the_documented_pattern_and_length(q: str, status: int, shared_client: FlaskClient) -> None:
    parameter = next(p for p in openapi_document()["paths"]["/api/v1/search"]["get"]["parameters"] if p["name"] == "q")
    documented = len(q) <= parameter["schema"]["maxLength"] and re.search(parameter["schema"]["pattern"], q)
    assert bool(documented) == (status == 200)
    assert shared_client.get("/api/v1/search", query_string={"q": q}).status_code == status


@pytest.mark.parametrize("postcode, status", [
    ("10001", 200), (" 1 0 0 0 1 ", 200), ("10001-1234", 200), ("m5v 3l9", 200), ("M5V", 200),
    ("00000", 422), ("X0X 0X0", 422), ("D5V 3L9", 400), ("W1A", 400), ("1000", 400),
    ("\uff11\uff10\uff10\uff10\uff11", 400), ("10001\u00a0", 400),
])
def test_the_postcode_pattern_is_exactly_what_the_server_takes(postcode: str, status: int,
                                                                shared_client: FlaskClient) -> None:
    parameter = next(p for p in openapi_document()["paths"]["/api/v1/search"]["get"]["parameters"]
                     if p["name"] == "postcode")
    assert bool(re.search(parameter["schema"]["pattern"], postcode)) == (status != 400)
    response = shared_client.get("/api/v1/search", query_string={"postcode": postcode})
    assert response.status_code == status
    if status == 422:
        assert response.get_json()["error"] == "unknown_postcode"


def test_every_405_names_the_allowed_methods(shared_client: FlaskClient) -> None:
    for path in ("/api/v1/search", "/api/v1/vocabulary", "/api/v1/therapists/x", "/api/v1/openapi.json", "/"):
        response = shared_client.post(path)
        assert response.status_code == 405 and set(response.headers["Allow"].split(", ")) >= {"GET", "HEAD"}, path


@pytest.mark.parametrize("params, status, understood", [
    ({"page": "1" + "0" * 4400}, 400, None),  # Python cannot read a whole number that long: it was a 500
    ({"per_page": "9" * 30}, 400, None),
    ({"postcode": " " * 150 + "12345"}, 400, None),  # the documented maxLength
    ({"location": " ", "postcode": "12345"}, 200, "12345"),  # a blank location is absent
    ({"location": "12345\u00a0"}, 200, "12345"),  # pasted text brings a no-break space
    ({"location": "Brooklyn NY 11201"}, 200, "11201"),  # a place followed by its postcode is the postcode
    ({"location": "Toronto, ON M5V 3L9"}, 200, "M5V 3L9"),
])
def test_location_and_number_edges(params: dict[str, str], status: int, understood: str | None,
                                   shared_client: FlaskClient) -> None:
    response = shared_client.get("/api/v1/search", query_string=params)
    assert response.status_code == status, response.get_json()
    if understood:
        assert response.get_json()["origin"]["postcode"] == understood
