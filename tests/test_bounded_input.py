"""Issue 14, its first items: numbers of any length are range-checked before any arithmetic, the errors CSV is
protected against formulas in every cell (the header's included), and signing out ends a session everywhere."""

from __future__ import annotations

import csv
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient

from conftest import ADMIN_EMAIL, csrf_token
from directory.csv_format import UnusableFile
from test_import_csv import GOOD, do_import, make_csv


@pytest.mark.parametrize("name", ["page", "per_page", "radius"])
@pytest.mark.parametrize("digits", [309, 400, 4000])
def test_numbers_of_any_length_are_a_400(shared_client: FlaskClient, name: str, digits: int) -> None:
    # Item 6: 309 digits or more made a float conversion overflow into a 500.
    value = "9" * digits
    api = shared_client.get("/api/v1/search", query_string={"postcode": "10001", name: value})
    assert api.status_code == 400 and api.get_json()["error"] == "invalid_parameter", api.get_data(as_text=True)
    page = shared_client.get("/", query_string={"postcode": "10001", name: value})
    assert page.status_code == 400


def test_the_errors_csv_header_is_protected_against_formulas(app: Flask) -> None:
    # Item 12: rejected rows' cells were protected, the header row came back as written.
    rows = [{**GOOD, "external_id": "", "=1+2": "x", "@SUM(A1)": "y"}]
    report = do_import(app, make_csv(rows), dry_run=True)
    header = next(csv.reader(io.StringIO(report.errors_csv)))
    assert "'=1+2" in header and "'@SUM(A1)" in header
    assert not any(cell[:1] in "=+-@" for cell in header if cell)


def test_a_cookie_copied_before_sign_out_opens_nothing_after_it(app: Flask, admin_client: FlaskClient) -> None:
    # Item 9: signing out only cleared the browser's own cookie; a copy of it still opened /admin/.
    cookie = admin_client.get_cookie("session")
    assert cookie is not None and admin_client.get("/admin/").status_code == 200
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    assert thief.get("/admin/").status_code == 200
    token = csrf_token(admin_client.get("/admin/").get_data(as_text=True))
    assert admin_client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert thief.get("/admin/").status_code == 302  # to the sign-in page
    assert admin_client.get("/admin/").status_code == 302


def test_a_new_password_ends_every_other_session(app: Flask, admin_client: FlaskClient) -> None:
    assert admin_client.get("/admin/").status_code == 200
    changed = app.test_cli_runner().invoke(args=["admin", "set-password", ADMIN_EMAIL, "--password-stdin"],
                                          input="another long passphrase\n")
    assert changed.exit_code == 0, changed.output
    assert admin_client.get("/admin/").status_code == 302


def test_a_utf16_file_as_excel_writes_unicode_text_imports(app: Flask) -> None:
    # Item 14: Excel's "Unicode text" is UTF-16 with a BOM and tabs; it was refused as binary (its NUL bytes).
    rows = [{**GOOD, "external_id": f"u16-{i}", "name": f"Zoë Lefèvre {i}", "city": "Montréal",
             "postcode": "H2X 1Y4", "modalities": "EFT"} for i in range(5)]
    data = make_csv(rows, delimiter="\t").encode("utf-16")  # Python writes the BOM first, as Excel does
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff") and b"\x00" in data
    report = do_import(app, data)
    assert (report.created, report.rejected) == (5, 0), report.errors
    body = app.test_client().get("/api/v1/search", query_string={"q": "Lefèvre", "per_page": 1}).get_json()
    assert body["total"] == 5 and body["results"][0]["city"] == "Montréal"


def test_a_utf16_file_holding_a_nul_character_is_still_binary(app: Flask) -> None:
    data = make_csv([GOOD]).replace("Robin", "Ro\x00bin").encode("utf-16")
    with pytest.raises(UnusableFile, match="binary"):
        do_import(app, data, dry_run=True)
