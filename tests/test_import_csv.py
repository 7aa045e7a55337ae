"""CSV import against hostile files, every validation rule, the modes, idempotence and the export round trip.

The columns of who a therapist sees, the communities their practice affirms and gender: test_import_who_it_is_for.py.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from whoosh import index as whoosh_index

from directory.imports.csv_writing import template_csv
from directory.imports.row_rules import COLUMNS
from directory.models import ImportRun, Listing
from directory.search.documents import listing_document
from directory.search.sync import check
from helpers import GOOD, do_import, error_lines, make_csv, on_postgresql


def listing_count(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Listing)) or 0


def test_a_good_row_is_created_and_searchable(app: Flask, session: Session) -> None:
    report = do_import(app, make_csv([GOOD]))
    assert (report.created, report.rejected, report.written) == (1, 0, True)
    listing = session.scalar(select(Listing).where(Listing.external_id == "imp-1"))
    assert (listing.modalities, listing.city, listing.region, listing.country) == (["eft"], "New York", "NY", "US")
    body = app.test_client().get("/api/v1/search", query_string={"postcode": "10001", "q": "Robin Example"}).get_json()
    assert [r["id"] for r in body["results"]] == ["imp-1"]


def test_a_new_rows_document_is_the_one_its_database_row_makes(app: Flask, session: Session,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # New rows are indexed from the values inserted, never read back: the model's defaults for the columns a file
    # lacks, and the batch's timestamp, must be what the database then holds.
    from directory.search import sync

    made: list[dict[str, object] | None] = []
    monkeypatch.setattr(sync, "listing_document", lambda listing: made.append(listing_document(listing)) or made[-1])
    sparse = make_csv([{"external_id": "few-1", "name": "Sparse Example", "postcode": "10001"}])
    assert do_import(app, sparse).created == 1 and do_import(app, template_csv()).created == 1
    monkeypatch.undo()
    session.expire_all()
    listings = session.scalars(select(Listing).where(Listing.external_id.in_(["few-1", "assoc-00042"]))
                               .order_by(Listing.id)).all()
    assert [listing.external_id for listing in listings] == ["few-1", "assoc-00042"]
    assert (listings[0].in_person, listings[0].accepting_new_clients, listings[0].modalities) == (True, True, [])
    assert made == [listing_document(listing) for listing in listings]
    assert check(session, app.extensions["search"]).clean
    later = Listing(external_id="after-1", name="After Import", slug="after-import", country="US", postcode="10001")
    session.add(later)
    session.commit()  # PostgreSQL's copied rows drew their ids from the sequence the ORM's insert uses
    assert later.id > max(listing.id for listing in listings)


def test_rows_are_still_indexed_after_the_commit_when_the_import_cannot_stream_them(
    app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from directory.search.index.storage import IndexBusy

    def busy(bulk: bool) -> None:
        raise IndexBusy("another writer holds the index")

    # New rows are inserted in bulk, without a flush that would record them for the after-commit path.
    monkeypatch.setattr(app.extensions["search"], "begin_write", busy)
    rows = [{**GOOD, "external_id": f"late-{i}", "name": f"Quillon Late {i}"} for i in range(3)]
    assert do_import(app, make_csv(rows)).created == 3
    body = app.test_client().get("/api/v1/search", query_string={"q": "Quillon"}).get_json()
    assert sorted(r["id"] for r in body["results"]) == ["late-0", "late-1", "late-2"]


def test_bom_semicolons_crlf_quoted_newlines_and_aliases(app: Flask, session: Session) -> None:
    text = make_csv([{"External ID ": "imp-2", "NAME": "Ana; Bio", "Zip": "02108", "State": "ma",
                      "Modality": "emotionally focused couples therapy | Gottman", "About": 'Line one\r\nsaid "hi"'}],
                    delimiter=";")
    report = do_import(app, "\ufeff" + text)
    assert report.created == 1 and not report.errors.total, report.errors.first
    listing = session.scalar(select(Listing).where(Listing.external_id == "imp-2"))
    assert listing.name == "Ana; Bio" and listing.bio == 'Line one\r\nsaid "hi"'
    assert listing.modalities == ["eft", "gottman"] and listing.region == "MA"


def test_tabs_and_windows_1252_with_a_warning(app: Flask, session: Session) -> None:
    text = make_csv([{**GOOD, "external_id": "imp-3", "name": "José Müller"}], delimiter="\t")
    report = do_import(app, text.encode("cp1252"))
    assert report.created == 1
    assert any("Windows-1252" in w.message for w in report.warnings.first)
    assert session.scalar(select(Listing.name).where(Listing.external_id == "imp-3")) == "José Müller"


def test_unknown_columns_warn_once_and_short_zips_are_padded(app: Flask, session: Session) -> None:
    rows = [{**GOOD, "external_id": f"imp-z{i}", "postcode": "2108", "Favourite colour": "blue"} for i in range(3)]
    report = do_import(app, make_csv(rows))
    assert report.created == 3
    assert sum("unknown columns" in w.message for w in report.warnings.first) == 1
    assert sum("padded to 02108" in w.message for w in report.warnings.first) == 3
    assert session.scalar(select(Listing.postcode).where(Listing.external_id == "imp-z0")) == "02108"


def test_a_postcode_with_spreadsheet_spaces_still_places_the_row(app: Flask, session: Session) -> None:
    # The API's postcode grammar takes ASCII spaces only; a spreadsheet's no-break or ideographic space is normal.
    rows = [{**GOOD, "external_id": "imp-nb", "postcode": "M5V\u00a03L9", "region": "ON", "country": "CA"},
            {**GOOD, "external_id": "imp-ideo", "postcode": "10001\u3000"}]
    report = do_import(app, make_csv(rows))
    assert report.created == 2, [e.message for e in report.errors.first]


def test_every_validation_error_is_reported_with_its_line(app: Flask, session: Session) -> None:
    before = listing_count(session)
    rows = [
        GOOD,                                                                    # line 2: fine
        {"external_id": "", "name": "", "postcode": "", "bio": "no ids"},        # 3: required x3
        {**GOOD, "external_id": "b1", "postcode": "ABCDE"},                       # 4: malformed
        {**GOOD, "external_id": "b2", "postcode": "99999"},                       # 5: not in data
        {**GOOD, "external_id": "b3", "postcode": "", "latitude": "91", "longitude": "-200"},  # 6
        {**GOOD, "external_id": "b4", "email": "not-an-email", "phone": "12", "website": "javascript:alert(1)"},  # 7
        {**GOOD, "external_id": "b5", "modalities": "EFT; Astrolgy", "specialties": "depresion"},  # 8
        {**GOOD, "external_id": "b6", "telehealth": "perhaps", "fee_min": "abc"},  # 9
        {**GOOD, "external_id": "b7", "fee_min": "200", "fee_max": "100"},         # 10
        {**GOOD, "external_id": "b8"},                                            # 11: duplicate with 12
        {**GOOD, "external_id": "b8"},                                            # 12
        {**GOOD, "external_id": "b9", "availability_confirmed_on": "11/22/2026"},  # 13
        {**GOOD, "external_id": "b10", "latitude": "40.7"},                       # 14: longitude missing
        {**GOOD, "external_id": "b11", "postcode": "M5V 3L9", "region": "QC"},    # 15: region mismatch
    ]
    report = do_import(app, make_csv(rows))
    assert not report.written and listing_count(session) == before
    found = set(error_lines(report))
    expected = {
        (3, "external_id"), (3, "name"), (3, "postcode"), (4, "postcode"), (5, "postcode"), (6, "latitude"),
        (6, "longitude"), (7, "email"), (7, "phone"), (7, "website"), (8, "modalities"), (8, "specialties"),
        (9, "telehealth"), (9, "fee_min"), (10, "fee_min"), (11, "external_id"), (12, "external_id"),
        (13, "availability_confirmed_on"), (14, "longitude"), (15, "region"),
    }
    assert expected <= found, expected - found
    assert report.rejected == 13
    messages = {(e.line, e.field): e.message for e in report.errors.first}
    assert "did you mean 'Depression' (depression)?" in messages[(8, "specialties")]
    assert "Astrolgy" in messages[(8, "modalities")]
    assert "US" in messages[(5, "postcode")]
    assert "line 12" in messages[(11, "external_id")] and "line 11" in messages[(12, "external_id")]


def test_a_huge_field_and_an_unterminated_quote_are_reported_by_line(app: Flask, session: Session) -> None:
    huge = make_csv([GOOD, {**GOOD, "external_id": "big", "bio": "x" * 1_000_000}, {**GOOD, "external_id": "after"}])
    report = do_import(app, huge, skip_invalid=True)
    assert (3, "") in error_lines(report) and "KB limit" in report.errors.first[0].message
    assert report.created == 2 and report.rejected == 1
    broken = 'external_id,name,postcode\r\nq1,Fine,10001\r\nq2,"Never closed,10001\r\nq3,Lost,10001\r\n'
    report = do_import(app, broken, skip_invalid=True)
    assert [(e.line, e.message[:40]) for e in report.errors.first] == [(3, "a quoted field opened on line 3 is never")]
    assert report.created == 1


@pytest.mark.parametrize("data, message", [
    (b"", "empty"), (b"\x00\x01\x02binary", "binary"), (b"name,zip\r\nx,10001\r\n", "no external_id"),
])
def test_unusable_files_exit_2(runner: FlaskCliRunner, tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    result = runner.invoke(args=["import-csv", str(path)])
    assert result.exit_code == 2 and message in result.output
    assert runner.invoke(args=["import-csv", str(tmp_path / "missing.csv")]).exit_code == 2


def test_formula_cells_round_trip_exactly(app: Flask, session: Session, runner: FlaskCliRunner, tmp_path: Path) -> None:
    risky = {**GOOD, "external_id": "f1", "name": "=HYPERLINK(\"http://x\")", "bio": "+1 then -2 and @me",
             "credentials": "'=escaped in the file", "gender": "\tTabbed"}
    assert do_import(app, make_csv([risky])).created == 1
    listing = session.scalar(select(Listing).where(Listing.external_id == "f1"))
    assert listing.credentials == "=escaped in the file"  # a quote before a formula character is the escape
    listing.credentials = "'=already quoted"  # a value that itself looks escaped must survive the trip
    session.commit()
    out = tmp_path / "export.csv"
    assert runner.invoke(args=["export-csv", str(out)]).exit_code == 0
    rows = {r["external_id"]: r for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline=""))}
    assert rows["f1"]["name"].startswith("'=") and rows["f1"]["bio"].startswith("'+")
    assert rows["f1"]["credentials"] == "''=already quoted"
    assert (listing.name, listing.bio) == ('=HYPERLINK("http://x")', "+1 then -2 and @me")
    result = runner.invoke(args=["import-csv", str(out), "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["created"] == report["updated"] == 0
    assert report["unchanged"] == listing_count(session)


def test_export_then_import_is_lossless_for_the_whole_sample(runner: FlaskCliRunner, session: Session,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    assert runner.invoke(args=["export-csv", str(out)]).exit_code == 0
    before = {listing.external_id: listing.updated_at for listing in session.scalars(select(Listing))}
    report = json.loads(runner.invoke(args=["import-csv", str(out), "--json", "--replace"]).output)
    assert (report["unchanged"], report["created"], report["updated"], report["unpublished"]) == (len(before), 0, 0, 0)
    session.expire_all()
    assert {listing.external_id: listing.updated_at for listing in session.scalars(select(Listing))} == before


def test_importing_twice_touches_neither_rows_nor_index(app: Flask, session: Session) -> None:
    rows = [{**GOOD, "external_id": f"twice-{i}", "name": f"Twice {i}"} for i in range(20)]
    first = do_import(app, make_csv(rows))
    assert first.created == 20
    live = Path(app.extensions["search"].root) / "current"
    generation = whoosh_index.open_dir(str(live)).latest_generation()
    stamps = {listing.external_id: listing.updated_at for listing in session.scalars(select(Listing))}
    second = do_import(app, make_csv(rows))
    assert (second.unchanged, second.created, second.updated) == (20, 0, 0)
    assert whoosh_index.open_dir(str(live)).latest_generation() == generation
    session.expire_all()
    assert {listing.external_id: listing.updated_at for listing in session.scalars(select(Listing))} == stamps


def test_strict_skip_invalid_dry_run_and_replace(app: Flask, session: Session) -> None:
    total = listing_count(session)
    rows = [{**GOOD, "external_id": "m1"}, {**GOOD, "external_id": "m2", "postcode": "nope"}]
    assert do_import(app, make_csv(rows), dry_run=True).created == 1 and listing_count(session) == total
    strict = do_import(app, make_csv(rows))
    assert not strict.written and strict.rejected == 1 and listing_count(session) == total
    skipped = do_import(app, make_csv(rows), skip_invalid=True)
    assert skipped.written and (skipped.created, skipped.rejected) == (1, 1) and listing_count(session) == total + 1
    published = session.scalar(select(func.count()).where(Listing.published))
    preview = do_import(app, make_csv([{**GOOD, "external_id": "m1"}]), replace=True, dry_run=True)
    assert preview.unpublished == published - 1
    replaced = do_import(app, make_csv([{**GOOD, "external_id": "m1"}]), replace=True)
    assert replaced.unpublished == published - 1 and listing_count(session) == total + 1
    assert session.scalar(select(func.count()).where(Listing.published)) == 1
    assert app.test_client().get("/api/v1/search").get_json()["total"] == 1


def test_replace_keeps_a_listing_whose_row_is_in_the_file_but_invalid(app: Flask, session: Session) -> None:
    # Skipping a bad row must not also take its listing off the directory: replace only unpublishes listings the
    # file does not mention at all.
    do_import(app, make_csv([{**GOOD, "external_id": "k1"}, {**GOOD, "external_id": "k2"}]))
    before = session.scalar(select(func.count()).where(Listing.published))
    rows = [{**GOOD, "external_id": "k1"}, {**GOOD, "external_id": "k2", "postcode": "nope"}]
    report = do_import(app, make_csv(rows), replace=True, skip_invalid=True)
    assert report.written and report.rejected == 1
    session.expire_all()
    published = set(session.scalars(select(Listing.external_id).where(Listing.published)))
    assert published == {"k1", "k2"}
    assert report.unpublished == before - 2


def test_ten_thousand_rows_with_37_bad(app: Flask, session: Session, tmp_path: Path, runner: FlaskCliRunner) -> None:
    rng = random.Random(37)
    bad_lines = set(rng.sample(range(2, 10_002), 37))
    rows = []
    for line in range(2, 10_002):
        row = {**GOOD, "external_id": f"bulk-{line}", "name": f"Bulk {line}"}
        if line in bad_lines:
            row["postcode"] = "1234X"
        rows.append(row)
    path = tmp_path / "bulk.csv"
    path.write_text(make_csv(rows), encoding="utf-8")
    total = listing_count(session)
    rejected_csv = tmp_path / "rejected.csv"
    strict = json.loads(runner.invoke(args=["import-csv", str(path), "--json",
                                            "--errors-csv", str(rejected_csv)]).output)
    assert strict["rejected"] == 37 and sorted({e["line"] for e in strict["errors"]["first"]}) == sorted(bad_lines)
    assert strict["errors"]["counts"] == [{"field": "postcode", "count": 37,
                                           "problem": "… is not a US ZIP code (… or …)"
                                                      " or a Canadian postal code (… …)."}]
    assert listing_count(session) == total
    written = list(csv.DictReader(io.StringIO(rejected_csv.read_text(encoding="utf-8"), newline="")))
    assert [row["external_id"] for row in written] == [f"bulk-{line}" for line in sorted(bad_lines)]
    result = runner.invoke(args=["import-csv", str(path), "--json", "--skip-invalid"])
    skipped = json.loads(result.output)
    assert result.exit_code == 1 and skipped["created"] == 9963 and listing_count(session) == total + 9963
    run = session.scalar(select(ImportRun).order_by(ImportRun.id.desc()))
    fixed_rows = list(csv.DictReader(io.StringIO(run.errors_csv, newline="")))
    assert len(fixed_rows) == 37 and all(r["errors"].startswith("line ") for r in fixed_rows)
    for row in fixed_rows:
        row["postcode"] = "10001"
        del row["errors"]
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(make_csv(fixed_rows), encoding="utf-8")
    final = runner.invoke(args=["import-csv", str(fixed), "--json"])
    assert final.exit_code == 0 and json.loads(final.output)["created"] == 37
    assert listing_count(session) == total + 10_000
    assert runner.invoke(args=["index", "check"]).exit_code == 0


def test_template_has_every_column_and_imports_cleanly(app: Flask) -> None:
    header = next(csv.reader(io.StringIO(template_csv())))
    assert tuple(header) == COLUMNS
    report = do_import(app, template_csv())
    assert report.created == 1 and not report.errors.total


def test_history_records_who_what_and_how(app: Flask, session: Session) -> None:
    do_import(app, make_csv([GOOD, {**GOOD, "external_id": "h2", "postcode": "x"}]), skip_invalid=True)
    run = session.scalar(select(ImportRun).order_by(ImportRun.id.desc()))
    assert (run.actor, run.filename, run.mode, run.status, run.created, run.rejected) == (
        "test", "t.csv", "skip-invalid", "done", 1, 1)
    assert len(run.sha256) == 64 and run.size > 0 and "h2" in run.errors_csv


@pytest.mark.skipif(not on_postgresql(), reason="plans of prepared statements are PostgreSQL's; this runs in the "
                    "suite's PostgreSQL half, which CI requires")
def test_postgresql_plans_every_statement_for_its_own_values(session: Session) -> None:
    # psycopg prepares a statement after its fifth run, and PostgreSQL may then keep one generic plan for it. An
    # import into an empty table kept one made while the table was small: its lookups of a thousand ids at a time
    # went on scanning every listing written so far (100k rows: 353 s, 81% of it in those lookups; 78 s with every
    # statement planned for its values). A short lookup in an empty table does not reproduce the choice, so this
    # checks the setting on the connections the app uses.
    assert session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
