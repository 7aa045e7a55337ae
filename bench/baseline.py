"""The yardstick: what an engineer would build without Whoosh. SQLite FTS5 for text, a lat/lon bounding box and a
great-circle (haversine-family) distance filter and ordering in SQL, term tables for the vocabulary filters and
columns for the cost ones (lowest fee, sliding scale), in one SQLite file built from the same listings."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from collections.abc import Callable
from typing import Any

from directory.availability import day_number
from directory.geo import EARTH_RADIUS_KM, KM_PER_MILE, Place, bounding_box, to_km
from directory.search.documents import listing_document, sort_name
from directory.search.index.fields import licence_term
from directory.search.request import SearchRequest
from directory.search.text import text_query
from directory.vocabulary import KINDS

SCHEMA = """
CREATE TABLE docs (id INTEGER PRIMARY KEY, lat REAL, lon REAL, sin_lat REAL, cos_lat REAL, rad_lon REAL,
                   in_person INT, telehealth INT, accepting INT, confirmed INT, licence TEXT, sortname BLOB,
                   fee INT, sliding INT, country TEXT);
CREATE INDEX docs_lat ON docs(lat);
CREATE INDEX docs_licence ON docs(licence, telehealth);
CREATE TABLE terms (kind TEXT, slug TEXT, id INTEGER, PRIMARY KEY (kind, slug, id)) WITHOUT ROWID;
CREATE VIRTUAL TABLE fts USING fts5(body, tokenize = 'porter unicode61');
"""

# geopy's great_circle formula with each row's trigonometry precomputed, as one would in SQL. SQLite's math
# functions are the C library's, so the numbers equal geopy's and the two implementations order ties alike.
DISTANCE = ("(:earth * atan2(sqrt(power(d.cos_lat * sin(d.rad_lon - :lng1), 2)"
            " + power(:cos_lat1 * d.sin_lat - :sin_lat1 * d.cos_lat * cos(d.rad_lon - :lng1), 2)),"
            " :sin_lat1 * d.sin_lat + :cos_lat1 * d.cos_lat * cos(d.rad_lon - :lng1)) / :per_unit)")

# Accepting new clients (confirmed within the window) first, then unconfirmed, then confirmed not accepting.
STANDING = ("(CASE WHEN d.confirmed BETWEEN :fresh_since AND :fresh_until THEN (CASE WHEN d.accepting THEN 0 ELSE 2"
            " END) ELSE 1 END)")


def standing_and_cost(request: SearchRequest, origin: Place | None, params: dict[str, Any],
                      placeholder: Callable[[str], str]) -> list[str]:
    """The conditions of the accepting, sliding-scale and fee filters over the docs table `d`, their parameters
    added to `params` (the availability window's are the caller's); `placeholder` spells a parameter in SQL."""
    where = []
    if request.accepting:
        where.append(f"d.accepting AND d.confirmed BETWEEN {placeholder('fresh_since')} AND "
                     f"{placeholder('fresh_until')}")
    if request.sliding_scale:
        where.append("d.sliding")
    if request.max_fee is not None:
        # A ceiling is in the currency of the search's country; without a place, each listing's own.
        where.append(f"d.fee <= {placeholder('max_fee')}"
                     + (f" AND d.country = {placeholder('country')}" if origin is not None else ""))
        params.update(max_fee=request.max_fee, country=origin.country if origin is not None else None)
    return where


def build(path: Path, listings: Any) -> int:
    """Create the baseline database from Listing rows; returns how many were loaded."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    count = 0
    for listing in listings:
        doc = listing_document(listing)
        if doc is None:
            continue
        flags = set(doc["flag"].split())
        lat_r = math.radians(doc["lat"])
        # The least a session costs, as the listing gives it (fee_min, else fee_max); NULL, under no ceiling, if none.
        fee = min((f for f in (listing.fee_min, listing.fee_max) if f is not None), default=None)
        db.execute("INSERT INTO docs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
            listing.id, doc["lat"], doc["lon"], math.sin(lat_r), math.cos(lat_r), math.radians(doc["lon"]),
            "in_person" in flags, "telehealth" in flags, "accepting" in flags,
            day_number(listing.availability_confirmed_on), doc["licence"], sort_name(listing.name),
            fee, listing.sliding_scale, listing.country))
        db.executemany("INSERT INTO terms VALUES (?,?,?)", [
            (kind, slug, listing.id) for kind in KINDS for slug in doc[kind].split()])
        db.execute("INSERT INTO fts(rowid, body) VALUES (?, ?)", (listing.id, doc["text"]))
        count += 1
    db.commit()
    db.close()
    return count


class Baseline:
    """Answers a SearchRequest the way the project does, with SQL."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False)

    def search(self, request: SearchRequest, origin: Place | None) -> tuple[int, list[int]]:
        """(total, ids of the requested page)."""
        where: list[str] = []
        params: dict[str, Any] = {}
        for kind, values in request.filters.items():
            if values:
                names = [f"{kind}{i}" for i in range(len(values))]
                where.append(f"d.id IN (SELECT id FROM terms WHERE kind = '{kind}' AND slug IN "
                             f"({','.join(':' + n for n in names)}))")
                params.update(zip(names, values, strict=True))
        params.update(fresh_since=request.fresh.since.toordinal(), fresh_until=request.fresh.until.toordinal())
        where += standing_and_cost(request, origin, params, lambda name: ":" + name)
        join, score = "", "0.0"
        if text_query(request.q).query is not None:
            join = "JOIN fts ON fts.rowid = d.id AND fts MATCH :match"
            params["match"] = " ".join(f'"{word}"' for word in request.q.split() if word.strip('"'))
            score = "-bm25(fts)"
        distance, nearby, order = "0.0", "0", "standing, relevance DESC, d.sortname, d.id"
        if origin is not None:
            units, radius = request.units_for(origin.country), request.radius_for(origin.country)
            min_lat, max_lat, lon_ranges = bounding_box(origin.lat, origin.lon, to_km(units, radius))
            lat1 = math.radians(origin.lat)
            params.update(earth=EARTH_RADIUS_KM, lng1=math.radians(origin.lon), sin_lat1=math.sin(lat1),
                          cos_lat1=math.cos(lat1), per_unit=KM_PER_MILE if units == "mi" else 1.0,
                          min_lat=min_lat, max_lat=max_lat, radius=radius, licence=licence_term(origin.region))
            lon_box = " OR ".join(f"d.lon BETWEEN :lo{i} AND :hi{i}" for i in range(len(lon_ranges)))
            params.update({f"lo{i}": lo for i, (lo, _) in enumerate(lon_ranges)})
            params.update({f"hi{i}": hi for i, (_, hi) in enumerate(lon_ranges)})
            near = f"(d.in_person AND d.lat BETWEEN :min_lat AND :max_lat AND ({lon_box}) AND {DISTANCE} <= :radius)"
            remote = "(d.licence = :licence AND d.telehealth)"
            where.append("(" + " OR ".join({"any": [near, remote], "in_person": [near], "telehealth": [remote]}[
                request.format]) + ")")
            distance = DISTANCE
            if request.format == "any":  # in-person matches first, then those seen online only
                nearby = near
            order = ("nearby DESC, standing, distance, relevance DESC" if (request.sort or "distance") == "distance"
                     else "standing, relevance DESC, distance") + ", d.sortname, d.id"
        elif request.format != "any":
            where.append(f"d.{request.format}")
        params.update(limit=request.per_page, offset=(request.page - 1) * request.per_page)
        body = f"FROM docs d {join}" + (" WHERE " + " AND ".join(where) if where else "")
        # FTS5's bm25() cannot sit beside a window function, hence the materialised step.
        rows = self.db.execute(
            f"WITH hits AS MATERIALIZED (SELECT d.id, d.sortname, {distance} AS distance, {nearby} AS nearby, "
            f"{STANDING} AS standing, {score} AS relevance {body})"
            f" SELECT id, count(*) OVER () FROM hits d ORDER BY {order} LIMIT :limit OFFSET :offset", params).fetchall()
        if rows:
            return rows[0][1], [row[0] for row in rows]
        # Past the last page the window count has no row to ride on.
        return self.db.execute(f"SELECT count(*) {body}", params).fetchone()[0], []
