"""The PostGIS yardstick (issue 33): the search API as an engineer would build it on PostgreSQL 15 + PostGIS, to
measure the project against over HTTP. One table loaded with COPY; a geography point with a GiST index narrows a
radius search (`ST_DWithin`), then bench/baseline.py's own great-circle formula (geopy's, computed by the same C
library) decides the radius and the order, so ties order as the project's do; the vocabulary filters are one
`text[]` of "kind:slug" terms under a GIN index; free text is an english tsvector under GIN, matched with
`websearch_to_tsquery` and ranked with `ts_rank`. Each search is one SQL statement returning the total
(`count(*) OVER ()`) and the page of ids, distances and stored cards, run by one PostgreSQL process without JIT (as
the project answers in one thread). The timed import is COPY, then ordering the table by the GiST index (CLUSTER),
the other indexes and VACUUM ANALYZE.

    app: gunicorn -w 1 bench.postgis:app   (POSTGIS_DSN names the database)

The answer has the project's keys and result fields except these, so that the comparison is honest about what the
yardstick skips: no `facets` (the project counts every filter value over the matches), no `suggestion` and no
`filter_offers` (nor text that is only a filter's word turned into that filter; the mix's words are not), and each
result's `snippet` is the bio's opening even for text (the project centres it on the first matched word). A page
past the last one costs a second statement, for the total: `count(*) OVER ()` has no row to ride on (the mix asks
for none). Requests are parsed and postcodes resolved by the project's own code, as the project does.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask, jsonify, request, url_for

from bench.baseline import DISTANCE as SQLITE_DISTANCE
from bench.baseline import STANDING as SQLITE_STANDING
from bench.baseline import standing_and_cost
from directory.availability import Availability, window_on
from directory.geo import EARTH_RADIUS_KM, KM_PER_MILE, Place, to_km
from directory.models import Listing
from directory.search.documents import listing_document
from directory.search.index.fields import licence_term
from directory.search.request import InvalidRequest, SearchRequest, parse
from directory.search.text import snippet, text_query
from directory.vocabulary import KINDS


def _psycopg(sql: str) -> str:
    """bench/baseline.py's SQLite `:name` parameters in psycopg's `%(name)s` style (a `::` cast is left alone)."""
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)


# The baseline's expressions themselves, so that both yardsticks compute the same numbers and orders.
DISTANCE = _psycopg(SQLITE_DISTANCE)
STANDING = _psycopg(SQLITE_STANDING)
AVAILABILITY: dict[int, Availability] = {0: "accepting", 1: "unconfirmed", 2: "not_accepting"}  # by standing
# ST_DWithin only narrows: PostGIS's sphere (6371008.77 m) is a hair smaller than the project's (6371009 m), so the
# prefilter reaches a little beyond the radius and the formula decides.
REACH = 1.0001

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS postgis;
DROP TABLE IF EXISTS listings;
CREATE TABLE listings (
    id int NOT NULL, lat float8, lon float8, sin_lat float8, cos_lat float8, rad_lon float8,
    geog geography(Point, 4326), in_person bool, telehealth bool, accepting bool, confirmed int, licence text,
    sortname bytea, fee int, sliding bool, country text, terms text[], body text,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED, card jsonb);
-- A search reads every matching row's tsvector, and a page's 20 cards: the bio and the cards go out of line first,
-- so that the tsvector stays in the row (out of line, national text took 0.47 s, most of it in TOAST lookups).
ALTER TABLE listings ALTER body SET STORAGE EXTERNAL, ALTER card SET STORAGE EXTERNAL, ALTER tsv SET STORAGE MAIN;
"""
COLUMNS = ("id", "lat", "lon", "sin_lat", "cos_lat", "rad_lon", "geog", "in_person", "telehealth", "accepting",
           "confirmed", "licence", "sortname", "fee", "sliding", "country", "terms", "body", "card")
# The indexes, then VACUUM ANALYZE, as a bulk load is finished. The table is first put in the GiST index's order, so
# that the listings near a place, and those licensed in one state, share pages: r5's p95 fell from 44 to 24 ms.
INDEXES = (
    "CREATE INDEX listings_geog ON listings USING gist (geog)",
    "CLUSTER listings USING listings_geog",
    "ALTER TABLE listings ADD PRIMARY KEY (id)",
    "CREATE INDEX listings_tsv ON listings USING gin (tsv)",
    "CREATE INDEX listings_terms ON listings USING gin (terms)",
    "CREATE INDEX listings_licence ON listings (licence, telehealth)",
    "VACUUM ANALYZE listings",
)


def card(listing: Listing) -> dict[str, Any]:
    """What the project's API says of a result that does not depend on the search (inside a request context)."""
    confirmed = listing.availability_confirmed_on
    return {
        "id": listing.external_id, "slug": listing.slug, "name": listing.name, "credentials": listing.credentials,
        "city": listing.city, "region": listing.region, "postcode": listing.postcode, "country": listing.country,
        "modalities": listing.modalities, "specialties": listing.specialties, "telehealth": listing.telehealth,
        "in_person": listing.in_person, "accepting_new_clients": listing.accepting_new_clients,
        "availability_confirmed_on": confirmed.isoformat() if confirmed else None,
        "url": url_for("public.profile", slug=listing.slug),
        "snippet": "".join(piece for piece, _ in snippet(listing.bio, frozenset())),
    }


def _bool(value: bool) -> str:
    return "t" if value else "f"


def _row(listing: Listing, doc: dict[str, Any]) -> tuple[Any, ...]:
    """A listing's COPY row, in COLUMNS' order, from its search document (the project's `listing_document`)."""
    flags = set(doc["flag"].split())
    lat, lon = doc["lat"], doc["lon"]
    return (listing.id, repr(lat), repr(lon), repr(math.sin(math.radians(lat))), repr(math.cos(math.radians(lat))),
            repr(math.radians(lon)), f"SRID=4326;POINT({lon!r} {lat!r})", _bool("in_person" in flags),
            _bool("telehealth" in flags), _bool("accepting" in flags), doc["confirmed"], doc["licence"],
            "\\x" + doc["sortname"].hex(), doc["fee"], _bool(listing.sliding_scale), listing.country,
            "{" + ",".join(f"{kind}:{slug}" for kind in KINDS for slug in doc[kind].split()) + "}", doc["text"],
            json.dumps(card(listing)))


def prepare(path: Path, listings: Iterable[Listing]) -> int:
    """Write the searchable listings as a COPY file (CSV); returns how many. Inside a request context, for URLs."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        for listing in listings:
            if (doc := listing_document(listing)) is not None:
                writer.writerow(_row(listing, doc))
                count += 1
    return count


def load(dsn: str, path: Path) -> dict[str, float]:
    """Load a prepared file into a fresh `listings` table of the database `dsn` with COPY, then order it and build
    the GiST, GIN and btree indexes and VACUUM ANALYZE. Returns the seconds of each: {"copy_s", "indexes_s"} (the
    import yardstick; preparing the file, which reads the project's database, is not timed)."""
    # Bounded like the rest of the benchmark: no step of a load may take over 30 minutes.
    with psycopg.connect(dsn, autocommit=True, options="-c statement_timeout=1800000") as conn:
        conn.execute(SCHEMA)
        started = time.monotonic()
        with conn.cursor() as cur, cur.copy(f"COPY listings ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)") \
                as copy, path.open("rb") as source:
            while block := source.read(1 << 20):
                copy.write(block)
        copied = time.monotonic()
        for step in INDEXES:  # one at a time: VACUUM refuses to run inside a string of statements
            conn.execute(step)
        return {"copy_s": copied - started, "indexes_s": time.monotonic() - copied}


def _filters(request: SearchRequest, origin: Place | None, params: dict[str, Any]) -> list[str]:
    """The conditions of the vocabulary, availability and cost filters."""
    where = []
    for kind, values in request.filters.items():
        if values:  # values of one filter are any of them: overlap, which GIN answers as `@>` does for one value
            params[kind] = [f"{kind}:{value}" for value in values]
            where.append(f"d.terms && %({kind})s::text[]")
    return where + standing_and_cost(request, origin, params, lambda name: f"%({name})s")


def _text(request: SearchRequest, params: dict[str, Any]) -> tuple[str | None, str]:
    """(the text's match condition or None, its relevance expression)."""
    text = text_query(request.q)
    if text.query is None:
        return None, "0.0"
    params["q"] = request.q
    match = "d.tsv @@ websearch_to_tsquery('english', %(q)s)"
    if text.terms:  # text naming an approach or a specialty also matches the listings that have it, as the project's
        params["named"] = [f"{kind}:{slug}" for kind, slug in text.terms]
        match = f"({match} OR d.terms && %(named)s::text[])"
    return match, "ts_rank(d.tsv, websearch_to_tsquery('english', %(q)s))"


# A search from a place reaches listings seen in person within the radius (narrowed by GiST, decided by the formula)
# and those seen online licensed in the place's state or province; with both, the in-person ones come first.
NEAR = ("(d.in_person AND ST_DWithin(d.geog, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography,"
        f" %(reach)s, false) AND {DISTANCE} <= %(radius)s)")
REMOTE = "(d.licence = %(licence)s AND d.telehealth)"
REACHES = {"any": (NEAR, REMOTE), "in_person": (NEAR,), "telehealth": (REMOTE,)}
# By sort: from a place, nearest or most relevant first; without one, most relevant. Ties by name, then id.
ORDERS = {"distance": "nearby DESC, standing, distance, relevance DESC, d.sortname, d.id",
          "relevance": "standing, relevance DESC, distance, d.sortname, d.id",
          None: "standing, relevance DESC, d.sortname, d.id"}


def _place(request: SearchRequest, origin: Place, params: dict[str, Any]) -> str:
    """The condition of where a search from a place reaches, its parameters added to `params`."""
    units, radius = request.units_for(origin.country), request.radius_for(origin.country)
    lat = math.radians(origin.lat)
    params.update(earth=EARTH_RADIUS_KM, lng1=math.radians(origin.lon), sin_lat1=math.sin(lat), cos_lat1=math.cos(lat),
                  per_unit=KM_PER_MILE if units == "mi" else 1.0, radius=radius, lat=origin.lat, lon=origin.lon,
                  reach=to_km(units, radius) * 1000 * REACH, licence=licence_term(origin.region))
    return "(" + " OR ".join(REACHES[request.format]) + ")"


def statement(request: SearchRequest) -> tuple[str, str, dict[str, Any]]:
    """(the search's one statement, its WHERE for a count past the last page, the parameters)."""
    origin = request.origin
    params: dict[str, Any] = {"fresh_since": request.fresh.since.toordinal(),
                              "fresh_until": request.fresh.until.toordinal(), "limit": request.per_page,
                              "offset": (request.page - 1) * request.per_page}
    where = _filters(request, origin, params)
    match, score = _text(request, params)
    where += [match] if match else []
    if origin is None:
        where += [] if request.format == "any" else [f"d.{request.format}"]
        distance, nearby, order = "0.0", "false", ORDERS[None]
    else:
        where.append(_place(request, origin, params))
        distance, nearby = DISTANCE, NEAR if request.format == "any" else "false"
        order = ORDERS[request.sort or "distance"]
    condition = " AND ".join(where) or "true"
    # As bench/baseline.py: the matches' keys computed once, in the scan, and materialised as narrow rows (with the
    # window over the scan itself, each row carried its tsvector and national text spilled to disk: 240 against
    # 150 ms); only the page's own cards are read, and ordered again (a page is 100 at most).
    sql = (f"WITH hits AS MATERIALIZED (SELECT d.id, d.sortname, {distance} AS distance, {nearby} AS nearby,"
           f" {STANDING} AS standing, {score} AS relevance FROM listings d WHERE {condition}),"
           f" page AS (SELECT d.*, count(*) OVER () AS total FROM hits d ORDER BY {order}"
           " LIMIT %(limit)s OFFSET %(offset)s)"
           f" SELECT d.id, d.distance, d.standing, d.total, c.card FROM page d JOIN listings c ON c.id = d.id"
           f" ORDER BY {order}")
    return sql, condition, params


def search(conn: psycopg.Connection[Any], request: SearchRequest) -> tuple[int, list[dict[str, Any]]]:
    """(total, the page's results as the API shows them)."""
    sql, condition, params = statement(request)
    rows = conn.execute(sql, params).fetchall()
    if not rows:
        count = conn.execute(f"SELECT count(*) FROM listings d WHERE {condition}", params).fetchone()
        return count[0] if count else 0, []
    results = [{**found, "distance": None if request.origin is None else round(distance, 1),
                "availability": AVAILABILITY[standing]} for _, distance, standing, _, found in rows]
    return rows[0][3], results


def _origin_dict(origin: Place | None) -> dict[str, Any] | None:
    if origin is None:
        return None
    return {"kind": "place" if origin.precision == "place" else "postcode", "postcode": origin.postcode or None,
            "country": origin.country, "region": origin.region, "lat": origin.lat, "lon": origin.lon,
            "place": origin.name, "centre": origin.centre or None}


app = Flask(__name__)
_connection: list[psycopg.Connection[Any]] = []  # one per worker process, opened by its first search
# One process a search, as the project's one thread: on 2 cores a parallel worker made r5 4x slower at p50 (51.6
# against 12.8 ms, 100k listings, on a machine busy with other work), starting a process for a few ms of reading.
# No JIT: the distance formula's cost estimate passes jit_above_cost, and compiling took 20 of a 48 ms search.
SESSION = "-c max_parallel_workers_per_gather=0 -c jit=off"


def _conn() -> psycopg.Connection[Any]:
    if not _connection or _connection[0].closed:
        _connection[:] = [psycopg.connect(os.environ["POSTGIS_DSN"], autocommit=True, options=SESSION)]
    return _connection[0]


@app.get("/api/v1/search")
def search_view() -> Any:
    """The search API's answer, less what the module docstring lists."""
    fresh = window_on(dt.date.today(), int(os.environ.get("STALE_AFTER_DAYS", "90")))
    try:
        found = parse(request.args, fresh)
    except InvalidRequest as exc:
        return jsonify({"error": exc.code, "message": exc.message}), exc.status
    total, results = search(_conn(), found)
    origin = found.origin
    units = None if origin is None else found.units_for(origin.country)
    return jsonify({"origin": _origin_dict(origin), "units": units,
                    "radius": None if origin is None else found.radius_for(origin.country),
                    "sort": (found.sort or "distance") if origin is not None else "relevance", "total": total,
                    "page": found.page, "per_page": found.per_page, "results": results})
