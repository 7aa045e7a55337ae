"""The row rules of the listings CSV: its columns and their aliases, and how one record's cells become Listing field
values, with every problem of the row found (`RowChecker`, `check_record`). The admin edit form is checked by them
too."""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from directory.geo import CA_REGIONS, US_REGIONS, PostcodeError, postcodes, region_country
from directory.vocabulary import TermError, vocabulary

COLUMNS = (
    "external_id", "name", "credentials", "license_number", "license_region", "email", "phone", "website", "address",
    "city", "region", "postcode", "country", "latitude", "longitude", "modalities", "specialties", "languages",
    "insurance", "ages", "client_types", "communities", "telehealth", "in_person", "accepting_new_clients",
    "availability_confirmed_on", "fee_min", "fee_max", "sliding_scale", "gender", "bio", "published",
)
ALIASES = {
    "id": "external_id", "listing_id": "external_id", "full_name": "name", "therapist": "name",
    "licence_number": "license_number", "license": "license_number", "licence": "license_number",
    "license_state": "license_region", "licence_province": "license_region", "licensed_in": "license_region",
    "e_mail": "email", "email_address": "email", "telephone": "phone", "phone_number": "phone", "url": "website",
    "web": "website", "street": "address", "street_address": "address", "town": "city", "state": "region",
    "province": "region", "state_province": "region", "zip": "postcode", "zip_code": "postcode", "zipcode": "postcode",
    "postal_code": "postcode", "postalcode": "postcode", "lat": "latitude", "lng": "longitude", "lon": "longitude",
    "long": "longitude", "modality": "modalities", "approaches": "modalities", "specialty": "specialties",
    "specialities": "specialties", "language": "languages", "insurances": "insurance", "insurers": "insurance",
    "online": "telehealth", "virtual": "telehealth", "accepting": "accepting_new_clients",
    "accepting_clients": "accepting_new_clients", "availability_confirmed": "availability_confirmed_on",
    "confirmed_on": "availability_confirmed_on", "sliding": "sliding_scale", "about": "bio", "description": "bio",
    "age": "ages", "age_groups": "ages", "ages_served": "ages", "client_type": "client_types",
    "clients": "client_types", "participants": "client_types", "community": "communities",
    "communities_served": "communities", "sex": "gender", "gender_identity": "gender",
}
REQUIRED_COLUMNS = ("external_id", "name")
UNMAPPED_GENDER_CHARS = 40
MULTI = {"modalities": "modality", "specialties": "specialty", "languages": "language", "insurance": "insurance",
         "ages": "age", "client_types": "client_type", "communities": "community"}
# Who a therapist sees was once written among specialties ("Couples", "Teens"), and spreadsheets still do: such a
# value is recorded in its own column, with a warning, rather than rejected.
WHO_IT_IS_FOR = {"age": "ages", "client_type": "client_types"}
# Where such a value goes when the file has no column for it: terms to add to what the listing has, by column (the
# import adds them; replacing would lose the ages an admin set).
ADDED_TERMS = "added_terms"
BOOLEANS = {"telehealth": False, "in_person": True, "accepting_new_clients": True, "sliding_scale": False,
            "published": True}
LENGTHS = {
    "external_id": 100, "name": 200, "credentials": 200, "license_number": 100, "email": 254, "phone": 40,
    "website": 500, "address": 300, "city": 120, "bio": 10_000,
}
_TRUE = {"yes", "y", "true", "t", "1"}
_FALSE = {"no", "n", "false", "f", "0"}
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[A-Za-z]{2,}$")
_TERM_SEPARATORS = re.compile(r"[;|]")
_SPACE = re.compile(r"\s")  # for a str pattern, exactly what str.isspace() says of a character
_COUNTRIES = {"us": "US", "usa": "US", "united states": "US", "united states of america": "US",
              "ca": "CA", "can": "CA", "canada": "CA"}
_REGION_NAMES = {name.casefold(): code for code, name in (US_REGIONS | CA_REGIONS).items()}


@dataclass(frozen=True)
class Issue:
    """A problem (or a warning) tied to a line of the file; line 0 means the file as a whole."""

    line: int
    external_id: str
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"line": self.line, "external_id": self.external_id, "field": self.field, "message": self.message}


@dataclass
class Record:
    """One CSV record: the line it starts on, its cells as written, and its cells by column."""

    line: int
    cells: list[str]
    values: dict[str, str]


def column_for(header: str) -> str | None:
    """The format column a header names (case, spaces, hyphens and aliases allowed), or None."""
    key = re.sub(r"[\s\-]+", "_", header.strip().casefold()).strip("_")
    return key if key in COLUMNS else ALIASES.get(key)


class RowChecker:
    """Collects every problem of one row while turning its cells into Listing field values: `check` applies every
    rule, then `fields`, `errors` and `warnings` hold the outcome."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.values = record.values
        self.external_id = record.values.get("external_id", "")
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.fields: dict[str, Any] = {}

    def error(self, column: str, message: str) -> None:
        """Note a problem of a column that rejects the row."""
        self.errors.append(Issue(self.record.line, self.external_id, column, message))

    def warn(self, column: str, message: str) -> None:
        """Note something about a column that was fixed or is worth knowing; the row is kept."""
        self.warnings.append(Issue(self.record.line, self.external_id, column, message))

    def given(self, column: str) -> bool:
        """Whether the file has this column: the fields of columns it lacks are left as they are."""
        return column in self.values

    def text(self, column: str) -> None:
        """A text column, within its length limit."""
        if not self.given(column):
            return
        value = self.values[column]
        if len(value) > LENGTHS[column]:
            self.error(column, f"is {len(value)} characters long; the limit is {LENGTHS[column]}")
        else:
            self.fields[column] = value

    def boolean(self, column: str) -> None:
        """A yes/no column; empty means its default."""
        if not self.given(column):
            return
        value = self.values[column].casefold()
        if value in _TRUE:
            self.fields[column] = True
        elif value in _FALSE:
            self.fields[column] = False
        elif not value:
            self.fields[column] = BOOLEANS[column]
        else:
            self.error(column, f"{self.values[column][:40]!r} is not yes/no, true/false, y/n or 1/0")

    def number(self, column: str, low: float, high: float, integer: bool = False) -> float | int | None:
        """A number column's value within [low, high] (a whole number when `integer`; $ and , allowed), or None."""
        raw = self.values.get(column, "")
        if not raw:
            return None
        cleaned = raw.replace("$", "").replace(",", "") if integer else raw
        try:
            value = float(cleaned)
        except ValueError:
            self.error(column, f"{raw[:40]!r} is not a number")
            return None
        if not low <= value <= high:
            self.error(column, f"{raw[:40]} is out of range ({low:g} to {high:g})")
            return None
        if integer:
            if value != int(value):
                self.error(column, f"{raw[:40]} is not a whole number")
                return None
            return int(value)
        return value

    def terms(self, column: str) -> None:
        """A column of vocabulary terms, separated by ; or | (or commas), as slugs."""
        if not self.given(column):
            return
        kind = MULTI[column]
        slugs: list[str] = self.fields.get(column, [])  # any a specialty moved here
        for part in _TERM_SEPARATORS.split(self.values[column]):
            named, unnamed = _named_terms(kind, part)
            slugs += [slug for slug in named if slug not in slugs]
            for piece, problem in unnamed:
                if kind != "specialty" or not self._who_it_is_for(piece):
                    self.error(column, problem)
        self.fields[column] = slugs

    def _who_it_is_for(self, piece: str) -> bool:
        """Record a specialty that names an age or a client type in that column; whether it named one."""
        for kind, column in WHO_IT_IS_FOR.items():
            found = vocabulary.match(kind, piece)
            if len(found) == 1:
                self.warn("specialties", f"{piece.strip()[:60]!r} is who the therapist sees, not a specialty; "
                                         f"recorded under {column}")
                held = self.fields if self.given(column) else self.fields.setdefault(ADDED_TERMS, {})
                slugs = held.setdefault(column, [])
                if found[0] not in slugs:
                    slugs.append(found[0])
                return True
        return False

    def gender(self) -> None:
        """The gender column: a term of the gender vocabulary, or blank; what names none is kept as written."""
        if not self.given("gender"):
            return
        raw = self.values["gender"]
        found = vocabulary.match("gender", raw) if raw else ()
        if len(found) == 1:
            self.fields["gender"], self.fields["gender_unmapped"] = found[0], ""
        elif not raw or vocabulary.says_nothing(raw):
            self.fields["gender"], self.fields["gender_unmapped"] = "", ""
        elif len(raw) > UNMAPPED_GENDER_CHARS:
            self.error("gender", f"is {len(raw)} characters long; the limit is {UNMAPPED_GENDER_CHARS}")
        else:
            self.warn("gender", f"{raw[:40]!r} is none of {', '.join(vocabulary.slugs('gender'))}; kept as written, "
                                "shown on the profile but not a filter")
            self.fields["gender"], self.fields["gender_unmapped"] = "", raw

    def check(self) -> None:
        """Apply every rule to the row."""
        for column in ("external_id", "name"):
            if not self.values.get(column):
                self.error(column, "is required")
        for column in LENGTHS:
            self.text(column)
        for column in BOOLEANS:
            self.boolean(column)
        for column in MULTI:
            self.terms(column)
        self.gender()
        self._contact()
        self._place()
        self._fees()
        confirmed = self.values.get("availability_confirmed_on")
        if confirmed:
            try:
                self.fields["availability_confirmed_on"] = dt.date.fromisoformat(confirmed)
            except ValueError:
                self.error("availability_confirmed_on", f"{confirmed[:40]!r} is not a date (YYYY-MM-DD)")
        elif self.given("availability_confirmed_on"):
            self.fields["availability_confirmed_on"] = None

    def _contact(self) -> None:
        email = self.fields.get("email")
        if email and not _EMAIL.match(email):
            self.error("email", f"{email[:60]!r} is not an email address")
        phone = self.fields.get("phone")
        if phone:
            digits = re.sub(r"\D", "", phone.split("x")[0].split("ext")[0])
            if re.search(r"[^\d\s().+\-x/ext]", phone.casefold()) or not 7 <= len(digits) <= 15:
                self.error("phone", f"{phone[:40]!r} is not a phone number")
        website = self.fields.get("website")
        if website:
            if "://" not in website and re.match(r"^[\w-]+(\.[\w-]+)+(/|$)", website):
                self.warn("website", f"{website[:60]!r} has no scheme; https:// was added")
                website = self.fields["website"] = "https://" + website
            parts = urlsplit(website)
            if (parts.scheme.casefold() not in ("http", "https") or not parts.netloc
                    or _SPACE.search(website)):
                self.error("website", f"{website[:60]!r} is not an http or https address")

    def _region(self, column: str) -> str | None:
        raw = self.values.get(column, "")
        if not raw:
            return None
        upper = raw.upper()
        code = upper if upper in US_REGIONS or upper in CA_REGIONS else _REGION_NAMES.get(raw.casefold())
        if code is None:
            self.error(column, f"{raw[:40]!r} is not a US state or Canadian province")
        return code

    def _place(self) -> None:
        country_raw = self.values.get("country", "")
        country = _COUNTRIES.get(country_raw.casefold()) if country_raw else None
        if country_raw and country is None:
            self.error("country", f"{country_raw[:40]!r} is not US or CA")
        region = self._region("region")
        licence = self._region("license_region")
        lat = self.number("latitude", -90, 90)
        lon = self.number("longitude", -180, 180)
        if (lat is None) != (lon is None) and not any(e.field in ("latitude", "longitude") for e in self.errors):
            self.error("latitude" if lat is None else "longitude", "latitude and longitude go together; one is missing")
        postcode = self.values.get("postcode", "")
        if postcode and re.fullmatch(r"\d{3,4}", postcode) and country in (None, "US"):
            padded = postcode.zfill(5)
            self.warn("postcode", f"{postcode} was padded to {padded} (a spreadsheet dropped its leading zeros)")
            postcode = padded
        place = None
        if postcode:
            try:
                # Spreadsheets carry no-break and other Unicode spaces, which the API's postcode grammar refuses.
                place = postcodes.lookup(" ".join(postcode.split()))
            except PostcodeError as exc:
                where = f" ({country})" if country else ""
                self.error("postcode", exc.message + where if exc.code == "unknown_postcode" else exc.message)
        elif lat is None and not any(e.field in ("latitude", "longitude") for e in self.errors):
            self.error("postcode", "a postcode, or both latitude and longitude, is required")
        if place is not None:
            if country and country != place.country:
                self.error("country", f"{country} does not match postcode {place.postcode} ({place.country})")
            if region and region != place.region:
                self.error("region", f"{region} does not match postcode {place.postcode} ({place.region})")
            country, region = place.country, place.region
            self.fields["postcode"] = place.postcode
            if not self.fields.get("city"):
                self.fields["city"] = place.name.rsplit(",", 1)[0]
        elif not postcode and lat is not None:
            country = country or (region_country(region) if region else None)
            if country is None:
                self.error("country", "without a postcode, give the country or the region")
            self.fields["postcode"] = ""
        if country:
            self.fields["country"] = country
        if region:
            self.fields["region"] = region
        # Therapists are licensed where they practise unless the file says otherwise.
        self.fields["license_region"] = licence or region or ""
        if self.given("latitude") or self.given("longitude"):
            self.fields["latitude"], self.fields["longitude"] = lat, lon

    def _fees(self) -> None:
        fee_min = self.number("fee_min", 0, 100_000, integer=True)
        fee_max = self.number("fee_max", 0, 100_000, integer=True)
        if fee_min is not None and fee_max is not None and fee_min > fee_max:
            self.error("fee_min", f"fee_min {fee_min} is more than fee_max {fee_max}")
        for column, value in (("fee_min", fee_min), ("fee_max", fee_max)):
            if self.given(column):
                self.fields[column] = value


# A file names the same few terms row after row, so each part of a value ("EFT", " Gottman Method") is resolved
# once. Bounded, so a file of all-different parts costs only the misses.
@functools.lru_cache(maxsize=4096)
def _named_terms(kind: str, part: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The slugs one part of a terms column (between ; or |) names, in order and once each, and each piece naming
    none with its problem."""
    named: list[str] = []
    unnamed: list[tuple[str, str]] = []
    # "CBT, EMDR": no term has a comma in its names, so commas separate terms when the whole part names none.
    pieces = [part] if vocabulary.match(kind, part) or "," not in part else part.split(",")
    for piece in pieces:
        if not piece.strip():
            continue
        try:
            slug = vocabulary.resolve(kind, piece)
        except TermError as error:
            unnamed.append((piece, str(error)))
            continue
        if slug not in named:  # "CBT, Cognitive Behavioral Therapy" names one term
            named.append(slug)
    return tuple(named), tuple(unnamed)


def check_record(record: Record) -> tuple[dict[str, Any], list[Issue], list[Issue]]:
    """Listing field values of a record (only for the columns the file has), its errors and its warnings."""
    checker = RowChecker(record)
    checker.check()
    return checker.fields, checker.errors, checker.warnings
