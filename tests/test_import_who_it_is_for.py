"""CSV import of who a therapist sees (ages, client types), the communities their practice affirms, and gender.

The new columns and their aliases, genders mapped or kept as written, specialties that name an age or a client type
(moved there), the template's new columns, and the export round trip of the new fields.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy import update as sa_update
from sqlalchemy.orm import Session

from directory.imports.csv_writing import template_csv
from directory.models import Listing
from helpers import GOOD, do_import, error_lines, make_csv


def _listing(session: Session, external_id: str) -> Listing:
    session.expire_all()
    listing = session.scalar(select(Listing).where(Listing.external_id == external_id))
    assert listing is not None, external_id
    return listing


def test_ages_client_types_and_communities_are_read_as_terms(app: Flask, session: Session) -> None:
    rows = [
        {**GOOD, "external_id": "who-1", "ages": "Teens; adults|Seniors", "client_types": "Individuals | Couples",
         "communities": "LGBTQ+; Christian; veterans"},
        {**GOOD, "external_id": "who-2", "ages": "children, young adults", "client_types": "family therapy",
         "communities": ""},
        {**GOOD, "external_id": "who-3"},  # the columns left empty: nothing
    ]
    report = do_import(app, make_csv(rows))
    assert report.created == 3 and not report.errors.total, report.errors.first
    first = _listing(session, "who-1")
    assert (first.ages, first.client_types, first.communities) == (
        ["teens", "adults", "older-adults"], ["individuals", "couples"],
        ["lgbtq-affirming", "faith-christian", "veterans"])
    second = _listing(session, "who-2")
    assert (second.ages, second.client_types, second.communities) == (["children", "young-adults"], ["families"], [])
    third = _listing(session, "who-3")
    assert (third.ages, third.client_types, third.communities) == ([], [], [])
    # Searchable at once by each new filter.
    client = app.test_client()
    for params in ({"age": "older-adults"}, {"client_type": "couples"}, {"community": "faith-christian"}):
        body = client.get("/api/v1/search", query_string={"postcode": "10001", "q": "Robin Example", **params})
        assert [r["id"] for r in body.get_json()["results"]] == ["who-1"], params


def test_unknown_ages_client_types_and_communities_are_errors_with_their_line(app: Flask, session: Session) -> None:
    rows = [GOOD, {**GOOD, "external_id": "bad-age", "ages": "Toddlerz; Martians"},
            {**GOOD, "external_id": "bad-type", "client_types": "Coupels"},
            {**GOOD, "external_id": "bad-community", "communities": "Astronauts"}]
    report = do_import(app, make_csv(rows))
    assert not report.written
    assert {(3, "ages"), (4, "client_types"), (5, "communities")} <= set(error_lines(report))
    messages = {(e.line, e.field): e.message for e in report.errors.first}
    assert "Martians" in messages[(3, "ages")]
    assert "did you mean 'Couples' (couples)?" in messages[(4, "client_types")]


@pytest.mark.parametrize(("header", "column", "value", "expected"), [
    ("Age", "ages", "Teens", ["teens"]),
    ("Ages Served", "ages", "Adults", ["adults"]),
    ("age-groups", "ages", "Children", ["children"]),
    ("Client Type", "client_types", "Couples", ["couples"]),
    ("Clients", "client_types", "Families", ["families"]),
    ("Participants", "client_types", "Groups", ["groups"]),
    ("Community", "communities", "BIPOC", ["bipoc-centered"]),
    ("Communities Served", "communities", "Refugees", ["immigrants-refugees"]),
    ("Sex", "gender", "Female", "woman"),
    ("Gender Identity", "gender", "Non-binary", "non-binary"),
])
def test_the_new_columns_aliases(app: Flask, session: Session, header: str, column: str, value: str,
                                 expected: Any) -> None:
    row = {"external_id": "alias-1", "name": "Alias Example", "postcode": "10001", header: value}
    report = do_import(app, make_csv([row]))
    assert report.created == 1 and not report.errors.total, report.errors.first
    assert not any("unknown columns" in w.message for w in report.warnings.first)
    assert getattr(_listing(session, "alias-1"), column) == expected


# Genders as written, and (gender, gender_unmapped, warned) each must give: decided by hand from the vocabulary.
GENDER_CELLS = [
    ("Female", ("woman", "", False)), ("F", ("woman", "", False)), ("trans woman", ("woman", "", False)),
    ("male", ("man", "", False)), ("M", ("man", "", False)), ("Man", ("man", "", False)),
    ("NB", ("non-binary", "", False)), ("genderqueer", ("non-binary", "", False)),
    ("Non-Binary", ("non-binary", "", False)),
    ("Prefer not to say", ("", "", False)), ("N/A", ("", "", False)), ("", ("", "", False)),
    ("Two-Spirit", ("", "Two-Spirit", True)), ("Woman (she/her)", ("", "Woman (she/her)", True)),
    ("x" * 40, ("", "x" * 40, True)),
]


def test_gender_is_a_term_blank_or_kept_as_written_with_a_warning(app: Flask, session: Session) -> None:
    rows = [{**GOOD, "external_id": f"g-{n}", "gender": cell} for n, (cell, _) in enumerate(GENDER_CELLS)]
    report = do_import(app, make_csv(rows))
    assert report.created == len(rows) and not report.errors.total, report.errors.first
    warned = {w.line for w in report.warnings.first if w.field == "gender"}
    for n, (cell, (gender, unmapped, warns)) in enumerate(GENDER_CELLS):
        listing = _listing(session, f"g-{n}")
        assert (listing.gender, listing.gender_unmapped, n + 2 in warned) == (gender, unmapped, warns), cell
    message = next(w.message for w in report.warnings.first if w.field == "gender")
    assert "'Two-Spirit'" in message and "kept as written" in message
    # A gender as written is no filter's match: only the listings whose gender is the term.
    client = app.test_client()
    body = client.get("/api/v1/search", query_string={"q": "Robin Example", "gender": "woman", "per_page": 100})
    assert sorted(r["id"] for r in body.get_json()["results"]) == ["g-0", "g-1", "g-2"]


def test_a_gender_too_long_to_keep_is_an_error_and_a_later_term_replaces_a_kept_one(app: Flask,
                                                                                   session: Session) -> None:
    report = do_import(app, make_csv([{**GOOD, "external_id": "g-long", "gender": "y" * 41}]))
    assert not report.written and error_lines(report) == [(2, "gender")]
    assert "41 characters" in report.errors.first[0].message
    assert do_import(app, make_csv([{**GOOD, "external_id": "g-later", "gender": "Two-Spirit"}])).created == 1
    assert do_import(app, make_csv([{**GOOD, "external_id": "g-later", "gender": "woman"}])).updated == 1
    listing = _listing(session, "g-later")
    assert (listing.gender, listing.gender_unmapped) == ("woman", "")
    assert do_import(app, make_csv([{**GOOD, "external_id": "g-later", "gender": "prefer not to say"}])).updated == 1
    listing = _listing(session, "g-later")
    assert (listing.gender, listing.gender_unmapped) == ("", "")
    # A file without the column leaves a listing's gender as it is.
    assert do_import(app, make_csv([{**GOOD, "external_id": "g-later", "gender": "Bigender"}])).updated == 1
    assert do_import(app, make_csv([{**GOOD, "external_id": "g-later"}])).unchanged == 1
    listing = _listing(session, "g-later")
    assert (listing.gender, listing.gender_unmapped) == ("", "Bigender")


def test_a_specialty_naming_an_age_or_a_client_type_is_recorded_there_with_a_warning(app: Flask,
                                                                                     session: Session) -> None:
    rows = [
        {**GOOD, "external_id": "mv-1", "specialties": "Depression; Teens; Couples"},
        {**GOOD, "external_id": "mv-2", "specialties": "Adolescents|Couples counselling|Anxiety",
         "ages": "Adults; teenagers", "client_types": "Individuals"},
        {**GOOD, "external_id": "mv-3", "specialties": "Family therapy, Grief"},
    ]
    report = do_import(app, make_csv(rows))
    assert report.created == 3 and not report.errors.total, report.errors.first
    first = _listing(session, "mv-1")
    assert (first.specialties, first.ages, first.client_types) == (["depression"], ["teens"], ["couples"])
    # Beside the file's own ages and client types, once each.
    second = _listing(session, "mv-2")
    assert (second.specialties, second.ages, second.client_types) == (
        ["anxiety"], ["teens", "adults"], ["couples", "individuals"])
    third = _listing(session, "mv-3")
    assert (third.specialties, third.client_types) == (["grief"], ["families"])
    moved = [(w.line, w.message) for w in report.warnings.first if w.field == "specialties"]
    assert len(moved) == 5
    assert (2, "'Teens' is who the therapist sees, not a specialty; recorded under ages") in moved
    assert (2, "'Couples' is who the therapist sees, not a specialty; recorded under client_types") in moved


def test_a_term_repeated_on_many_rows_is_moved_or_refused_on_each(app: Flask, session: Session) -> None:
    # Each part of a value is resolved once a file (row_rules._named_terms): what it does to a row happens on all.
    rows = [{**GOOD, "external_id": f"rep-{n}", "specialties": "Depression; Teens", "ages": "Adults",
             "modalities": "CBT, Cognitive Behavioral Therapy; cbt"} for n in range(3)]
    report = do_import(app, make_csv(rows))
    assert report.created == 3 and not report.errors.total, report.errors.first
    assert [(_listing(session, f"rep-{n}").specialties, _listing(session, f"rep-{n}").ages,
             _listing(session, f"rep-{n}").modalities) for n in range(3)] == [
        (["depression"], ["teens", "adults"], ["cbt"])] * 3  # a term named twice in a part or a value is kept once
    assert [w.line for w in report.warnings.first if w.field == "specialties"] == [2, 3, 4]
    refused = do_import(app, make_csv([{**GOOD, "external_id": f"bad-{n}", "ages": "Martians"} for n in range(3)]))
    assert error_lines(refused) == [(2, "ages"), (3, "ages"), (4, "ages")]


def test_a_moved_specialty_adds_to_the_ages_and_client_types_a_listing_has_when_the_file_has_no_such_column(
        app: Flask, session: Session) -> None:
    do_import(app, make_csv([{**GOOD, "external_id": "keep-1", "ages": "adults; older adults",
                              "client_types": "individuals"}]))
    report = do_import(app, make_csv([{**GOOD, "external_id": "keep-1", "specialties": "Depression; Teens; Couples"}]))
    assert report.updated == 1 and not report.errors.total, report.errors.first
    session.expire_all()
    listing = _listing(session, "keep-1")
    assert (listing.ages, listing.client_types) == (["adults", "older-adults", "teens"], ["individuals", "couples"])
    again = do_import(app, make_csv([{**GOOD, "external_id": "keep-1", "specialties": "Depression; Teens; Couples"}]))
    assert again.unchanged == 1  # already there: nothing to add


def test_a_moved_specialty_of_a_new_listing_in_a_file_without_those_columns_creates_it_with_them(
        app: Flask, session: Session) -> None:
    rows = [{"external_id": f"new-{i}", "name": f"Robin {i}", "postcode": "10001",
             "specialties": "Depression; Couples; Teens"} for i in range(3)]
    report = do_import(app, make_csv(rows))
    assert report.created == 3 and not report.errors.total, report.errors.first
    for i in range(3):
        listing = _listing(session, f"new-{i}")
        assert (listing.specialties, listing.ages, listing.client_types) == (["depression"], ["teens"], ["couples"])


def test_the_template_documents_the_new_columns(app: Flask, session: Session) -> None:
    row = next(csv.DictReader(io.StringIO(template_csv())))
    assert {"ages", "client_types", "communities", "gender"} <= set(row)
    assert all(row[column] for column in ("ages", "client_types", "communities", "gender"))
    do_import(app, template_csv())
    listing = _listing(session, row["external_id"])
    assert listing.ages and listing.client_types and listing.communities and listing.gender


def test_export_then_import_keeps_who_it_is_for_communities_and_gender(
        app: Flask, session: Session, runner: FlaskCliRunner, tmp_path: Path) -> None:
    rows = [
        {**GOOD, "external_id": "rt-1", "ages": "teens; older adults", "client_types": "couples; groups",
         "communities": "LGBTQ+; Faith-informed: Jewish; Neurodivergent-affirming", "gender": "Non-binary"},
        {**GOOD, "external_id": "rt-2", "gender": "Two-Spirit", "communities": "veterans"},
        {**GOOD, "external_id": "rt-3", "gender": "prefer not to say", "ages": "children", "client_types": "families"},
    ]
    assert do_import(app, make_csv(rows)).created == 3
    before = {external_id: _fields(_listing(session, external_id)) for external_id in ("rt-1", "rt-2", "rt-3")}
    out = tmp_path / "export.csv"
    assert runner.invoke(args=["export-csv", str(out)]).exit_code == 0
    exported = {r["external_id"]: r for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline=""))}
    assert exported["rt-2"]["gender"] == "Two-Spirit" and exported["rt-3"]["gender"] == ""
    ours = tmp_path / "ours.csv"  # the export's own lines for these three listings, as it wrote them
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    ours.write_text(lines[0] + "".join(line for line in lines[1:] if line.startswith(tuple(before))),
                    encoding="utf-8")
    session.execute(sa_update(Listing).where(Listing.external_id.in_(before)).values(
        ages=[], client_types=[], communities=[], gender="", gender_unmapped=""))
    session.commit()
    result = runner.invoke(args=["import-csv", str(ours), "--json"])
    report = json.loads(result.output)
    assert report["updated"] == 3 and report["created"] == 0 and not report["errors"]["first"]
    assert {external_id: _fields(_listing(session, external_id)) for external_id in before} == before
    # And once more: nothing to change.
    again = json.loads(runner.invoke(args=["import-csv", str(ours), "--json"]).output)
    assert (again["updated"], again["created"], again["unchanged"]) == (0, 0, 3)


def _fields(listing: Listing) -> tuple[Any, ...]:
    return listing.ages, listing.client_types, listing.communities, listing.gender, listing.gender_unmapped
