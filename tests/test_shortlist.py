"""The shortlist without a browser: saved by plain form POSTs, kept in a signed cookie set only by a save, shown
side by side with each field computed here from the database rows, shared by a link, bounded at ten, and closed to
other sites' forms."""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory.geo import postcodes
from directory.models import Listing
from directory.web.shortlist import comparison
from helpers import REPO

ORIGIN = {"Origin": "http://localhost"}  # what a browser sends with a form POST from the test client's site
SEARCH = "/?location=10001&radius=25"
VOCABULARY = json.loads((REPO / "directory" / "vocabulary.json").read_text())


def _names(kind: str, slugs: list[str]) -> str:
    """Vocabulary names read from the data file itself."""
    terms = {term["slug"]: term["name"] for term in VOCABULARY[kind]}
    return ", ".join(terms[slug] for slug in slugs)


def _miles(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance by the haversine formula, Earth's mean radius 3958.8 miles."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 3958.8 * math.asin(math.sqrt(a))


def _save(client: FlaskClient, listing_id: int, action: str = "save", **headers: str) -> Any:
    return client.post("/shortlist", data={"listing": str(listing_id), "action": action, "next": SEARCH},
                       headers=headers or ORIGIN)


def _columns(page: str) -> dict[str, dict[str, str]]:
    """The comparison as {heading: {row label: value}}, "same for all" marks kept as " [same]" on the label."""
    columns = {}
    for block in re.findall(r'<article class="compared.*?</article>', page, re.S):
        heading = html.unescape(re.sub(r"<[^>]+>", "", re.search(r"<h2[^>]*>(.*?)</h2>", block, re.S).group(1)))
        rows = {}
        for label, value in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", block, re.S):
            same = " [same]" if "same for all" in label else ""
            rows[html.unescape(re.sub(r"<[^>]+>", "", label).replace("same for all", "").strip()) + same] = \
                html.unescape(" ".join(value.split()))
        columns[heading.split("  ")[0].strip()] = rows
    return columns


def _three(client: FlaskClient, session: Session) -> list[Listing]:
    """The first three listings of the results page near 10001."""
    page = client.get(SEARCH).get_data(as_text=True)
    ids = [int(found) for found in re.findall(r'<li class="card" id="listing-(\d+)"', page)[:3]]
    return [session.get(Listing, listing_id) for listing_id in ids]


def _point(listing: Listing) -> tuple[float, float]:
    """Where a listing's office is: its own point, else its postcode's centroid (the postcode data, read here)."""
    if listing.latitude is not None and listing.longitude is not None:
        return listing.latitude, listing.longitude
    centroid = postcodes.lookup(listing.postcode)
    return centroid.lat, centroid.lon


def _fee(listing: Listing) -> str:
    low, high = listing.fee_min, listing.fee_max
    if low is None:
        return "Ask the therapist" if high is None else f"Up to ${high}"
    return f"${low}" if high in (None, low) else f"${low}–${high}"


def test_results_and_profiles_set_no_cookie_and_a_save_sets_only_the_signed_list(client: FlaskClient,
                                                                                  session: Session) -> None:
    listing = _three(client, session)[0]
    for path in (SEARCH, f"/therapists/{listing.slug}", "/shortlist", "/privacy"):
        response = client.get(path)
        assert response.status_code == 200 and "Set-Cookie" not in response.headers, path
    response = _save(client, listing.id)
    assert response.status_code == 303 and response.headers["Location"] == f"{SEARCH}#listing-{listing.id}"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("shortlist=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert len(response.headers.getlist("Set-Cookie")) == 1  # no session cookie beside it
    page = client.get(SEARCH).get_data(as_text=True)
    cards = {card.split('"', 1)[0]: card for card in page.split('<li class="card" id="listing-')[1:]}
    assert 'aria-pressed="true"' in cards.pop(str(listing.id))
    assert cards and all('aria-pressed="false"' in card for card in cards.values())
    assert '<span class="count" data-shortlist-count> (1)</span>' in page
    assert 'aria-pressed="true"' in client.get(f"/therapists/{listing.slug}").get_data(as_text=True)


def test_the_comparison_shows_each_saved_listings_fields_as_the_rows_hold_them(client: FlaskClient,
                                                                              session: Session) -> None:
    chosen = _three(client, session)
    for listing in chosen:
        assert _save(client, listing.id).status_code == 303
        listing.sliding_scale = True  # one row alike for certain, whatever the sample gave them
    session.commit()
    page = client.get("/shortlist", query_string={"location": "10001"}).get_data(as_text=True)
    columns = _columns(page)
    assert list(columns) == [f"{listing.name} {listing.credentials}".strip() for listing in chosen]
    origin = postcodes.lookup("10001")
    for listing, rows in zip(chosen, columns.values(), strict=True):
        plain = {label.removesuffix(" [same]"): value for label, value in rows.items()}
        miles = _miles(origin.lat, origin.lon, *_point(listing))
        assert plain["Distance"] == (f"{miles:.1f} miles from 10001 ({origin.name})" if listing.in_person
                                     else "Online only")
        assert plain["Fee per session"] == _fee(listing)
        assert plain["Sliding scale"] == ("Yes" if listing.sliding_scale else "No")
        assert plain["Sessions"] == {(True, True): "In person and online", (True, False): "In person",
                                     (False, True): "Online only"}[listing.in_person, listing.telehealth]
        assert plain["Insurance"] == (_names("insurance", listing.insurance) or "None listed")
        assert plain["Approaches"] == _names("modality", listing.modalities)
        assert plain["Specialties"] == _names("specialty", listing.specialties)
        assert plain["Languages"] == _names("language", listing.languages)
        assert plain["Communities"] == (_names("community", listing.communities) or "None listed")
        on = listing.availability_confirmed_on
        if on is not None and plain["Availability"].startswith(("Accepting", "Not accepting")):
            assert plain["Availability"].endswith(f"({on:%B} {on.day}, {on.year})")
        for contact in filter(None, (listing.phone, listing.email)):
            assert html.escape(contact) in page or contact.replace("@", "%40") in page
    marks: dict[str, list[tuple[str, bool]]] = {}
    for rows in columns.values():
        for label, value in rows.items():
            marks.setdefault(label.removesuffix(" [same]"), []).append((value, label.endswith(" [same]")))
    assert all(marked for _, marked in marks["Sliding scale"])
    for name, seen in marks.items():
        alike = len({value for value, _ in seen}) == 1
        assert all(marked == alike for _, marked in seen), (name, seen)


def test_a_share_link_shows_the_same_comparison_to_anyone(app: Flask, client: FlaskClient, session: Session) -> None:
    chosen = _three(client, session)
    for listing in chosen:
        _save(client, listing.id)
    page = client.get("/shortlist", query_string={"location": "10001"}).get_data(as_text=True)
    share = html.unescape(re.search(r'id="share-url" class="share-url" type="text" readonly value="([^"]+)"',
                                    page).group(1))
    assert share == "http://localhost/shortlist?ids=" + ",".join(str(listing.id) for listing in chosen) \
        + "&location=10001"
    stranger = app.test_client()
    shared = stranger.get(share.removeprefix("http://localhost")).get_data(as_text=True)
    assert _columns(shared) == _columns(page) and "A shared shortlist" in shared
    assert 'aria-pressed="false"' in shared  # the stranger's own list is empty: Save, not Remove


def test_a_changed_cookie_is_ignored_and_an_eleventh_save_is_refused(client: FlaskClient, session: Session) -> None:
    listings = list(session.scalars(select(Listing).where(Listing.published).order_by(Listing.id).limit(11)))
    _save(client, listings[0].id)
    value = client.get_cookie("shortlist").value
    forged = value.replace(value[2], "A" if value[2] != "A" else "B", 1)
    client.set_cookie("shortlist", forged)
    assert "Nothing saved yet" in client.get("/shortlist").get_data(as_text=True)
    assert client.get(SEARCH).status_code == 200
    for listing in listings[:10]:
        assert _save(client, listing.id).status_code == 303
    refused = _save(client, listings[10].id)
    assert refused.status_code == 409 and "Set-Cookie" not in refused.headers
    assert f"Your shortlist is full: it holds 10 therapists. Remove one to save {html.escape(listings[10].name)}." \
        in refused.get_data(as_text=True)
    answer = client.post("/shortlist", data={"listing": str(listings[10].id)},
                         headers={**ORIGIN, "Accept": "application/json"})
    assert answer.status_code == 409 and answer.get_json()["full"] is True and answer.get_json()["count"] == 10
    assert _save(client, listings[0].id, "remove").status_code == 303
    assert _save(client, listings[10].id).status_code == 303
    assert len(_columns(client.get("/shortlist").get_data(as_text=True))) == 10


def test_a_listing_taken_down_since_it_was_saved_shows_as_no_longer_listed(client: FlaskClient,
                                                                            session: Session) -> None:
    kept, unpublished, deleted = _three(client, session)
    for listing in (kept, unpublished, deleted):
        _save(client, listing.id)
    unpublished.published = False
    session.delete(deleted)
    session.commit()
    page = client.get("/shortlist")
    assert page.status_code == 200
    headings = re.findall(r'<h2 id="name-(\d+)">(.*?)</h2>', page.get_data(as_text=True))
    assert [(int(listing_id), "No longer listed" if "No longer" in text else "listed") for listing_id, text in
            headings] == [(kept.id, "listed"), (unpublished.id, "No longer listed"), (deleted.id, "No longer listed")]
    assert _save(client, deleted.id, "remove").status_code == 303  # removable, though gone
    assert _save(client, unpublished.id).status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Origin": "https://elsewhere.example"}, {"Origin": "null"},
                                     {"Referer": "https://elsewhere.example/page"}],
                         ids=["none", "other-origin", "null-origin", "other-referer"])
def test_only_this_sites_pages_can_save(client: FlaskClient, session: Session, headers: dict[str, str]) -> None:
    listing = _three(client, session)[0]
    response = client.post("/shortlist", data={"listing": str(listing.id)}, headers=headers)
    assert response.status_code == 403 and "Set-Cookie" not in response.headers
    cleared = client.post("/shortlist/clear", headers=headers)
    assert cleared.status_code == 403
    assert _save(client, listing.id, Referer=f"http://localhost{SEARCH}").status_code == 303


def test_bad_saves_are_told_what_is_wrong(client: FlaskClient) -> None:
    # Past PostgreSQL's integer ("3000000000"), and digits that are not ASCII ("²", "٣"), name no listing.
    for value in ("", "abc", "-1", "1" * 40, "3000000000", "99999999999", "²", "٣"):
        response = client.post("/shortlist", data={"listing": value}, headers=ORIGIN)
        assert response.status_code == 400, value
    assert client.post("/shortlist", data={"listing": "999999"}, headers=ORIGIN).status_code == 404
    answer = client.post("/shortlist", data={"listing": "999999"}, headers={**ORIGIN, "Accept": "application/json"})
    assert answer.status_code == 404 and answer.get_json()["ok"] is False and "no longer published" in \
        answer.get_json()["message"]
    for ids in ("1,x,,99999999999999999999,-3", "3000000000", "%C2%B2", ",".join(["7"] * 5000)):
        assert client.get(f"/shortlist?ids={ids}").status_code == 200, ids[:40]


def test_pages_say_they_vary_by_cookie(client: FlaskClient) -> None:
    for path in (SEARCH, "/shortlist", "/privacy", "/match"):
        assert "Cookie" in client.get(path).headers.get("Vary", ""), path


def test_the_wide_comparison_grid_has_a_row_for_every_line() -> None:
    # The stylesheet spans each column over a fixed number of grid rows (no inline style under the CSP).
    rows = int(re.search(r"grid-template-rows: repeat\((\d+), auto\)", (REPO / "static" / "style.css").read_text())
               .group(1))
    assert len(comparison([], None)) + 3 <= rows
