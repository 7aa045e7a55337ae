"""Pages, free text, the API's shapes and the OpenAPI document, on the sample data."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from directory.listings import published_rows_by_ids
from directory.models import Listing
from directory.search.text import snippet, text_query
from directory.web.openapi import openapi_document
from directory.web.presenters import RESULT_COLUMNS
from directory.web.public import initials, tel_href
from helpers import SAMPLE_DAY

CRISIS = "988"


def api(client: FlaskClient, **params: object) -> dict:
    response = client.get("/api/v1/search", query_string=params)
    assert response.status_code == 200, response.data
    return response.get_json()


def test_free_text_finds_listings_by_modality_synonym(shared_client: FlaskClient, shared_app: Flask) -> None:
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        eft_ids = {listing.external_id for listing in session.scalars(select(Listing).where(Listing.published))
                   if "eft" in listing.modalities}
    found = set()
    body = api(shared_client, q="emotionally focused", per_page=100)
    for page in range(1, body["total"] // 100 + 2):
        found |= {r["id"] for r in api(shared_client, q="emotionally focused", per_page=100, page=page)["results"]}
    assert eft_ids <= found
    efct = api(shared_client, q="EFCT", per_page=1)
    assert efct["total"] == len(eft_ids)


def test_every_word_must_match_and_phrases_keep_order(shared_client: FlaskClient) -> None:
    # Words that name no filter ("couples" alone is the client type filter: tests/test_filter_words.py).
    both = api(shared_client, q="insecure mood")["total"]
    assert 0 < both < min(api(shared_client, q="insecure")["total"], api(shared_client, q="mood")["total"])
    assert api(shared_client, q='"low mood"')["total"] > 0
    assert api(shared_client, q='"mood low"')["total"] < api(shared_client, q="mood low")["total"]


def test_stemming_matches_word_forms(shared_client: FlaskClient) -> None:
    assert api(shared_client, q="depressed")["total"] == api(shared_client, q="depression")["total"] > 0


def test_misspelling_offers_a_suggestion_that_finds_results(shared_client: FlaskClient) -> None:
    body = api(shared_client, q="depresion")
    assert body["total"] == 0 and body["suggestion"] == "depression"
    assert api(shared_client, q=body["suggestion"])["total"] > 0
    page = shared_client.get("/", query_string={"q": "depresion"}).get_data(as_text=True)
    assert "Did you mean" in page and "q=depression" in page


def test_relevance_sort_orders_by_score(shared_client: FlaskClient) -> None:
    body = api(shared_client, postcode="10001", q="attachment", sort="relevance", per_page=50)
    assert body["sort"] == "relevance" and body["total"] > 10
    distance_sorted = api(shared_client, postcode="10001", q="attachment", per_page=50)
    standing = {"accepting": 0, "unconfirmed": 1, "not_accepting": 2}  # nearest first after standing
    keys = [(standing[r["availability"]], r["distance"]) for r in distance_sorted["results"]]
    assert keys == sorted(keys)
    assert [r["id"] for r in body["results"]] != [r["id"] for r in distance_sorted["results"]]


def test_canadian_search_defaults_to_km_and_40(shared_client: FlaskClient) -> None:
    body = api(shared_client, postcode="h3b4w8")
    assert (body["units"], body["radius"], body["origin"]["postcode"],
            body["origin"]["country"]) == ("km", 40, "H3B 4W8", "CA")
    miles = api(shared_client, postcode="H3B 4W8", units="mi", radius=25)
    assert miles["units"] == "mi" and miles["radius"] == 25


def test_snippet_marks_matched_words_and_is_escaped_on_the_page(shared_client: FlaskClient) -> None:
    pieces = snippet("Works with depressed teens & <b>couples</b>.", text_query("depression couples").stems)
    assert ("depressed", True) in pieces and ("couples", True) in pieces
    assert "".join(p for p, _ in pieces) == "Works with depressed teens & <b>couples</b>."
    html = shared_client.get("/", query_string={"q": "depression", "postcode": "10001"}).get_data(as_text=True)
    assert "<mark>depression</mark>" in html.lower()
    assert "<b>" not in html


def test_home_page_form_works_without_javascript(shared_client: FlaskClient) -> None:
    html = shared_client.get("/").get_data(as_text=True)
    assert '<form class="search" id="search" method="get"' in html
    for field in ("location", "radius", "units", "q", "accepting", "sort"):
        assert re.search(rf'<label for="{field}"', html), field
    # The panel's inputs sit beside the results but belong to the GET form, so a plain submit carries them.
    assert ('form="search" name="modality" value="eft"' in html
            and 'form="search" name="specialty" value="depression"' in html)
    assert ('form="search" name="language" value="spanish"' in html
            and 'form="search" name="insurance" value="aetna"' in html)
    results = shared_client.get("/", query_string={"postcode": "10001", "modality": "eft", "radius": 25})
    page = results.get_data(as_text=True)
    assert results.status_code == 200
    assert re.search(r"\d+ therapists within 25 miles of 10001 \(New York, NY\), plus \d+ online therapists licensed "
                     r"in NY", page)
    assert re.search(r'name="modality" value="eft" id="modality-eft"\s+checked', page)
    assert re.search(r"Emotionally Focused Therapy \(EFT\) <span class=\"count\">\(\d+\)</span>", page)


def test_page_shows_a_clear_message_for_a_bad_postcode(shared_client: FlaskClient) -> None:
    response = shared_client.get("/", query_string={"postcode": "99999"})
    assert response.status_code == 422  # well formed, but no data holds it
    assert "ZIP code 99999 is not in our US postcode data." in response.get_data(as_text=True)


def test_pagination_links_keep_the_search(shared_client: FlaskClient) -> None:
    html = shared_client.get("/", query_string={"postcode": "10001",
                                                "specialty": ["depression", "anxiety"]}).get_data(as_text=True)
    next_link = re.search(r'<a rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "page=2" in next_link and "specialty=depression" in next_link and "specialty=anxiety" in next_link
    assert shared_client.get(next_link).status_code == 200


@pytest.mark.parametrize("path", ["/", "/?postcode=10001", "/therapists/no-such-person", "/api-not-here"])
def test_every_page_shows_the_crisis_line(path: str, shared_client: FlaskClient) -> None:
    html = shared_client.get(path).get_data(as_text=True)
    assert 'href="tel:988"' in html and 'href="tel:911"' in html


def test_profile_shows_public_fields_and_confirmation_date(shared_client: FlaskClient, shared_app: Flask) -> None:
    window_start = SAMPLE_DAY - dt.timedelta(days=90)
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        fresh = session.scalars(select(Listing).where(Listing.published, Listing.accepting_new_clients,
                                                      Listing.availability_confirmed_on >= window_start)).first()
        stale = session.scalars(select(Listing).where(Listing.published,
                                                      Listing.availability_confirmed_on < window_start)).first()
    html = shared_client.get(f"/therapists/{fresh.slug}").get_data(as_text=True)
    assert f"<h1>{fresh.name}" in html
    days = (SAMPLE_DAY - fresh.availability_confirmed_on).days
    ago = {0: "today", 1: "yesterday"}.get(days, f"{days} days ago")
    assert f"Accepting new clients · confirmed {ago}" in html and fresh.availability_confirmed_on.isoformat() in html
    for value in (fresh.city, fresh.phone, fresh.email, fresh.credentials):
        assert value in html
    api_view = shared_client.get(f"/api/v1/therapists/{fresh.external_id}").get_json()
    assert api_view["name"] == fresh.name and api_view["url"] == f"/therapists/{fresh.slug}"
    assert api_view["availability"] == "accepting"
    html = shared_client.get(f"/therapists/{stale.slug}").get_data(as_text=True)
    since = stale.availability_confirmed_on.strftime("%B %Y")
    assert f"Availability not confirmed since {since}" in html and "Accepting new clients" not in html
    assert shared_client.get(f"/api/v1/therapists/{stale.external_id}").get_json()["availability"] == "unconfirmed"


def test_not_found_pages_are_styled_and_json_under_the_api(shared_client: FlaskClient) -> None:
    page = shared_client.get("/therapists/nobody")
    assert page.status_code == 404 and "Back to the therapist search" in page.get_data(as_text=True)
    missing = shared_client.get("/api/v1/therapists/nobody")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


def test_vocabulary_endpoint_lists_every_kind(shared_client: FlaskClient) -> None:
    body = shared_client.get("/api/v1/vocabulary").get_json()
    assert {t["slug"] for t in body["modality"]} >= {"eft", "attachment-based", "abft", "cbt", "ifs", "gottman"}
    assert {t["slug"] for t in body["specialty"]} >= {"depression", "insecure-attachment", "loneliness"}


def test_openapi_matches_what_the_api_accepts_and_returns(shared_client: FlaskClient) -> None:
    document = shared_client.get("/api/v1/openapi.json").get_json()
    assert document == openapi_document() and document["openapi"].startswith("3.")
    search = document["paths"]["/api/v1/search"]["get"]
    documented = {p["name"] for p in search["parameters"]}
    assert documented == {"location", "postcode", "radius", "units", "q", "modality", "specialty", "language",
                          "insurance", "age", "client_type", "community", "gender", "accepting", "max_fee",
                          "sliding_scale", "format", "sort", "page", "per_page", "guided"}
    body = api(shared_client, postcode="10001", q="depression")
    schema = search["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == set(body)
    assert set(schema["properties"]["results"]["items"]["properties"]) == set(body["results"][0])
    for name in documented - {"location", "postcode", "q"}:
        enum = next(p for p in search["parameters"] if p["name"] == name)["schema"]
        enum = enum.get("items", enum).get("enum")
        if enum:
            assert shared_client.get("/api/v1/search", query_string={name: enum[0]}).status_code == 200


@pytest.mark.parametrize("params, named", [
    ({"postcode": "10001", "specialities": "depression"}, ["specialities"]),  # British, and no filter at all
    ({"bogus": "1"}, ["bogus"]),
    ({"postcode": "10001", "bogus": ""}, ["bogus"]),  # a name is unknown whatever its value
    ({"Q": "depression", "utm_source": "x"}, ["Q", "utm_source"]),
])
def test_an_unknown_api_parameter_is_a_400_naming_it(params: dict, named: list[str],
                                                      shared_client: FlaskClient) -> None:
    listing = api(shared_client, postcode="10001", per_page=1)["results"][0]["id"]
    for path in ("/api/v1/search", f"/api/v1/therapists/{listing}", "/api/v1/vocabulary", "/api/v1/openapi.json"):
        response = shared_client.get(path, query_string=params)
        assert response.status_code == 400, (path, params)
        body = response.get_json()
        assert body["error"] == "invalid_parameter", body
        assert all(f"'{name}'" in body["message"] for name in named), body
        assert body["message"].startswith("Unknown parameter"), body


def test_every_api_endpoint_but_the_search_takes_no_parameter_and_the_search_takes_the_documented(
        shared_client: FlaskClient) -> None:
    listing = api(shared_client, postcode="10001", per_page=1)["results"][0]["id"]
    for path in (f"/api/v1/therapists/{listing}", "/api/v1/vocabulary", "/api/v1/openapi.json"):
        assert shared_client.get(path).status_code == 200
        assert "takes no parameters" in shared_client.get(path, query_string={"x": "1"}).get_json()["message"]
    search = openapi_document()["paths"]["/api/v1/search"]["get"]
    every = {p["name"]: "" for p in search["parameters"]}  # empty: each as if left out, and none refused
    assert shared_client.get("/api/v1/search", query_string=every).status_code == 200


def test_the_page_ignores_unknown_parameters_and_the_api_takes_every_field_of_its_form(
        shared_client: FlaskClient) -> None:
    # A shared link with a tracking parameter still works on the page...
    plain = shared_client.get("/", query_string={"postcode": "10001", "q": "depression"})
    tracked = shared_client.get("/", query_string={"postcode": "10001", "q": "depression", "utm_source": "mail",
                                                  "specialities": "depression"})
    assert plain.status_code == tracked.status_code == 200
    assert re.findall(r'href="/therapists/([^"?]+)', plain.get_data(as_text=True)) == re.findall(
        r'href="/therapists/([^"?]+)', tracked.get_data(as_text=True))
    # ...and every name the page's form and its links send is one the API takes, so the same query works on both.
    page = shared_client.get("/", query_string={"postcode": "10001"}).get_data(as_text=True)
    page = re.sub(r'<form[^>]*action="/shortlist".*?</form>', "", page, flags=re.S)  # the cards' Save forms
    assert 'action="/shortlist"' not in page
    sent = set(re.findall(r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"', page))
    sent |= {key for href in re.findall(r'href="(/\?[^"]*)"', page)
             for key in parse_qs(urlsplit(html_lib.unescape(href)).query)}
    assert {"location", "q", "radius", "modality", "accepting", "format", "sort", "units", "page"} <= sent
    documented = {p["name"] for p in openapi_document()["paths"]["/api/v1/search"]["get"]["parameters"]}
    assert sent <= documented
    for name in sorted(sent):
        response = shared_client.get("/api/v1/search", query_string={"postcode": "10001", name: ""})
        assert response.status_code == 200, (name, response.get_json())


def test_relevance_ranks_the_stronger_text_match_first(client: FlaskClient, app: Flask) -> None:
    with app.app_context(), app.extensions["db"]() as session:
        for external_id, bio in (("t-weak", "Some kintsugi metaphors."),
                                 ("t-strong", "Kintsugi, kintsugi and kintsugi.")):
            session.add(Listing(external_id=external_id, slug=external_id, name="Same Name", country="US",
                                postcode="59601", bio=bio, in_person=True))
        session.commit()
    by_relevance = api(client, q="kintsugi", postcode="10001", sort="relevance", format="in_person", radius=500)
    assert by_relevance["total"] == 0  # Helena, MT is far outside 500 mi of New York
    national = api(client, q="kintsugi")
    assert [r["id"] for r in national["results"]] == ["t-strong", "t-weak"]
    near = api(client, q="kintsugi", postcode="59601", sort="distance")
    assert [r["id"] for r in near["results"]] == ["t-strong", "t-weak"]  # same distance: relevance breaks the tie


def test_a_suggestion_is_never_a_place_name(shared_client: FlaskClient) -> None:
    # "women" was answered "Did you mean owen?" (Owen Sound, ON): names and places are never spelling words. And
    # "omen", one edit from "owen", in no bio, and (unlike a gender word) never a filter word.
    for q in ("women", "omen"):
        body = api(shared_client, q=q, postcode="10001")
        assert body["suggestion"] is None, q
    assert body["total"] == 0 and body["filter_offers"] == []


def test_suggestions_come_from_bio_words_never_from_names_or_places(client: FlaskClient, app: Flask) -> None:
    with app.app_context(), app.extensions["db"]() as session:
        session.add(Listing(external_id="t-sand", slug="t-sand", name="Marisol Quennell", city="Saskatoon",
                            country="CA", postcode="S7K 1J5", in_person=True,
                            bio="Play and sandtray work for children. Ask Dr. Rowena Tillbury about it; quennell and "
                                "saskatoon written in lower case are still this listing's own name and city."))
        session.commit()
    # A bio word that no vocabulary entry holds, misspelt by one transposition and by two edits.
    assert api(client, q="sandtary")["suggestion"] == "sandtray"
    assert api(client, q="sandtrya children")["suggestion"] == "sandtray children"
    assert api(client, q="sandtray")["total"] == 1
    # A name or place inside the text is found when spelt right, but never offered as a respelling.
    for right, wrong in (("rowena", "rowenna"), ("tillbury", "tilbury"), ("quennell", "quenell"),
                         ("saskatoon", "saskatun")):
        assert api(client, q=right)["total"] == 1, right
        assert api(client, q=wrong)["suggestion"] is None, wrong


def test_every_way_out_of_an_empty_search_finds_what_it_says(shared_client: FlaskClient) -> None:
    params = {"postcode": "10001", "radius": "5", "format": "in_person",
              "modality": "eft", "specialty": "bipolar", "language": "korean"}
    assert api(shared_client, **params)["total"] == 0
    html = shared_client.get("/", query_string=params).get_data(as_text=True)
    offered = re.findall(r'<li><a href="([^"]+)">(\d+) ([^<]+)</a></li>', html.split('class="dead-end"')[1])
    assert len(offered) >= 2, offered
    for url, count, label in offered:
        query = parse_qs(urlsplit(html_lib.unescape(url)).query)
        assert api(shared_client, **query)["total"] == int(count), (label, query)


@pytest.mark.parametrize(("phone", "href"), [
    ("(212) 555-0142", "tel:2125550142"), ("+1 416 555 0199", "tel:+14165550199"),
    ("(212) 555-0142 ext. 12", "tel:2125550142"), ("212-555-0142 x7", "tel:2125550142"),
    ("555-1234 / 555-9876", "tel:5551234"),
])
def test_a_phone_number_becomes_one_dialable_link(phone: str, href: str) -> None:
    assert tel_href(phone) == href


@pytest.mark.parametrize(("name", "letters"), [("Jane Smith", "JS"), ("Dr. Jane Q. Smith", "JS"), ("Madonna", "M"),
                                                ("", "?"), ("Prof Ana de la Cruz", "AC")])
def test_initials_leave_out_titles(name: str, letters: str) -> None:
    assert initials(name) == letters


def test_a_profile_opened_from_a_search_says_how_far_it_is(shared_client: FlaskClient, shared_app: Flask) -> None:
    from geopy.distance import great_circle

    from directory.places import places

    first = api(shared_client, location="Brooklyn, NY", format="in_person")["results"][0]
    html = shared_client.get("/?location=Brooklyn,+NY&format=in_person").get_data(as_text=True)
    link = html_lib.unescape(re.search(r'<h3><a href="([^"]+)"', html).group(1))
    assert parse_qs(urlsplit(link).query)["location"] == ["Brooklyn, NY"]
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        listing = session.scalars(select(Listing).where(Listing.external_id == first["id"])).one()
        brooklyn = places.resolve("Brooklyn, NY")
    miles = great_circle((listing.latitude, listing.longitude), (brooklyn.lat, brooklyn.lon)).miles
    page = shared_client.get(link).get_data(as_text=True)
    assert f"{miles:.1f} miles from Brooklyn, NY" in page
    km = great_circle((listing.latitude, listing.longitude), (brooklyn.lat, brooklyn.lon)).km
    assert f"{km:.1f} km from Brooklyn, NY" in shared_client.get(link + "&units=km").get_data(as_text=True)
    for bad in ("", "?location=Nowhere+Special+ZZ", "?location=ABCDE", "?location=" + "x" * 500, "?units=parsecs"):
        response = shared_client.get(f"/therapists/{listing.slug}{bad}")
        assert response.status_code == 200 and " from " not in response.get_data(as_text=True).split("<h2")[0], bad


def test_fees_name_the_currency_outside_the_searched_country(shared_client: FlaskClient, shared_app: Flask) -> None:
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        canadian = session.scalars(select(Listing).where(Listing.published, Listing.country == "CA",
                                                         Listing.fee_min.is_not(None)).order_by(Listing.id)).first()
    assert canadian is not None
    fees = f"${canadian.fee_min}" + (f"–${canadian.fee_max}" if canadian.fee_max not in (None, canadian.fee_min)
                                     else "")
    alone = shared_client.get(f"/therapists/{canadian.slug}").get_data(as_text=True)
    assert f"{fees} CAD per session" in alone  # a profile with no search behind it always names it
    from_home = shared_client.get(f"/therapists/{canadian.slug}?location={canadian.postcode}").get_data(as_text=True)
    assert f"{fees} per session" in from_home and "CAD" not in from_home
    from_us = shared_client.get(f"/therapists/{canadian.slug}?location=10001").get_data(as_text=True)
    assert f"{fees} CAD per session" in from_us
    # A search of words alone spans both countries: every card's fee names its currency.
    html = shared_client.get("/?q=therapy&per_page=100").get_data(as_text=True)
    fees_lines = re.findall(r'<p class="fees">([^<]*?) a session', html)
    assert fees_lines and all(line.strip().endswith((" USD", " CAD")) for line in fees_lines), fees_lines[:5]
    near = shared_client.get(f"/?postcode={canadian.postcode}&format=in_person").get_data(as_text=True)
    assert re.search(r'<p class="fees">\$\d+(–\$\d+)? a session', near)


def test_a_page_fetched_through_the_driver_holds_what_the_orm_reads(app: Flask, session: Session) -> None:
    """The API's page of rows (read through the database driver) against the ORM's listings, value and type, with
    the gaps a page meets: an unpublished listing, an id that is gone, a date that is missing."""
    listings = session.scalars(select(Listing).order_by(Listing.id).limit(12)).all()
    hidden, undated = listings[3], listings[5]
    hidden.published = False
    undated.availability_confirmed_on = None
    undated.name = "Zoë Ångström-Nuñez"
    session.commit()
    ids = [listing.id for listing in reversed(listings)] + [10**9]
    rows = published_rows_by_ids(session, ids, (*RESULT_COLUMNS, Listing.bio))
    assert sorted(rows) == sorted(listing.id for listing in listings if listing is not hidden)
    for listing in listings:
        if listing is hidden:
            continue
        row = rows[listing.id]
        for column in ("id", *(column.key for column in RESULT_COLUMNS), "bio"):
            value = getattr(row, column)
            expected = getattr(listing, column)
            assert value == expected and type(value) is type(expected), (column, value, expected)
    assert rows[undated.id].availability_confirmed_on is None and rows[undated.id].name == "Zoë Ångström-Nuñez"
    assert isinstance(rows[listings[0].id].modalities, list) and rows[listings[0].id].modalities
    assert published_rows_by_ids(session, [], RESULT_COLUMNS) == {}
    twice = published_rows_by_ids(session, ids[:2], (Listing.id, Listing.bio, Listing.bio))
    assert [row._fields for row in twice.values()] == [("id", "bio")] * 2
    with pytest.raises(ValueError, match="no Float or Numeric column"):
        published_rows_by_ids(session, ids[:2], (Listing.latitude,))
    statements: list[str] = []
    event.listen(session.get_bind(), "before_cursor_execute", lambda *args: statements.append(args[2]))
    published_rows_by_ids(session, ids[:2], RESULT_COLUMNS)
    assert len(statements) == 1 and statements[0].startswith("SELECT")  # the engine's events see it
