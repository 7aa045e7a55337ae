"""Distance filtering: the listings a search from a place may return (in person within the radius, online when
licensed in the place's state or province) with their distances, or without a place the whole index. Distances
are geopy's great-circle numbers: vectorised approximations, made exact wherever the last ulp could matter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from directory.geo import Place, Points, cells_covering, great_circle_km, great_circle_km_many, km_to, to_km
from directory.search.index.docsets import contains
from directory.search.index.fields import FORMAT_FLAG, IN_PERSON_FLAG, TELEHEALTH_FLAG, licence_term
from directory.search.index.snapshot import IndexSnapshot
from directory.search.request import SearchRequest

# Relative margin around the radius and the page cutoff inside which vectorised distances are re-checked exactly.
SLACK = 1e-9


@dataclass(frozen=True)
class Scope:
    """The listings a search may return before filters (sorted docnums); from a place, their distances in `units`
    and which of them are in-person matches within `radius` (the rest are online only)."""

    docs: np.ndarray
    origin: Place | None = None
    units: str | None = None
    radius: float | None = None
    distances: np.ndarray | None = None
    near: np.ndarray | None = None

    def distances_of(self, docs: np.ndarray) -> np.ndarray:
        """Distances of a sorted subset of the scope (zeros without an origin)."""
        if self.distances is None:
            return np.zeros(len(docs))
        return self.distances[np.searchsorted(self.docs, docs)]


def scope_of(snapshot: IndexSnapshot, request: SearchRequest) -> Scope:
    """Where a search reaches: from its origin, the in-person and online matches with their distances; without
    one, every listing of the format asked for."""
    origin = request.origin
    if origin is not None:
        units, radius = request.units_for(origin.country), request.radius_for(origin.country)
        return _geo_scope(snapshot, request, origin, units, radius)
    if request.format == "any":
        return Scope(snapshot.every_doc())
    return Scope(snapshot.docs_with("flag", FORMAT_FLAG[request.format]))


def exact_distances(snapshot: IndexSnapshot, origin: Place, units: str, docs: np.ndarray) -> np.ndarray:
    """Distances of the docnums from `origin` by geopy's own formula, once for each point they stand at."""
    # A listing without coordinates of its own stands at its postcode's centroid: at a million listings the
    # results that can reach a page (all those tied at its last distance) were about 185 a search, at 4 or 5 points.
    known: dict[tuple[float, float], float] = {}
    lats, lons = snapshot.column("lat")[docs].tolist(), snapshot.column("lon")[docs].tolist()
    for point in zip(lats, lons, strict=True):
        if point not in known:
            known[point] = _exact_at(origin, units, *point)
    return np.fromiter((known[point] for point in zip(lats, lons, strict=True)), dtype=np.float64, count=len(docs))


def _approximate(snapshot: IndexSnapshot, origin: Place, units: str, docs: np.ndarray) -> np.ndarray:
    """Distances by great_circle's formula vectorised; within a few ulps of geopy's numbers."""
    # Once a snapshot, as its columns are read: about 30 ms at 1M listings, after each index commit.
    points = snapshot.derived("points", lambda: Points.at(snapshot.column("lat"), snapshot.column("lon")))
    return km_to(units, great_circle_km_many(origin.lat, origin.lon, points[docs]))


def _exact(snapshot: IndexSnapshot, origin: Place, units: str, docnum: int) -> float:
    return _exact_at(origin, units, float(snapshot.column("lat")[docnum]), float(snapshot.column("lon")[docnum]))


def _exact_at(origin: Place, units: str, lat: float, lon: float) -> float:
    return km_to(units, great_circle_km(origin.lat, origin.lon, lat, lon))


def _geo_scope(snapshot: IndexSnapshot, request: SearchRequest, origin: Place, units: str, radius: float) -> Scope:
    """Every listing that is an in-person or telehealth match for this origin, with its distance.

    Distances are vectorised approximations, exact to about 1e-15; only listings within that of the radius are
    decided with the exact formula, and the distances of shown results are made exact later.
    """
    docs, distances = [], []
    near = np.empty(0, dtype=np.int32)
    if request.format in ("any", "in_person"):
        cells = snapshot.docs_with_any("cell", cells_covering(origin.lat, origin.lon, to_km(units, radius)))
        near = cells[snapshot.holding("flag", IN_PERSON_FLAG)[cells]]
        away = _approximate(snapshot, origin, units, near)
        keep = away <= radius * (1 + SLACK)
        for i in np.flatnonzero(keep & (away > radius * (1 - SLACK))).tolist():
            away[i] = _exact(snapshot, origin, units, int(near[i]))
            keep[i] = away[i] <= radius
        near = near[keep]
        docs.append(near)
        distances.append(away[keep])
    if request.format in ("any", "telehealth"):
        licensed = snapshot.docs_with("licence", licence_term(origin.region))
        remote = licensed[snapshot.holding("flag", TELEHEALTH_FLAG)[licensed]]
        remote = remote[~contains(near, remote)]
        docs.append(remote)
        distances.append(_approximate(snapshot, origin, units, remote))
    if len(docs) == 1:
        return Scope(docs[0], origin, units, radius, distances[0], near)
    merged = np.concatenate(docs)
    order = np.argsort(merged, kind="stable")
    return Scope(merged[order], origin, units, radius, np.concatenate(distances)[order], near)
