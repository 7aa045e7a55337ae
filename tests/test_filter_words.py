"""Words that name a filter (a language, an insurer, an age, a client type, a community, a gender, a session format,
the sliding scale): offered as that filter, and applied when they are the whole text, so that "Spanish" finds what
the language filter finds and "teens" what the age filter finds."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from directory.search.text import filter_words

NEAR = {"postcode": "10001", "per_page": "100"}
# Each word, the filter it names, and the offer the API answers with. Expected by hand, not from the code's tables.
WORDS = [
    ("Spanish", {"language": "spanish"}, {"kind": "language", "value": "spanish", "name": "Spanish"}),
    ("spanish", {"language": "spanish"}, {"kind": "language", "value": "spanish", "name": "Spanish"}),
    ("Aetna", {"insurance": "aetna"}, {"kind": "insurance", "value": "aetna", "name": "Aetna"}),
    ("telehealth", {"format": "telehealth"}, {"kind": "format", "value": "telehealth", "name": "Online"}),
    ("online", {"format": "telehealth"}, {"kind": "format", "value": "telehealth", "name": "Online"}),
    ("in person", {"format": "in_person"}, {"kind": "format", "value": "in_person", "name": "In person"}),
    ("teens", {"age": "teens"}, {"kind": "age", "value": "teens", "name": "Teens (13-17)"}),
    ("Adolescents", {"age": "teens"}, {"kind": "age", "value": "teens", "name": "Teens (13-17)"}),
    ("seniors", {"age": "older-adults"}, {"kind": "age", "value": "older-adults", "name": "Older adults (65+)"}),
    ("couples counseling", {"client_type": "couples"}, {"kind": "client_type", "value": "couples", "name": "Couples"}),
    ("family therapy", {"client_type": "families"}, {"kind": "client_type", "value": "families", "name": "Families"}),
    ("LGBTQ", {"community": "lgbtq-affirming"},
     {"kind": "community", "value": "lgbtq-affirming", "name": "LGBTQ+ affirming"}),
    ("Christian", {"community": "faith-christian"},
     {"kind": "community", "value": "faith-christian", "name": "Faith-informed: Christian"}),
    ("woman", {"gender": "woman"}, {"kind": "gender", "value": "woman", "name": "Woman"}),
    ("Female", {"gender": "woman"}, {"kind": "gender", "value": "woman", "name": "Woman"}),
    ("male", {"gender": "man"}, {"kind": "gender", "value": "man", "name": "Man"}),
    ("non-binary", {"gender": "non-binary"}, {"kind": "gender", "value": "non-binary", "name": "Non-binary"}),
    ("sliding scale", {"sliding_scale": "1"},
     {"kind": "sliding_scale", "value": "1", "name": "Offers a sliding scale"}),
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


# Offered among other words: the words, and the offer each must bring (the filter is not applied).
AMONG = [
    ("teens anxiety", {"kind": "age", "value": "teens", "name": "Teens (13-17)"}),
    ("LGBTQ depression", {"kind": "community", "value": "lgbtq-affirming", "name": "LGBTQ+ affirming"}),
    ("woman therapist", {"kind": "gender", "value": "woman", "name": "Woman"}),
    ("depression couples counseling", {"kind": "client_type", "value": "couples", "name": "Couples"}),
    ("sliding scale anxiety", {"kind": "sliding_scale", "value": "1", "name": "Offers a sliding scale"}),
]


@pytest.mark.parametrize(("text", "offer"), AMONG)
def test_a_new_kinds_filter_word_among_others_is_offered_not_applied(shared_client: FlaskClient, text: str,
                                                                     offer: dict[str, str]) -> None:
    ids, answer = _every_page(shared_client, {**NEAR, "q": text})
    assert answer["filter_offers"] == [{**offer, "applied": False}]
    # The words are searched as they always were: the same answer whatever their order, none of it filtered.
    reordered = " ".join(reversed(text.split()))
    assert ids == _every_page(shared_client, {**NEAR, "q": reordered})[0]


def test_several_filter_words_among_others_are_each_offered(shared_client: FlaskClient) -> None:
    answer = shared_client.get("/api/v1/search", query_string={**NEAR, "q": "teens LGBTQ sliding scale grief"})
    assert [(offer["kind"], offer["value"]) for offer in answer.get_json()["filter_offers"]] == [
        ("age", "teens"), ("community", "lgbtq-affirming"), ("sliding_scale", "1")]


# One or two letters name genders in spreadsheets ("F", "NB") but are initials or typos in what people type.
@pytest.mark.parametrize("text", ["depression", "Spanishh", "cross", "person", "nb", "NB", "f", "F", "M", "W",
                                  "nb anxiety", "F depression", "sliding", "scale", "relationship",
                                  "chronic illness", "racial identity"])
def test_words_naming_no_filter_offer_nothing(shared_client: FlaskClient, text: str) -> None:
    assert shared_client.get("/api/v1/search", query_string={**NEAR, "q": text}).get_json()["filter_offers"] == []


# A filter's word inside an approach's or a specialty's name is part of that name: offering the families filter for
# "internal family systems" would link to a search for "internal systems", which finds no IFS therapist.
@pytest.mark.parametrize(("text", "offered"), [
    ("internal family systems", []), ("family conflict", []), ("emotionally focused couples therapy", []),
    ("attachment based family therapy", []), ("family conflict teens", [("age", "teens", "family conflict")]),
])
def test_a_filter_word_inside_an_approach_or_specialty_name_is_not_offered(
        shared_client: FlaskClient, text: str, offered: list[tuple[str, str, str]]) -> None:
    offers = shared_client.get("/api/v1/search", query_string={**NEAR, "q": text}).get_json()["filter_offers"]
    assert [(offer["kind"], offer["value"]) for offer in offers] == [(kind, value) for kind, value, _ in offered]
    assert [rest for _, _, rest in offered] == [offer.rest for offer in filter_words(text)]


@pytest.mark.parametrize(("text", "chosen"), [
    ("Spanish depression", {"language": "spanish"}), ("teens depression", {"age": ["teens", "adults"]}),
    ("sliding scale anxiety", {"sliding_scale": "1"}), ("woman", {"gender": "woman"}),
])
def test_a_filter_already_chosen_is_not_offered(shared_client: FlaskClient, text: str, chosen: dict[str, Any]) -> None:
    answer = shared_client.get("/api/v1/search", query_string={**NEAR, "q": text, **chosen}).get_json()
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


@pytest.mark.parametrize(("q", "chosen"), [
    ("teens anxiety", {"age": ["teens"], "q": ["anxiety"]}),
    ("LGBTQ depression", {"community": ["lgbtq-affirming"], "q": ["depression"]}),
    ("woman therapist", {"gender": ["woman"], "q": ["therapist"]}),
    ("sliding scale grief", {"sliding_scale": ["1"], "q": ["grief"]}),
])
def test_the_page_offers_a_new_kinds_filter_as_a_link_that_chooses_it(shared_client: FlaskClient, q: str,
                                                                      chosen: dict[str, list[str]]) -> None:
    page = shared_client.get("/", query_string={"location": "10001", "q": q}).get_data(as_text=True)
    [(_, args)] = _offer_links(page)
    assert args == {"location": ["10001"], **chosen}  # the word is gone, the filter chosen, the other words kept
    # And the link's search is the filter's: among the filter's therapists, those the other words find.
    linked = {key: values[0] for key, values in args.items() if key != "location"}
    ids, answer = _every_page(shared_client, {**NEAR, **linked})
    assert answer["filter_offers"] == []
    filtered, _ = _every_page(shared_client, {**NEAR, **{k: v for k, v in linked.items() if k != "q"}})
    assert filtered and set(ids) <= set(filtered)


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
