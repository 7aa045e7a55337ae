"""A search request: parsed and validated once from query-string arguments, then used by page, API and bench."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from directory.availability import Window
from directory.geo import POSTCODE_PATTERN, Place, PostcodeError, postcodes, without_format_characters
from directory.places import PlaceError, places
from directory.vocabulary import KINDS, vocabulary

RADIUS_CHOICES = (5, 10, 25, 50, 100)
MAX_RADIUS = 500
DEFAULT_RADIUS = {"mi": 25, "km": 40}
MAX_PER_PAGE = 100
MAX_PAGE = 1000
MAX_QUERY_CHARS = 200
MAX_LOCATION_CHARS = 100
MAX_QUERY_TERMS = 24
MAX_FILTER_VALUES = 30
FORMATS = ("any", "in_person", "telehealth")
SORTS = ("distance", "relevance")
_SPACE, _WORD = r"[ \t\r\n]", r"[^ \t\r\n]+"
# The text's word limit as a regular expression (ASCII whitespace separates words), so that the OpenAPI document
# states exactly what is refused; each word must be followed by a separator before the next, so matching is linear.
QUERY_PATTERN = rf"^{_SPACE}*(?:{_WORD}(?:{_SPACE}+{_WORD}){{0,{MAX_QUERY_TERMS - 1}}})?{_SPACE}*$"
NUMBER_PATTERN = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"  # JSON's number grammar
INTEGER_PATTERN = r"^-?(?:0|[1-9][0-9]*)$"
# Every parameter a search reads, and so every name the API takes. The search page's form sends only these
# (location, radius, q, the vocabulary filters, accepting, max_fee, sliding_scale, format, sort, units) and its links
# add page and postcode, so the API's refusal of any other name never refuses the page's own fields; the page itself
# ignores other names.
PARAMETERS = ("location", "postcode", "radius", "units", "q", *KINDS, "accepting", "max_fee", "sliding_scale", "format",
              "sort", "page", "per_page", "guided")
MAX_FEE = 100_000  # the import's bound on a fee
_TRAILING_POSTCODE = re.compile(r"[^\d ,][ ,]+([0-9]{5}(?:-[0-9]{4})?|[A-Za-z][0-9][A-Za-z] ?[0-9][A-Za-z][0-9])$")


class InvalidRequest(ValueError):
    """Bad search input, the one error a view catches; ``code`` is the API error code, ``field`` the parameter at
    fault (the page marks its input), ``status`` 400, or 422 for a well-formed postcode that no data holds or a
    place name that names no place or several."""

    def __init__(self, code: str, message: str, field: str, status: int = 400, choices: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status = status
        self.choices = choices  # for a place name: the places it may mean, or close names


class Args(Protocol):
    """The part of werkzeug's MultiDict that parsing needs."""

    def get(self, key: str, /) -> str | None: ...

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
    age: tuple[str, ...] = ()
    client_type: tuple[str, ...] = ()
    community: tuple[str, ...] = ()
    gender: tuple[str, ...] = ()
    accepting: bool = False
    max_fee: int | None = None  # in the currency of the origin's country
    sliding_scale: bool = False
    format: str = "any"
    sort: str | None = None
    page: int = 1
    per_page: int = 20
    filters: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", {kind: getattr(self, kind) for kind in KINDS})

    def units_for(self, country: str) -> str:
        """The distance units: as asked, else miles in the US and km in Canada."""
        return self.units or ("km" if country == "CA" else "mi")

    def radius_for(self, country: str) -> float:
        """The radius in the request's units, defaulting by units."""
        return self.radius if self.radius is not None else DEFAULT_RADIUS[self.units_for(country)]


# Every parameter is taken as written, as the OpenAPI document states it; an empty value is the same as leaving the
# parameter out, since the search page's form sends every field whether filled in or not.


def _number(args: Args, name: str, low: float, high: float, integer: bool) -> float | None:
    raw = args.get(name) or ""
    if not raw:
        return None
    if not re.fullmatch(INTEGER_PATTERN if integer else NUMBER_PATTERN, raw):
        raise InvalidRequest("invalid_parameter", f"{name} must be a {'whole ' if integer else ''}number.", name)
    # Python refuses to read a whole number of over 4,300 digits, and one longer than the bound is out of range.
    too_long = integer and len(raw.lstrip("-")) > len(str(int(high)))
    value = 0 if too_long else int(raw) if integer else float(raw)
    if too_long or not low <= value <= high or not math.isfinite(value):
        raise InvalidRequest("invalid_parameter", f"{name} must be between {low:g} and {high:g}.", name)
    return value


def _choice(args: Args, name: str, choices: tuple[str, ...]) -> str | None:
    raw = args.get(name) or ""
    if not raw:
        return None
    if raw not in choices:
        raise InvalidRequest("invalid_parameter", f"{name} must be one of: {', '.join(choices)}.", name)
    return raw


def _slugs(args: Args, kind: str) -> tuple[str, ...]:
    values = [v for v in args.getlist(kind) if v]
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidRequest("invalid_parameter", f"At most {MAX_FILTER_VALUES} {kind} values.", kind)
    for value in values:
        if vocabulary.get(kind, value) is None:
            raise InvalidRequest("invalid_parameter", f"Unknown {kind} {value[:40]!r}; see /api/v1/vocabulary.", kind)
    return tuple(dict.fromkeys(values))


def refuse_unknown(names: Iterable[str], known: Collection[str], where: str) -> None:
    """Raise InvalidRequest naming every parameter in `names` that is not in `known` (the API's answer to a name
    it would otherwise ignore, such as a misspelt filter); `where` is the path, for the message."""
    unknown = list(dict.fromkeys(name for name in names if name not in known))
    if not unknown:
        return
    named = ", ".join(repr(name[:40]) for name in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
    takes = f"takes {', '.join(known)}" if known else "takes no parameters"
    raise InvalidRequest("invalid_parameter", f"Unknown parameter{'s' if len(unknown) > 1 else ''} {named}; "
                                              f"{where} {takes}.", unknown[0])


def parse(args: Args, fresh: Window) -> SearchRequest:
    """Build a SearchRequest from query-string arguments (for the day of the window `fresh`), or raise
    InvalidRequest."""
    raw_q = args.get("q") or ""
    if len(raw_q) > MAX_QUERY_CHARS:
        raise InvalidRequest("query_too_long", f"The search text is limited to {MAX_QUERY_CHARS} characters.", "q")
    if not re.fullmatch(QUERY_PATTERN, raw_q):
        raise InvalidRequest("query_too_long", f"The search text is limited to {MAX_QUERY_TERMS} words.", "q")
    # Words as the limit counts them, read without the format characters pasted text carries (a zero-width space).
    q = " ".join(re.findall(_WORD, without_format_characters(raw_q)))
    accepting = _choice(args, "accepting", ("1", "0"))
    _choice(args, "guided", ("1", "0"))  # read by the page only; checked like any flag
    radius = _number(args, "radius", 1, MAX_RADIUS, integer=False)
    page = _number(args, "page", 1, MAX_PAGE, integer=True)
    per_page = _number(args, "per_page", 1, MAX_PER_PAGE, integer=True)
    max_fee = _number(args, "max_fee", 0, MAX_FEE, integer=True)
    request = SearchRequest(
        fresh=fresh,
        radius=radius,
        units=_choice(args, "units", ("mi", "km")),
        q=q,
        **{kind: _slugs(args, kind) for kind in KINDS},  # type: ignore[arg-type]
        accepting=accepting == "1",
        max_fee=None if max_fee is None else int(max_fee),
        sliding_scale=_choice(args, "sliding_scale", ("1", "0")) == "1",
        format=_choice(args, "format", FORMATS) or "any",
        sort=_choice(args, "sort", SORTS),
        page=int(page or 1),
        per_page=int(per_page or 20),
    )
    # Last, so that a request with a bad parameter and a bad location reports the parameter, as it always has.
    return dataclasses.replace(request, origin=_origin(args))


def _origin(args: Args) -> Place | None:
    """Where the search is from: `location` (a postcode or a place name) or, when it is blank, `postcode`."""
    for name in ("location", "postcode"):
        if len(args.get(name) or "") > MAX_LOCATION_CHARS:
            raise InvalidRequest("invalid_parameter", f"{name} is limited to {MAX_LOCATION_CHARS} characters.", name)
    # Pasted text brings no-break and other spaces, and format characters (a zero-width space, a direction mark).
    location = " ".join(without_format_characters(args.get("location") or "").split())
    if location:
        return _located(location)
    postcode = args.get("postcode") or ""
    try:
        return postcodes.lookup(postcode) if postcode else None
    except PostcodeError as exc:
        status = 422 if exc.code == "unknown_postcode" else 400
        raise InvalidRequest(exc.code, exc.message, "postcode", status) from None


def _located(text: str) -> Place:
    """A location's place: a postcode, a place name, or a place name with its postcode ("Brooklyn, NY 11201", where
    the postcode is the more precise). Any text is a well-formed location, so what names nowhere is a 422."""
    trailing = _TRAILING_POSTCODE.search(text)
    try:
        if re.fullmatch(POSTCODE_PATTERN, text) or trailing:
            return postcodes.lookup(trailing.group(1) if trailing else text)
        try:
            return places.resolve(text)
        except PlaceError as exc:
            if exc.code == "unknown_place" and any(c.isdigit() for c in text):
                postcodes.lookup(text)  # digits and no place: a mistyped postcode, said as such
            raise InvalidRequest(exc.code, exc.message, "location", 422, exc.choices) from None
    except PostcodeError as exc:
        raise InvalidRequest(exc.code, exc.message, "location", 422) from None
