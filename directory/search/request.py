"""A search request: parsed and validated once from query-string arguments, then used by page, API and bench."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from directory.availability import Window
from directory.geo import Place, PostcodeError, postcodes
from directory.vocabulary import vocabulary

RADIUS_CHOICES = (5, 10, 25, 50, 100)
MAX_RADIUS = 500
DEFAULT_RADIUS = {"mi": 25, "km": 40}
MAX_PER_PAGE = 100
MAX_PAGE = 1000
MAX_QUERY_CHARS = 200
MAX_QUERY_TERMS = 24
MAX_FILTER_VALUES = 30
FORMATS = ("any", "in_person", "telehealth")
SORTS = ("distance", "relevance")
_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no", ""}


class InvalidRequest(ValueError):
    """Bad search input, the one error a view catches; ``code`` is the API error code, ``field`` the parameter at
    fault (the page marks its input)."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class Args(Protocol):
    """The part of werkzeug's MultiDict that parsing needs."""

    def get(self, key: str, default: str | None = None) -> str | None: ...

    def getlist(self, key: str) -> list[str]: ...


@dataclass(frozen=True)
class SearchRequest:
    """Everything a search needs, already validated; `origin` is the resolved postcode, `fresh` the confirmation
    dates whose "accepting new clients" counts on the day of the search."""

    fresh: Window
    origin: Place | None = None
    radius: float | None = None
    units: str | None = None
    q: str = ""
    modality: tuple[str, ...] = ()
    specialty: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    insurance: tuple[str, ...] = ()
    accepting: bool = False
    format: str = "any"
    sort: str | None = None
    page: int = 1
    per_page: int = 20
    filters: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", {
            "modality": self.modality, "specialty": self.specialty,
            "language": self.language, "insurance": self.insurance,
        })

    def units_for(self, country: str) -> str:
        """The distance units: as asked, else miles in the US and km in Canada."""
        return self.units or ("km" if country == "CA" else "mi")

    def radius_for(self, country: str) -> float:
        """The radius in the request's units, defaulting by units."""
        return self.radius if self.radius is not None else DEFAULT_RADIUS[self.units_for(country)]


def _number(args: Args, name: str, low: float, high: float, integer: bool) -> float | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise InvalidRequest("invalid_parameter", f"{name} must be a {'whole ' if integer else ''}number.",
                             name) from None
    # Compared before anything else: a whole number of 309 digits is fine to compare, but not to make a float of.
    if not low <= value <= high or not math.isfinite(value):
        raise InvalidRequest("invalid_parameter", f"{name} must be between {low:g} and {high:g}.", name)
    return value


def _choice(args: Args, name: str, choices: tuple[str, ...]) -> str | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    if raw not in choices:
        raise InvalidRequest("invalid_parameter", f"{name} must be one of: {', '.join(choices)}.", name)
    return raw


def _slugs(args: Args, kind: str) -> tuple[str, ...]:
    values = [v.strip() for v in args.getlist(kind) if v.strip()]
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidRequest("invalid_parameter", f"At most {MAX_FILTER_VALUES} {kind} values.", kind)
    for value in values:
        if vocabulary.get(kind, value) is None:
            raise InvalidRequest("invalid_parameter", f"Unknown {kind} {value[:40]!r}; see /api/v1/vocabulary.", kind)
    return tuple(dict.fromkeys(values))


def parse(args: Args, fresh: Window) -> SearchRequest:
    """Build a SearchRequest from query-string arguments (for the day of the window `fresh`), or raise
    InvalidRequest."""
    q = " ".join((args.get("q") or "").split())
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidRequest("query_too_long", f"The search text is limited to {MAX_QUERY_CHARS} characters.", "q")
    if len(q.split()) > MAX_QUERY_TERMS:
        raise InvalidRequest("query_too_long", f"The search text is limited to {MAX_QUERY_TERMS} words.", "q")
    accepting = (args.get("accepting") or "").strip().lower()
    if accepting not in _TRUE | _FALSE:
        raise InvalidRequest("invalid_parameter", "accepting must be 1 or 0.", "accepting")
    radius = _number(args, "radius", 1, MAX_RADIUS, integer=False)
    page = _number(args, "page", 1, MAX_PAGE, integer=True)
    per_page = _number(args, "per_page", 1, MAX_PER_PAGE, integer=True)
    request = SearchRequest(
        fresh=fresh,
        radius=radius,
        units=_choice(args, "units", ("mi", "km")),
        q=q,
        modality=_slugs(args, "modality"),
        specialty=_slugs(args, "specialty"),
        language=_slugs(args, "language"),
        insurance=_slugs(args, "insurance"),
        accepting=accepting in _TRUE,
        format=_choice(args, "format", FORMATS) or "any",
        sort=_choice(args, "sort", SORTS),
        page=int(page or 1),
        per_page=int(per_page or 20),
    )
    # Last, so that a request with a bad parameter and a bad postcode reports the parameter, as it always has.
    postcode = (args.get("postcode") or "").strip()
    if not postcode:
        return request
    try:
        return dataclasses.replace(request, origin=postcodes.lookup(postcode))
    except PostcodeError as exc:
        raise InvalidRequest(exc.code, exc.message, "postcode") from None
