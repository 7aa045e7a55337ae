"""A real browser drives the admin import: sign in, upload a file with errors, fix it, import, find the listing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, live_server
from directory import accounts
from test_import_csv import GOOD, make_csv


@pytest.fixture()
def admin_url(app: Flask, session: Session) -> Iterator[str]:
    accounts.create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    with live_server(app) as url:
        yield url


def test_admin_imports_a_fixed_file_and_the_listing_is_searchable(page: Page, admin_url: str, tmp_path: Path) -> None:
    page.goto(admin_url + "/admin/import")
    expect(page.get_by_role("heading", level=1)).to_have_text("Admin sign-in")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import listings from CSV")

    rows = [{**GOOD, "external_id": "pw-1", "name": "Playwright Meadowlark", "postcode": "M5V 3L9"},
            {**GOOD, "external_id": "pw-2", "name": "Second Row", "postcode": "0000"}]
    bad = tmp_path / "therapists.csv"
    bad.write_text(make_csv(rows), encoding="utf-8")
    page.set_input_files("#file", str(bad))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#rejected-count")).to_have_text("1")
    expect(page.locator("table.errors")).to_contain_text("ZIP code 00000")
    expect(page.get_by_text("Nothing can be imported in strict mode")).to_be_visible()

    with page.expect_download() as download_info:
        page.locator("#errors-csv").click()
    errors_file = tmp_path / "errors.csv"
    download_info.value.save_as(errors_file)
    error_rows = list(csv.DictReader(io.StringIO(errors_file.read_text(encoding="utf-8"), newline="")))
    assert [r["external_id"] for r in error_rows] == ["pw-2"] and "postcode" in error_rows[0]["errors"]

    fixed = tmp_path / "fixed.csv"
    rows[1]["postcode"] = "10001"
    fixed.write_text(make_csv(rows), encoding="utf-8")
    page.goto(admin_url + "/admin/import")
    page.set_input_files("#file", str(fixed))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#rejected-count")).to_have_text("0")
    page.get_by_role("button", name=re.compile(r"Import 2 changes")).click()
    expect(page.locator("#run-status")).to_contain_text("done", timeout=30_000)

    page.goto(admin_url + "/")
    page.get_by_label("ZIP or postal code").fill("M5V 3L9")
    page.get_by_label("Keywords").fill("Meadowlark")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".card h3 a")).to_have_text("Playwright Meadowlark")
