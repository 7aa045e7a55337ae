"""The guided match without a browser: its table names only vocabulary terms; walking its steps as a browser would
(each step's form, its hidden fields carried) lands on the search the answers mean, whose results equal the brute
force's; the danger answer sends nothing and leaves no trace; bad answers send the person back to the step, saying
why."""

from __future__ import annotations

import copy
import html
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from directory.geo import postcodes
from directory.match import Match
from helpers import REPO
from search_oracle import Row, brute_force, fetch_all

DATA = json.loads((REPO / "directory" / "vocabulary.json").read_text())
DANGER = "ending my life"


def _terms(kind: str) -> set[str]:
    """The slugs of a vocabulary kind, read from the data file."""
    return {"in_person", "telehealth"} if kind == "format" else {term["slug"] for term in DATA[kind]}


def test_every_answer_and_starting_point_names_terms_the_vocabulary_has() -> None:
    table = DATA["match"]
    entries = [*table["who"], *table["concern"], *table["meet"], *table["starting_points"]]
    assert entries and all(value in _terms(kind) for entry in entries for kind, values in entry["filters"].items()
                           for value in values)
    assert all(value in _terms(kind) for kind, reasons in table["why"].items() if isinstance(reasons, dict)
               for value in reasons)
    # Every filter an answer chooses is explained.
    assert all(value in table["why"][kind] if isinstance(table["why"][kind], dict) else table["why"][kind]
               for entry in entries for kind, values in entry["filters"].items() for value in values)
    renamed = copy.deepcopy(table)
    renamed["concern"][0]["filters"] = {"specialty": ["low-mood"]}  # a term renamed in the vocabulary, not here
    with pytest.raises(ValueError, match="specialty='low-mood'"):
        Match(renamed)


def _form(page: str) -> tuple[list[tuple[str, str]], str]:
    """A step's hidden fields (what it carries from earlier steps) and its Next button (on the last step, its only
    button)."""
    form = page.split('class="match-step"', 1)[1].split("</form>", 1)[0]
    hidden = [(name, html.unescape(value)) for name, value in
              re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form)]
    button = (re.search(r'<button type="submit" name="(step)" value="(\w+)"', form)
              or re.search(r'<button type="submit" name="(\w+)" value="(\w+)"', form))
    return hidden + [button.groups()], button.group(1)


def _walk(client: FlaskClient, answers: list[list[tuple[str, str]]]) -> Any:
    """Answer each step in turn, submitting its form as a browser would; the response to the last one."""
    response = client.get("/match")
    for given in answers:
        assert response.status_code == 200
        carried, _ = _form(response.get_data(as_text=True))
        response = client.get("/match", query_string=[*carried, *given])
    return response


def test_a_walk_through_every_step_lands_on_the_search_its_answers_mean(contract_client: FlaskClient,
                                                                       rows: list[Row]) -> None:
    done = _walk(contract_client, [
        [("who", "couple")],
        [("concern", "fight"), ("concern", "low")],
        [("meet", "near"), ("location", "10001")],
        [("max_fee", "$180")],
        [("language", "english")],
    ])
    assert done.status_code == 303
    target = urlsplit(done.headers["Location"])
    params = {key: values for key, values in parse_qs(target.query).items()}
    assert target.path == "/" and params == {
        "client_type": ["couples"], "specialty": ["relationship-issues", "depression"], "modality": ["eft"],
        "format": ["in_person"], "location": ["10001"], "max_fee": ["180"], "language": ["english"], "guided": ["1"]}
    flat = {key: values if key in ("specialty", "client_type", "modality", "language") else values[0]
            for key, values in params.items()}
    expected, _ = brute_force(rows, flat, origin=postcodes.lookup("10001"))
    results, _, total = fetch_all(contract_client, {**flat, "per_page": 100})
    assert expected and results == expected and total == len(expected)
    page = contract_client.get(done.headers["Location"]).get_data(as_text=True)
    reasons = re.findall(r"<li>([^<]*) <a href=\"[^\"]*\">Remove", page)
    assert "Emotionally Focused Therapy (EFT): often used with couples caught in the same argument" in reasons
    assert len(reasons) == 7  # one a filter: couples, two specialties, EFT, in person, the fee, the language


def test_the_danger_answer_shows_the_crisis_line_first_and_leaves_no_trace(
        client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    step2 = client.get("/match", query_string={"step": "2", "who": "me"}).get_data(as_text=True)
    main = step2.split('<main id="main">', 1)[1]
    first = re.search(r"<(?!p class=\"flash|div class=\"match)(\w+)[^>]*>", main)  # the first thing in it
    danger = main.split("</details>")[0]
    assert first.group(0) == '<details class="danger">' and DANGER in danger
    assert "<input" not in danger and "name=" not in danger  # not a value any form could send
    assert main.index('href="tel:988"') < main.index("<form")
    carried, _ = _form(step2)
    assert all(DANGER not in value for _, value in carried)
    later = [client.get("/match", query_string=[*carried, ("concern", "low")])]
    for given in ([("meet", "either"), ("location", "10001")], [], []):
        carried, _ = _form(later[-1].get_data(as_text=True))
        later.append(client.get("/match", query_string=[*carried, *given]))
    assert later[-1].status_code == 303
    later.append(client.get(later[-1].headers["Location"]))
    for response in later:
        assert DANGER not in response.get_data(as_text=True) and "danger" not in response.headers.get("Location", "")
    assert all(DANGER not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("query, step, says", [
    ({"step": "4", "who": "me"}, 3, "Where should we look?"),
    ({"done": "1", "concern": "low"}, 3, "Where should we look?"),
    ({"step": "5", "location": "10001", "max_fee": "lots"}, 4, "whole number of dollars"),
    ({"done": "1", "location": "10001", "max_fee": "9" * 9}, 4, "whole number of dollars"),
    ({"done": "1", "location": "10001", "max_fee": "999999"}, 4, "whole number of dollars"),
    ({"done": "1", "location": "10001", "max_fee": "１２０"}, 4, "whole number of dollars"),
    ({"step": "abc"}, 1, None), ({"step": "99", "location": "10001"}, 5, None), ({"step": "-2"}, 1, None),
    ({"step": "²"}, 1, None), ({"step": "１"}, 1, None),
])
def test_a_step_that_cannot_go_on_sends_the_person_back_saying_why(client: FlaskClient, query: dict[str, str],
                                                                  step: int, says: str | None) -> None:
    response = client.get("/match", query_string=query)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and f"Step {step} of 5" in page
    assert (says in page) if says else 'role="alert"' not in page


def test_once_the_place_is_known_the_search_can_be_shown_at_once(client: FlaskClient) -> None:
    step3 = client.get("/match", query_string={"step": "3", "who": "me", "concern": "low"}).get_data(as_text=True)
    # The first button of the form, so a phone keyboard's Go key shows therapists, then Next as the secondary way.
    buttons = re.findall(r'<button type="submit" name="(\w+)" value="(\d)"( class="secondary")?>([^<]+)</button>',
                         step3)
    assert buttons == [("done", "1", "", "Show therapists now"), ("step", "4", ' class="secondary"', "Next")]
    carried, _ = _form(step3)
    done = client.get("/match", query_string=[*[(name, value) for name, value in carried if name != "step"],
                                              ("location", "10001"), ("done", "1")])
    assert parse_qs(urlsplit(done.headers["Location"]).query) == {
        "client_type": ["individuals"], "age": ["young-adults", "adults", "older-adults"], "specialty": ["depression"],
        "location": ["10001"], "guided": ["1"]}
    assert "Show therapists now" not in client.get("/match", query_string={"step": "2"}).get_data(as_text=True)


@pytest.mark.parametrize("fee, sent", [("0120", "120"), ("$ 90", "90"), ("100000", "100000"), ("", None)])
def test_a_fee_the_search_takes_is_sent_as_it_reads_it(client: FlaskClient, fee: str, sent: str | None) -> None:
    done = client.get("/match", query_string=[("done", "1"), ("location", ""), ("location", "10001"),
                                              ("max_fee", fee), ("max_fee", "50")])
    assert done.status_code == 303
    assert parse_qs(urlsplit(done.headers["Location"]).query).get("max_fee") == ([sent] if sent else ["50"])
    assert client.get(done.headers["Location"]).status_code == 200


def test_unknown_answers_are_ignored_and_the_first_page_offers_the_match_and_starting_points(
        client: FlaskClient) -> None:
    done = client.get("/match", query_string={"done": "1", "who": "nobody", "concern": ["low", "<script>"],
                                              "location": "10001"})
    assert parse_qs(urlsplit(done.headers["Location"]).query) == {"specialty": ["depression"],
                                                                  "location": ["10001"], "guided": ["1"]}
    first = client.get("/").get_data(as_text=True)
    assert 'action="/match"' in first
    assert first.index('id="location"') < first.index('action="/match"')  # the location box comes first
    # The match's first question, one button an answer, each opening the second step with it answered.
    start = first[first.index('action="/match"'):]
    start = start[:start.index("</form>")]
    assert '<input type="hidden" name="step" value="2">' in start
    who = re.findall(r'<button type="submit" name="who" value="([a-z]+)" class="secondary">([^<]+)</button>', start)
    assert who == [(answer["slug"], answer["label"]) for answer in DATA["match"]["who"]]
    assert '<a href="/match?step=2">Skip this question</a>' in start  # as step 1 offers
    step2 = client.get("/match", query_string={"step": "2", "who": "child"}).get_data(as_text=True)
    assert "What is going on?" in step2 and '<input type="hidden" name="who" value="child">' in step2
    points = re.findall(r'<li><button type="submit" form="search" name="start" value="([a-z]+)" class="link">([^<]+)'
                        r'</button>', first)
    assert points == [(point["slug"], point["label"]) for point in DATA["match"]["starting_points"]]
    assert 'id="search"' in first


@pytest.mark.parametrize("point", DATA["match"]["starting_points"], ids=lambda point: point["slug"])
def test_a_starting_point_keeps_the_place_typed_above_it_and_adds_its_filters(client: FlaskClient,
                                                                            point: dict[str, Any]) -> None:
    # What the search form sends when a starting point's button is pressed: every field, most of them empty.
    sent = client.get("/", query_string=[("location", "11201"), ("radius", ""), ("q", ""), ("format", "any"),
                                         ("start", point["slug"])])
    assert sent.status_code == 303
    assert parse_qs(urlsplit(sent.headers["Location"]).query) == {
        "location": ["11201"], "format": ["any"], **point["filters"], "guided": ["1"]}
    assert client.get(sent.headers["Location"]).status_code == 200
    alone = client.get("/", query_string={"start": point["slug"]})  # no place: the page asks where
    assert parse_qs(urlsplit(alone.headers["Location"]).query) == {**point["filters"], "guided": ["1"]}
    assert "Where should we look?" in client.get(alone.headers["Location"]).get_data(as_text=True)


def test_an_unknown_starting_point_adds_nothing_and_no_argument_steers_the_redirect(client: FlaskClient) -> None:
    sent = client.get("/", query_string=[("start", "nope"), ("location", "10001"), ("_external", "1"),
                                         ("_anchor", "x"), ("guided", "1")])
    assert sent.headers["Location"] == "/?location=10001&_external=1&_anchor=x"
