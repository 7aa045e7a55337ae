"""Bounded cost and safe output for any input (issue 14, first items): numbers of any length are range-checked
before any arithmetic, and the errors CSV is protected against formulas in every cell, the header's included."""

from __future__ import annotations

import csv
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient

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
