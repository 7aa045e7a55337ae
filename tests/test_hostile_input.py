"""Hostile and odd input: never a 500, always a clear 400 or a normal answer."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

ODD_QUERIES = [
    "*a*", "name:x", "(", ")", '"', '""', '"unterminated phrase', "[a TO z]", "{a TO z}", "a AND", "OR", "NOT",
    "text:depression", "dep*", "~2", "^3", "\\", "%", "_", "'; DROP TABLE listings; --", "🙂🧠💬", "😀" * 60,
    "\x00", "\u202e", "depression~", "attachment^10", "a" * 200,
]


@pytest.mark.parametrize("q", ODD_QUERIES)
def test_odd_free_text_is_searched_as_plain_words(q: str, shared_client: FlaskClient) -> None:
    for path in ("/api/v1/search", "/"):
        response = shared_client.get(path, query_string={"q": q, "postcode": "10001"})
        assert response.status_code == 200, (q, response.data[:300])


def test_query_syntax_is_not_interpreted(shared_client: FlaskClient) -> None:
    # With field prefixes honoured, "name:x" would search a name field; as words, "name" and "x" match nothing.
    body = shared_client.get("/api/v1/search", query_string={"q": "modality:eft"}).get_json()
    words = shared_client.get("/api/v1/search", query_string={"q": "modality eft"}).get_json()
    assert body["total"] == words["total"]


@pytest.mark.parametrize("q", [" OR ".join(["depression"] * 1000), "x" * 10_000, "word " * 30])
def test_overlong_text_gets_query_too_long(q: str, shared_client: FlaskClient) -> None:
    response = shared_client.get("/api/v1/search", query_string={"q": q})
    assert response.status_code == 400
    assert response.get_json()["error"] == "query_too_long"
    page = shared_client.get("/", query_string={"q": q})
    assert page.status_code == 400 and b"search-error" in page.data


def test_an_unknown_well_formed_postcode_is_a_422_on_the_api_and_the_page(shared_client: FlaskClient) -> None:
    response = shared_client.get("/api/v1/search", query_string={"postcode": "00000"})
    assert response.status_code == 422 and response.get_json()["error"] == "unknown_postcode"
    assert shared_client.get("/", query_string={"postcode": "00000"}).status_code == 422


@pytest.mark.parametrize("params, code", [
    ({"postcode": "ABCDE"}, "invalid_postcode"),
    ({"postcode": "W1A 1AA"}, "invalid_postcode"),
    ({"postcode": "10001", "radius": "0"}, "invalid_parameter"),
    ({"postcode": "10001", "radius": "501"}, "invalid_parameter"),
    ({"postcode": "10001", "radius": "nan"}, "invalid_parameter"),
    ({"postcode": "10001", "radius": "inf"}, "invalid_parameter"),
    ({"postcode": "10001", "radius": "1e400"}, "invalid_parameter"),
    ({"page": "0"}, "invalid_parameter"),
    ({"page": "-1"}, "invalid_parameter"),
    ({"page": "1.5"}, "invalid_parameter"),
    ({"page": "99999999999999999999"}, "invalid_parameter"),
    ({"per_page": "101"}, "invalid_parameter"),
    ({"units": "parsecs"}, "invalid_parameter"),
    ({"format": "carrier-pigeon"}, "invalid_parameter"),
    ({"sort": "random"}, "invalid_parameter"),
    ({"accepting": "maybe"}, "invalid_parameter"),
    ({"modality": "not-a-modality"}, "invalid_parameter"),
    ({"specialty": "<script>"}, "invalid_parameter"),
    ({"language": ["english"] * 31}, "invalid_parameter"),
    ({"age": "toddlers"}, "invalid_parameter"),  # a synonym is no slug
    ({"client_type": "couple"}, "invalid_parameter"),
    ({"community": "lgbtq"}, "invalid_parameter"),
    ({"gender": "Two-Spirit"}, "invalid_parameter"),  # kept on a listing as written, never a filter value
    ({"specialty": "couples"}, "invalid_parameter"),  # no longer a specialty: client_type=couples
    ({"specialty": "adolescents"}, "invalid_parameter"),
    ({"max_fee": "-1"}, "invalid_parameter"),
    ({"max_fee": "12.50"}, "invalid_parameter"),
    ({"max_fee": "$100"}, "invalid_parameter"),
    ({"max_fee": "100001"}, "invalid_parameter"),
    ({"max_fee": "1e3"}, "invalid_parameter"),
    ({"sliding_scale": "yes"}, "invalid_parameter"),
    ({"sliding_scale": "true"}, "invalid_parameter"),
])
def test_bad_parameters_get_a_400_with_an_error_code(params: dict, code: str, shared_client: FlaskClient) -> None:
    response = shared_client.get("/api/v1/search", query_string=params)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == code and body["message"]


def test_unknown_paths_and_methods_answer_json_under_the_api(shared_client: FlaskClient) -> None:
    assert shared_client.get("/api/v1/nope").get_json()["error"] == "not_found"
    assert shared_client.post("/api/v1/search").status_code == 405
    assert shared_client.get("/api/v1/therapists/%00%ff").status_code == 404


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
_value = st.one_of(_text, st.integers().map(str), st.floats().map(str),
                   st.sampled_from(["", "1", "eft", "10001", "M5V", "teens", "couples", "woman", "0", "120"]))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(
    st.sampled_from(["q", "postcode", "radius", "units", "modality", "specialty", "language", "insurance",
                     "age", "client_type", "community", "gender", "max_fee", "sliding_scale",
                     "accepting", "format", "sort", "page", "per_page", "junk"]),
    st.one_of(_value, st.lists(_value, max_size=4)),
    max_size=8,
))
def test_generated_parameters_never_cause_a_server_error(params: dict, shared_client: FlaskClient) -> None:
    # A well-formed postcode that the packaged data lacks (a generated "00000") is a 422, the only other answer.
    errors = {400: {"invalid_postcode", "invalid_parameter", "query_too_long"}, 422: {"unknown_postcode"}}
    junk = params.get("junk", []) != []  # an empty list sends no value, so no parameter
    for path in ("/api/v1/search", "/"):
        response = shared_client.get(path, query_string=params)
        assert response.status_code in (200, *errors), (params, response.status_code)
        if path.startswith("/api") and response.status_code in errors:
            assert response.get_json()["error"] in errors[response.status_code], (params, response.get_json())
        event(f"{path} {response.status_code}{' with junk' if junk else ''}")
    # The API refuses a name it does not take before reading the rest; the page answers as if it were not there.
    if junk:
        refused = shared_client.get("/api/v1/search", query_string=params)
        assert refused.status_code == 400 and "'junk'" in refused.get_json()["message"], refused.get_json()
        without = {name: value for name, value in params.items() if name != "junk"}
        assert (shared_client.get("/", query_string=params).status_code
                == shared_client.get("/", query_string=without).status_code), params
