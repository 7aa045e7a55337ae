"""Words that name a filter (a language, an insurer, a session format): offered as that filter, and applied when
they are the whole text, so that "Spanish" finds what the language filter finds."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

NEAR = {"postcode": "10001", "per_page": "100"}
# Each word, the filter it names, and the offer the API answers with. Expected by hand, not from the code's tables.
WORDS = [
    ("Spanish", {"language": "spanish"}, {"kind": "language", "value": "spanish", "name": "Spanish"}),
    ("spanish", {"language": "spanish"}, {"kind": "language", "value": "spanish", "name": "Spanish"}),
    ("Aetna", {"insurance": "aetna"}, {"kind": "insurance", "value": "aetna", "name": "Aetna"}),
    ("telehealth", {"format": "telehealth"}, {"kind": "format", "value": "telehealth", "name": "Online"}),
    ("online", {"format": "telehealth"}, {"kind": "format", "value": "telehealth", "name": "Online"}),
    ("in person", {"format": "in_person"}, {"kind": "format", "value": "in_person", "name": "In person"}),
]


def _every_page(client: FlaskClient, params: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Every result id in order over all pages, and the first page's answer."""
    first = client.get("/api/v1/search", query_string=params).get_json()
    ids = [r["id"] for r in first["results"]]
    page = 1
    while len(ids) < first["total"]:
        page += 1
        answer = client.get("/api/v1/search", query_string={**params, "page": str(page)}).get_json()
        assert answer["results"], page
        ids += [r["id"] for r in answer["results"]]
    assert len(ids) == first["total"]
    return ids, first


@pytest.mark.parametrize(("word", "chosen", "offer"), WORDS)
def test_a_filter_word_alone_is_its_filter(shared_client: FlaskClient, word: str, chosen: dict[str, str],
                                           offer: dict[str, str]) -> None:
    ids, answer = _every_page(shared_client, {**NEAR, "q": word})
    filtered, by_filter = _every_page(shared_client, {**NEAR, **chosen})
    assert ids and ids == filtered
    assert answer["facets"] == by_filter["facets"]
    assert answer["filter_offers"] == [{**offer, "applied": True}]
    assert by_filter["filter_offers"] == []


def test_a_filter_word_alone_without_a_place_is_its_filter_nationally(shared_client: FlaskClient) -> None:
    ids, answer = _every_page(shared_client, {"q": "Aetna", "per_page": "100"})
    assert ids == _every_page(shared_client, {"insurance": "aetna", "per_page": "100"})[0]
    assert answer["filter_offers"][0]["applied"] is True


def test_a_filter_word_among_others_is_offered_and_the_words_searched(shared_client: FlaskClient) -> None:
    ids, answer = _every_page(shared_client, {**NEAR, "q": "Spanish depression"})
    assert answer["filter_offers"] == [{"kind": "language", "value": "spanish", "name": "Spanish", "applied": False}]
    # The text is searched as words, as it always was: no listing's text holds "Spanish", so nothing is found.
    assert ids == _every_page(shared_client, {**NEAR, "q": "depression Spanish"})[0] == []
    assert _every_page(shared_client, {**NEAR, "q": "online anxiety"})[1]["filter_offers"] == [
        {"kind": "format", "value": "telehealth", "name": "Online", "applied": False}]


@pytest.mark.parametrize("text", ["depression", "Spanishh", "cross", "person"])
def test_words_naming_no_filter_offer_nothing(shared_client: FlaskClient, text: str) -> None:
    assert shared_client.get("/api/v1/search", query_string={**NEAR, "q": text}).get_json()["filter_offers"] == []


def test_a_filter_already_chosen_is_not_offered(shared_client: FlaskClient) -> None:
    answer = shared_client.get("/api/v1/search", query_string={**NEAR, "q": "Spanish depression",
                                                               "language": "spanish"}).get_json()
    assert answer["filter_offers"] == []


def _offer_links(page: str) -> list[tuple[str, dict[str, list[str]]]]:
    found = re.findall(r'<p class="suggestion filter-offer"><a href="([^"]+)">([^<]+)</a></p>', page)
    return [(text, parse_qs(urlsplit(html.unescape(href)).query)) for href, text in found]


def test_the_page_offers_the_filter_as_a_link(shared_client: FlaskClient) -> None:
    alone = shared_client.get("/", query_string={"location": "10001", "q": "Spanish"}).get_data(as_text=True)
    [(text, args)] = _offer_links(alone)
    assert text == "Filter by Spanish-speaking therapists?"
    assert args == {"location": ["10001"], "language": ["spanish"]}  # the word is gone, the filter chosen
    among = shared_client.get("/", query_string={"location": "10001", "q": "Spanish depression"})
    [(text, args)] = _offer_links(among.get_data(as_text=True))
    assert args == {"location": ["10001"], "language": ["spanish"], "q": ["depression"]}
    online = shared_client.get("/", query_string={"location": "10001", "q": "online"}).get_data(as_text=True)
    [(text, args)] = _offer_links(online)
    assert text == "Filter by therapists offering online sessions?"
    assert args == {"location": ["10001"], "format": ["telehealth"]}


def test_a_filter_word_never_widens_a_filter_already_set_to_another_value(shared_client: FlaskClient) -> None:
    # Aetna chosen, "Cigna" typed: Aetna's therapists whose words hold "cigna" (the text stays words), never those
    # who take Aetna or Cigna, of whom there are more.
    ids, answer = _every_page(shared_client, {**NEAR, "insurance": "aetna", "q": "Cigna"})
    aetna, _ = _every_page(shared_client, {**NEAR, "insurance": "aetna"})
    cigna, _ = _every_page(shared_client, {**NEAR, "insurance": "cigna"})
    assert set(cigna) - set(aetna), "the sample should hold therapists near 10001 who take Cigna and not Aetna"
    assert set(ids) <= set(aetna)
    assert answer["filter_offers"] == [{"kind": "insurance", "value": "cigna", "name": "Cigna", "applied": False}]


def test_the_page_asks_where_for_a_filter_word_without_a_place_as_for_the_filter(shared_client: FlaskClient) -> None:
    for params in ({"q": "Spanish"}, {"language": "spanish"}, {"q": "online"}):
        page = shared_client.get("/", query_string=params).get_data(as_text=True)
        assert "Where should we look?" in page, params
