"""The search contract's independent oracle: the world its tests search and a brute-force answer to any search of it.

Also the seeded mix of searches, paging through the API, and the check of an empty search's ways out.

The world is the sample with who each therapist sees, the communities their practice affirms, their gender and
their fees drawn afresh here (whatever the sample itself holds), so that every filter meets every case the contract
names: genders as written that name none, listings that give no fee or only a highest one, and therapists on both
sides of the Detroit-Windsor and Buffalo-Niagara borders, whose fees are in different currencies. It is built once
a run (the fixtures contract_app and rows in conftest.py): no test changes its listings.
"""

from __future__ import annotations

import datetime as dt
import html
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from flask.testing import FlaskClient
from geopy.distance import great_circle
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory.geo import Place, postcodes
from directory.listings import make_slug
from directory.models import Listing
from directory.vocabulary import vocabulary
from helpers import SAMPLE_DAY

KINDS = {"modality": "modalities", "specialty": "specialties", "language": "languages", "insurance": "insurance",
         "age": "ages", "client_type": "client_types", "community": "communities", "gender": "gender"}

# The new fields, drawn by the test's own hand: the slugs are written out here, not read from the vocabulary, so a
# term renamed or dropped there fails the world's check (test_search_contract_filters.py) rather than vanishing from
# the tests.
AGES = ["children", "teens", "young-adults", "adults", "older-adults"]
CLIENT_TYPES = ["individuals", "couples", "families", "groups"]
COMMUNITIES = ["lgbtq-affirming", "trans-affirming", "bipoc-centered", "veterans", "neurodivergent-affirming",
               "disability-affirming", "immigrants-refugees", "faith-christian", "faith-jewish", "faith-muslim",
               "faith-hindu", "faith-buddhist", "faith-sikh"]
GENDERS = ["woman", "man", "non-binary"]
# Genders as written that name no term: kept on the listing, never a filter's match. Some look like a term.
UNMAPPED_GENDERS = ["Two-Spirit", "Woman (she/her)", "femme", "questioning", "man/woman"]
# Therapists across a border from a big city, within its default radius (25 miles): Windsor is 9 miles from
# downtown Detroit, Niagara Falls (Ontario) 17 from Buffalo; and a few on the US side of each, near the Canadian city.
BORDER = [("N9A 1A1", 6), ("N8X 1K2", 4), ("N9B 3P4", 4), ("N8W 1A1", 3), ("L2E 6S4", 4), ("L2G 3V9", 3),
          ("48226", 4), ("48201", 3), ("14202", 4), ("14301", 3)]
BORDER_CITIES = ["48226", "14202", "N9A 1A1", "L2E 6S4"]  # downtown Detroit and Buffalo, Windsor, Niagara Falls
WORLD_SEED = 24


def _fees(rng: random.Random) -> tuple[int | None, int | None]:
    """fee_min and fee_max: most give both (some the same), some only one, some none; on tens and, rarely, not."""
    low = rng.randrange(60, 260, 10) + (rng.choice([1, 5, 9]) if rng.random() < 0.1 else 0)
    high = low + rng.choice([0, 0, 10, 20, 40, 60, 100])
    roll = rng.random()
    if roll < 0.12:
        return None, None
    if roll < 0.22:
        return None, high
    if roll < 0.28:
        return low, None
    if roll < 0.30:
        return 0, high  # free at the bottom of a sliding scale
    return low, high


def _decorate(listing: Listing, rng: random.Random) -> None:
    listing.ages = rng.sample(AGES, rng.choice([0, 1, 1, 2, 2, 3]))
    listing.client_types = rng.sample(CLIENT_TYPES, rng.choice([0, 1, 1, 2, 3]))
    listing.communities = rng.sample(COMMUNITIES, rng.choice([0, 0, 1, 1, 2]))
    roll = rng.random()
    if roll < 0.08:
        listing.gender, listing.gender_unmapped = "", rng.choice(UNMAPPED_GENDERS)
    else:
        listing.gender, listing.gender_unmapped = rng.choice([*GENDERS, "woman", "woman", "man", ""]), ""
    listing.fee_min, listing.fee_max = _fees(rng)
    listing.sliding_scale = rng.random() < 0.3


def _border_listings(rng: random.Random) -> Iterator[Listing]:
    number = 0
    for code, count in BORDER:
        place = postcodes.lookup(code)
        for _ in range(count):
            number += 1
            external_id, name = f"border-{number:03d}", f"Border Therapist {number:03d}"
            in_person = rng.random() < 0.85
            listing = Listing(
                external_id=external_id, slug=make_slug(name, place.name, external_id), name=name,
                country=place.country, region=place.region, postcode=place.postcode, city=place.name.split(",")[0],
                license_region=place.region, latitude=round(place.lat + rng.uniform(-0.01, 0.01), 5),
                longitude=round(place.lon + rng.uniform(-0.01, 0.01), 5), modalities=["cbt"],
                specialties=["anxiety"], languages=["english"], insurance=[], in_person=in_person,
                telehealth=not in_person or rng.random() < 0.5, accepting_new_clients=rng.random() < 0.8,
                availability_confirmed_on=SAMPLE_DAY - dt.timedelta(days=rng.randrange(0, 120)),
                bio="Fictional listing near a border.", published=True)
            _decorate(listing, rng)
            yield listing


def decorate_world(session: Session) -> None:
    """Draw the new fields of every listing afresh and add the border listings, in one commit (which indexes them)."""
    rng = random.Random(WORLD_SEED)
    for listing in session.scalars(select(Listing).order_by(Listing.id)):
        _decorate(listing, rng)
    session.add_all(list(_border_listings(rng)))
    session.commit()


@dataclass
class Row:
    """What the brute force needs of a listing, read straight from the database."""

    id: int
    external_id: str
    name: str
    published: bool
    lat: float
    lon: float
    terms: dict[str, set[str]]
    telehealth: bool
    in_person: bool
    accepting: bool
    confirmed_on: dt.date | None
    licence: str
    postcode: str
    country: str
    fee_min: int | None
    fee_max: int | None
    sliding_scale: bool
    gender_unmapped: str


def _terms(value: list[str] | str) -> set[str]:
    # Gender is one slug or "": a listing that says none has no gender term.
    return ({value} if value else set()) if isinstance(value, str) else set(value)


def read_rows(session: Session) -> list[Row]:
    """Every listing as the brute force needs it, in id order."""
    result = []
    for listing in session.scalars(select(Listing).order_by(Listing.id)):  # random choices depend on order
        if listing.latitude is not None and listing.longitude is not None:
            lat, lon = listing.latitude, listing.longitude
        else:
            place = postcodes.lookup(listing.postcode)
            lat, lon = place.lat, place.lon
        result.append(Row(
            listing.id, listing.external_id, listing.name, listing.published, lat, lon,
            {kind: _terms(getattr(listing, attr)) for kind, attr in KINDS.items()},
            listing.telehealth, listing.in_person, listing.accepting_new_clients,
            listing.availability_confirmed_on, listing.license_region,
            listing.postcode, listing.country, listing.fee_min, listing.fee_max, listing.sliding_scale,
            listing.gender_unmapped,
        ))
    return result


def availability(row: Row, today: dt.date) -> str:
    """A listing's availability on the day `today`: accepting or not accepting when confirmed at most 90 days
    before it (and not after), else unconfirmed."""
    if row.confirmed_on is None or not today - dt.timedelta(days=90) <= row.confirmed_on <= today:
        return "unconfirmed"
    return "accepting" if row.accepting else "not_accepting"


STANDING = {"accepting": 0, "unconfirmed": 1, "not_accepting": 2}  # the contract's order within a group


def standing(row: Row, today: dt.date) -> int:
    """Where a listing's availability puts it in the order on the day `today`: confirmed accepting, then
    unconfirmed, then confirmed not accepting."""
    return STANDING[availability(row, today)]


def lowest_fee(row: Row) -> int | None:
    """The least a session costs as the listing says: fee_min, else fee_max when only that is given; None when it
    gives no fee."""
    return row.fee_min if row.fee_min is not None else row.fee_max


def has_a_chosen_term(row: Row, kind: str, params: dict[str, Any]) -> bool:
    """Whether a listing passes the filter of one kind: it has one of the terms chosen (any listing, when none is)."""
    return not params.get(kind) or bool(row.terms[kind] & set(params[kind]))


def facet_counts(base: list[Row], params: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The disjunctive facet counts: for each term of each kind, how many listings have it among `base` (those that
    pass every filter but the terms') that pass the terms chosen of every other kind."""
    facets = {}
    for kind in KINDS:
        pool = [r for r in base if all(has_a_chosen_term(r, other, params) for other in KINDS if other != kind)]
        facets[kind] = {slug: sum(1 for r in pool if slug in r.terms[kind]) for slug in vocabulary.slugs(kind)}
    return facets


def brute_force(rows: list[Row], params: dict[str, Any], today: dt.date = SAMPLE_DAY, origin: Place | None = None
                ) -> tuple[list[tuple[str, float | None]], dict[str, dict[str, int]]]:
    """Every result (external id, rounded distance) in contract order, and the disjunctive facet counts of every
    kind, on the day `today` (an accepting claim counts when confirmed at most 90 days before it, and not after),
    from `origin` when given, else from the postcode. A fee ceiling keeps a listing whose lowest fee (fee_min, else
    fee_max) is at or under it, never one that gives no fee, and with an origin only the origin's country (the
    ceiling is in its currency); like accepting and the sliding scale, it narrows what the facets count. Without
    text every relevance is equal: by distance the order is in-person first (with format=any), then standing,
    distance, name, id; by relevance standing, distance, name, id."""
    oldest_counted = today - dt.timedelta(days=90)
    if origin is None:
        origin = postcodes.lookup(params["postcode"]) if params.get("postcode") else None
    fmt = params.get("format", "any")
    units = params.get("units") or ("km" if origin and origin.country == "CA" else "mi")
    radius = float(params.get("radius") or (40 if units == "km" else 25))

    def distance(row: Row) -> float:
        measured = great_circle((origin.lat, origin.lon), (row.lat, row.lon))
        return measured.km if units == "km" else measured.miles

    def base_match(row: Row) -> bool:
        if not row.published:
            return False
        if params.get("accepting") == "1" and not (
                row.accepting and row.confirmed_on and oldest_counted <= row.confirmed_on <= today):
            return False
        if params.get("sliding_scale") == "1" and not row.sliding_scale:
            return False
        if params.get("max_fee") is not None:
            fee = lowest_fee(row)
            if fee is None or fee > int(params["max_fee"]) or (origin is not None and row.country != origin.country):
                return False
        if origin is None:
            return fmt == "any" or (row.in_person if fmt == "in_person" else row.telehealth)
        in_person = fmt in ("any", "in_person") and row.in_person and distance(row) <= radius
        remote = fmt in ("any", "telehealth") and row.telehealth and row.licence == origin.region
        return in_person or remote

    base = [r for r in rows if base_match(r)]
    matched = [r for r in base if all(has_a_chosen_term(r, kind, params) for kind in KINDS)]
    if origin is not None:
        def online_only(row: Row) -> bool:  # with format=any, in-person matches come first
            return fmt == "any" and not (row.in_person and distance(row) <= radius)

        if params.get("sort", "distance") == "distance":
            matched.sort(key=lambda r: (online_only(r), standing(r, today), distance(r), r.name.casefold().encode(),
                                        r.id))
        else:
            matched.sort(key=lambda r: (standing(r, today), distance(r), r.name.casefold().encode(), r.id))
        results = [(r.external_id, round(distance(r), 1)) for r in matched]
    else:
        matched.sort(key=lambda r: (standing(r, today), r.name.casefold().encode(), r.id))
        results = [(r.external_id, None) for r in matched]
    return results, facet_counts(base, params)


def fetch_all(client: FlaskClient, params: dict[str, Any]) -> tuple[list[tuple[str, float | None]], dict, int]:
    """Page through the API; returns every result, the facets of page 1, and the reported total."""
    per_page = params.get("per_page", 20)
    page, results, facets, total = 1, [], None, None
    while True:
        response = client.get("/api/v1/search", query_string={**params, "page": page})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        facets = facets or body["facets"]
        total = body["total"] if total is None else total
        assert body["total"] == total
        results += [(r["id"], r["distance"]) for r in body["results"]]
        if page * per_page >= total:
            return results, facets, total
        assert len(body["results"]) == per_page
        page += 1


def random_params(rng: random.Random, rows: list[Row]) -> dict[str, Any]:
    """One search of the seeded mix, drawn from `rng` (each seed's draws in a fixed order: see the comments)."""
    params: dict[str, Any] = {}
    # A listing's own postcode (in any accepted spelling) or a rural one, so most combinations have results.
    sample = [r for r in rows if not r.external_id.startswith("border-")]  # as before the border listings came
    postcode = rng.choice(sample).postcode if rng.random() < 0.8 else rng.choice(["59601", "05401", "S4P 3Y2", "99501"])
    params["postcode"] = rng.choice([postcode, postcode.lower().replace(" ", ""), f" {postcode} "])
    radius = rng.choice([None, 5, 10, 25, 50, 100, round(rng.uniform(1, 500), 2)])
    if radius is not None:
        params["radius"] = radius
    if rng.random() < 0.3:
        params["units"] = rng.choice(["mi", "km"])
    for kind in ("modality", "specialty", "language", "insurance"):
        if rng.random() < {"modality": 0.4, "specialty": 0.4, "language": 0.1, "insurance": 0.1}[kind]:
            params[kind] = rng.sample(vocabulary.slugs(kind), rng.randint(1, 3))
    if rng.random() < 0.25:
        params["accepting"] = "1"
    params["format"] = rng.choice(["any", "any", "in_person", "telehealth"])
    params["per_page"] = rng.choice([5, 7, 20, 50])
    if rng.random() < 0.3:  # drawn last, so the earlier draws of each seed stay what they were
        params["sort"] = rng.choice(["distance", "relevance"])
    # The filters of who it is for, identity and cost, drawn after those: none, one or two of them, so that the
    # answers stay as often long, short and empty as before.
    terms = {"age": AGES, "client_type": CLIENT_TYPES, "community": COMMUNITIES, "gender": GENDERS}
    for name in rng.sample([*terms, "max_fee", "sliding_scale"], rng.choice([0, 0, 1, 1, 2])):
        if name in terms:
            params[name] = rng.sample(terms[name], rng.randint(1, 2))
        elif name == "max_fee":  # a ceiling exactly on someone's fee, a dollar either side of one, or an extreme
            fee = rng.choice([fee for r in rows if (fee := lowest_fee(r)) is not None])
            params["max_fee"] = rng.choice([fee, fee, max(fee - 1, 0), fee + 1, 0, 100_000])
        else:
            params["sliding_scale"] = "1"
    if rng.random() < 0.15:  # a city by the border, some of whose radius is the other country, often with a ceiling
        params["postcode"] = rng.choice(BORDER_CITIES)
        if "max_fee" not in params and rng.random() < 0.6:
            params["max_fee"] = rng.choice([100, 150, 200])
    return params


SEEDS = range(60)


def check_ways_out(client: FlaskClient, rows: list[Row], params: dict[str, Any],
                   removals: dict[str, dict[str, Any]], at_least: int) -> None:
    """The page's ways out of an empty search: each offered change (a wider radius, in person or online, and each of
    `removals`, a label and the parameters it changes) is counted as the brute force counts it on the changed
    parameters, and each link opens a search finding that many."""
    assert brute_force(rows, params)[0] == []
    page = client.get("/", query_string=params).get_data(as_text=True)
    offered = re.findall(r'<li><a href="/\?([^"]+)">(\d+) ([^<]+)</a></li>', page.split('class="dead-end"')[1])
    changes = {f"within {radius} miles": {"radius": radius} for radius in ("10", "25")}
    changes |= {"in person or online": {"format": "any"}, **removals}
    expected = {label: len(brute_force(rows, {**params, **changed})[0]) for label, changed in changes.items()}
    assert len(offered) >= at_least and {label: int(count) for _, count, label in offered} == {
        label: count for label, count in expected.items() if count}
    for query, count, _ in offered:
        linked = parse_qs(html.unescape(query))
        assert client.get("/api/v1/search", query_string=linked).get_json()["total"] == int(count)
