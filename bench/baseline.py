"""The yardstick: what an engineer would build without Whoosh. SQLite FTS5 for text, a lat/lon bounding box and
great-circle distance for geography, term tables for filters, in one SQLite file built from the same listings."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from directory.geo import Place, bounding_box, great_circle_km, km_to, to_km
from directory.search.request import SearchRequest
from directory.search.schema import licence_term, listing_document, sort_name
from directory.search.text import text_query

SCHEMA = """
CREATE TABLE docs (id INTEGER PRIMARY KEY, lat REAL, lon REAL, in_person INT, telehealth INT, accepting INT,
                   licence TEXT, sortname BLOB);
CREATE INDEX docs_lat ON docs(lat);
CREATE INDEX docs_licence ON docs(licence, telehealth);
CREATE TABLE terms (kind TEXT, slug TEXT, id INTEGER, PRIMARY KEY (kind, slug, id)) WITHOUT ROWID;
CREATE VIRTUAL TABLE fts USING fts5(body, tokenize = 'porter unicode61');
"""


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
        db.execute("INSERT INTO docs VALUES (?,?,?,?,?,?,?,?)", (
            listing.id, doc["lat"], doc["lon"], "in_person" in flags, "telehealth" in flags, "accepting" in flags,
            doc["licence"], sort_name(listing.name)))
        db.executemany("INSERT INTO terms VALUES (?,?,?)", [
            (kind, slug, listing.id) for kind in ("modality", "specialty", "language", "insurance")
            for slug in doc[kind].split()])
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
        where, params = [], []
        for kind, values in request.filters.items():
            if values:
                where.append(f"d.id IN (SELECT id FROM terms WHERE kind = ? AND slug IN ({','.join('?' * len(values))}))")
                params += [kind, *values]
        if request.accepting:
            where.append("d.accepting")
        text = text_query(request.q)
        join = ""
        score = "0.0"
        if text.query is not None:
            join = "JOIN fts ON fts.rowid = d.id AND fts MATCH ?"
            params.insert(0, " ".join(f'"{word}"' for word in request.q.split() if word.strip('"')))
            score = "-bm25(fts)"
        units = radius = None
        if origin is not None:
            units, radius = request.units_for(origin.country), request.radius_for(origin.country)
            min_lat, max_lat, lon_ranges = bounding_box(origin.lat, origin.lon, to_km(units, radius))
            near = ("(d.in_person AND d.lat BETWEEN ? AND ? AND ("
                    + " OR ".join("d.lon BETWEEN ? AND ?" for _ in lon_ranges) + "))")
            near_params: list[Any] = [min_lat, max_lat, *[v for r in lon_ranges for v in r]]
            remote = "(d.licence = ? AND d.telehealth)"
            parts = {"any": [near, remote], "in_person": [near], "telehealth": [remote]}[request.format]
            where.append("(" + " OR ".join(parts) + ")")
            if request.format != "telehealth":
                params += near_params
            if request.format != "in_person":
                params.append(licence_term(origin.region))
        elif request.format != "any":
            where.append(f"d.{request.format}")
        sql = (f"SELECT d.id, d.lat, d.lon, d.in_person, d.licence, d.telehealth, d.sortname, {score} FROM docs d {join}"
               + (" WHERE " + " AND ".join(where) if where else ""))
        rows = self.db.execute(sql, params).fetchall()
        keyed = []
        licence = licence_term(origin.region) if origin is not None else None
        for doc_id, lat, lon, in_person, doc_licence, telehealth, name, relevance in rows:
            if origin is not None:
                distance = km_to(units, great_circle_km(origin.lat, origin.lon, lat, lon))
                remote_ok = request.format != "in_person" and telehealth and doc_licence == licence
                if not remote_ok and not (request.format != "telehealth" and in_person and distance <= radius):
                    continue
                key = (distance, -relevance) if (request.sort or "distance") == "distance" else (-relevance, distance)
            else:
                key = (-relevance, 0.0)
            keyed.append((key, name, doc_id))
        keyed.sort()
        start = (request.page - 1) * request.per_page
        return len(keyed), [doc_id for _, _, doc_id in keyed[start:start + request.per_page]]
