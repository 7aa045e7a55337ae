"""The distance view: a map of a page of results drawn by the app as an SVG from its own data, so that showing
where therapists are tells no tile server where a person is looking.

The search's origin is the centre; rings mark the radius steps up to the search's radius, which is the outer ring;
each in-person result on the page is a numbered marker (its card's number) placed by its true bearing from the
origin and its distance as the search measured it. Online-only results have no office to place: the caption counts
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flask import url_for

from directory.search.documents import location_of
from directory.search.request import RADIUS_CHOICES
from directory.search.results import Results

SIZE = 320  # the SVG's width and height, in its own units (CSS scales it)
CENTRE = SIZE / 2
OUTER = 140  # the search radius's ring, from the centre
MIN_RING = 20  # inner rings closer to the centre than this are left out (their labels would pile on it)
COMPASS = ("north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west")


@dataclass(frozen=True)
class Marker:
    """One result on the view: its card's number, where it is drawn, and what its link says."""

    number: int
    distance: float
    x: float
    y: float
    url: str
    label: str
    lat: float
    lon: float
    direction: str


@dataclass(frozen=True)
class Ring:
    """A distance ring: its radius on the view and its label ("10 mi")."""

    r: float
    label: str


@dataclass(frozen=True)
class DistanceView:
    """What the results page draws: markers in card order, rings, and the view's text alternative."""

    markers: list[Marker]
    rings: list[Ring]
    summary: str
    not_shown: str
    origin: tuple[float, float]


def bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The initial great-circle bearing from the first point to the second, in degrees clockwise from north."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360


def direction(degrees: float) -> str:
    """A bearing as one of eight compass words ("north-east")."""
    return COMPASS[round(degrees / 45) % 8]


def _place(distance: float, radius: float, degrees: float) -> tuple[float, float]:
    """Where a result at `distance` (in the radius's units) and bearing `degrees` is drawn."""
    r = distance / radius * OUTER
    return (round(CENTRE + r * math.sin(math.radians(degrees)), 1),
            round(CENTRE - r * math.cos(math.radians(degrees)), 1))


def distance_view(outcome: Results, first_number: int, profile_args: dict[str, Any]) -> DistanceView | None:
    """The view of a page of results, numbered from `first_number` as its cards are; None without an origin."""
    origin, radius = outcome.origin, outcome.radius
    if origin is None or not radius:
        return None
    unit = "miles" if outcome.units == "mi" else "km"
    markers, online, beyond = [], 0, 0
    for number, result in enumerate(outcome.results, start=first_number):
        listing = result.listing
        point = location_of(listing.latitude, listing.longitude, listing.postcode) if listing.in_person else None
        if point is None or result.distance is None:
            online += 1
            continue
        if result.distance > radius:  # listed as seen online: its office is past the radius
            beyond += 1
            continue
        degrees = bearing(origin.lat, origin.lon, *point)
        x, y = _place(result.distance, radius, degrees)
        label = f"{number}. {listing.name}, {result.distance:.1f} {unit} {direction(degrees)}"
        url = url_for("public.profile", slug=listing.slug, **profile_args)
        markers.append(Marker(number, result.distance, x, y, url, label, *point, direction(degrees)))
    steps = [step for step in RADIUS_CHOICES if step < radius and step / radius * OUTER >= MIN_RING] + [radius]
    rings = [Ring(round(step / radius * OUTER, 1), f"{step:g} {outcome.units}") for step in steps]
    return DistanceView(markers, rings, _summary(markers, origin.postcode or origin.name, radius, unit),
                        _not_shown(online, beyond, radius, unit), (origin.lat, origin.lon))


def _summary(markers: list[Marker], where: str, radius: float, unit: str) -> str:
    """The view's text alternative: how many are on it, and the nearest."""
    if not markers:
        return f"No therapist of this page has an office within {radius:g} {unit}."
    nearest = min(markers, key=lambda marker: marker.distance)
    at = "at the place searched" if nearest.distance < 0.05 else \
        f"{nearest.distance:.1f} {unit} {nearest.direction}"
    return (f"{len(markers)} therapist{'' if len(markers) == 1 else 's'} of this page within {radius:g} {unit} of "
            f"{where}; nearest {at}.")


def _not_shown(online: int, beyond: int, radius: float, unit: str) -> str:
    """What the view leaves out of this page, and why."""
    said = []
    if online:
        said.append(f"{online} online-only therapist{' is' if online == 1 else 's are'} not on the map: no office "
                    "to visit.")
    if beyond:
        said.append(f"{beyond} seen online from here {'has its' if beyond == 1 else 'have their'} office farther "
                    f"than {radius:g} {unit}, off the map.")
    return " ".join(said)
