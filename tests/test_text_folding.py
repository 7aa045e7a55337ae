"""Accents in free text: accented and plain spellings find the same listings, in names, cities and bios alike, and a
snippet shows the listing's own spelling with the matched word marked.

The 2,000-listing sample writes no accent (its names are plain and its cities "Montreal", "Quebec"), so the sample
tests search it with accented spellings; the tests that need accented listings write some first. Expected ids come
from the tests' own text oracle, which drops accents its own way (tests/text_oracle.py).
"""

from __future__ import annotations

import unicodedata

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

import text_oracle
from directory.models import Listing
from directory.search.text import snippet, text_query


def found(client: FlaskClient, q: str) -> tuple[set[str], int]:
    """Every id a free-text search finds, with the total it reports."""
    ids: set[str] = set()
    page = 1
    while True:
        response = client.get("/api/v1/search", query_string={"q": q, "per_page": 100, "page": page})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        ids |= {r["id"] for r in body["results"]}
        if page * 100 >= body["total"]:
            return ids, body["total"]
        page += 1


def oracle(session: Session, q: str) -> set[str]:
    """The published listings whose words hold the query's, read by the text oracle."""
    return {listing.external_id for listing in session.scalars(select(Listing).where(Listing.published))
            if text_oracle.matches(q, listing)}


DECOMPOSED_MONTREAL = "Montre\u0301al"  # e + a combining acute accent, as some keyboards and files write it


@pytest.mark.parametrize(("plain", "accented"), [
    ("Montreal", "Montréal"), ("montreal", "MONTRÉAL"), ("Montreal", DECOMPOSED_MONTREAL), ("Quebec", "Québec"),
    ("Chloe", "Chloé"), ("Montreal depression", "Montréal dépression"),
])
def test_accented_spellings_find_what_the_plain_ones_find(plain: str, accented: str, shared_app: Flask,
                                                          shared_client: FlaskClient) -> None:
    # In the sample (issue 23), "Montreal" found 19 listings and "Montréal" none.
    plain_ids, plain_total = found(shared_client, plain)
    accented_ids, accented_total = found(shared_client, accented)
    assert plain_ids and accented_total == plain_total
    assert accented_ids == plain_ids
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        assert oracle(session, accented) == plain_ids


def test_an_accented_first_name_with_a_last_name_finds_what_the_plain_one_finds(shared_app: Flask,
                                                                                shared_client: FlaskClient) -> None:
    # A whole name, as "Chloé Tremblay" was: whichever Chloe the sample holds.
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        name = session.scalars(select(Listing.name).where(Listing.published, Listing.name.startswith("Chloe "))
                               .order_by(Listing.id)).first()
    assert name is not None, "the sample should hold a Chloe"
    test_accented_spellings_find_what_the_plain_ones_find(name, name.replace("Chloe", "Chloé"), shared_app,
                                                          shared_client)


def test_a_snippet_marks_an_accented_word_found_by_its_plain_spelling_and_shows_it_as_written() -> None:
    bio = "Trained at the Université de Montréal; sessions in French near Saint-Jérôme."
    for q in ("universite montreal jerome", "Université Montréal Jérôme", "UNIVERSITE MONTRE\u0301AL JEROME"):
        pieces = snippet(bio, text_query(q).stems)
        assert [piece for piece, marked in pieces if marked] == ["Université", "Montréal", "Jérôme"], q
        assert "".join(piece for piece, _ in pieces) == bio
    # A bio stored decomposed is shown composed: the same letters, each accent part of its letter.
    decomposed = unicodedata.normalize("NFD", bio)
    pieces = snippet(decomposed, text_query("Montreal").stems)
    assert [piece for piece, marked in pieces if marked] == ["Montréal"]
    assert "".join(piece for piece, _ in pieces) == bio


# Listings given accented names, cities and bios (one decomposed) before the searches below.
ACCENTED = {
    "Chloé Gagnon": ("Montréal", "Sessions in English or French; she trained at the Université de Montréal."),
    "Éloïse Côté": ("Saint-Jérôme", "Éloïse works with couples in Saint-Jérôme and online."),
    unicodedata.normalize("NFD", "Zoé Bélanger"): ("Québec", unicodedata.normalize("NFD", "Based in Québec.")),
}
PAIRS = [
    ("Chloe Gagnon", "Chloé Gagnon"), ("Eloise", "Éloïse"), ("Cote", "Côté"), ("Jerome", "Jérôme"),
    ("Belanger", "Bélanger"), ("Montreal", "Montréal"), ("universite", "Université"), ("Quebec", "Québec"),
]


def test_listings_written_with_accents_are_found_with_and_without_them(client: FlaskClient, session: Session) -> None:
    montreal = session.scalars(select(Listing).where(Listing.published, Listing.city == "Montreal")
                               .order_by(Listing.id)).all()
    before, _ = found(client, "Montreal")
    assert len(montreal) > 4 and before >= {listing.external_id for listing in montreal}
    for listing in montreal[::2]:  # half of Montreal's listings now spell it with its accent
        listing.city = "Montréal"
    others = session.scalars(select(Listing).where(Listing.published, Listing.city != "Montreal")
                             .order_by(Listing.id).limit(len(ACCENTED))).all()
    written = {}
    for listing, (name, (city, bio)) in zip(others, ACCENTED.items(), strict=True):
        listing.name, listing.city, listing.bio = name, city, f"{bio} {listing.bio}"
        written[unicodedata.normalize("NFC", name)] = listing.external_id
    session.commit()

    assert found(client, "Montreal")[0] == found(client, "Montréal")[0] == before | {written["Chloé Gagnon"]}
    for plain, accented in PAIRS:
        plain_ids, plain_total = found(client, plain)
        assert plain_ids and found(client, accented) == (plain_ids, plain_total), (plain, accented)
        assert oracle(session, plain) == oracle(session, accented) == plain_ids, (plain, accented)
    assert found(client, "Chloe Gagnon")[0] == {written["Chloé Gagnon"]}
    assert found(client, "eloise cote")[0] == {written["Éloïse Côté"]}
    assert found(client, "zoe belanger")[0] == {written["Zoé Bélanger"]}

    # The page marks the bio's own spelling of a word searched without its accents.
    html = client.get("/", query_string={"q": "Eloise Saint-Jerome"}).get_data(as_text=True)
    assert "<mark>Éloïse</mark>" in html and "<mark>Jérôme</mark>" in html
    body = client.get("/api/v1/search", query_string={"q": "Eloise Saint-Jerome"}).get_json()
    assert [r["id"] for r in body["results"]] == [written["Éloïse Côté"]]
    assert body["results"][0]["snippet"].startswith("Éloïse works with couples in Saint-Jérôme")
