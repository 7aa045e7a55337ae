"""A real browser drives the admin import: sign in, upload a file with errors, fix it, import, find the listing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory import accounts
from directory.imports.csv_writing import listing_values
from directory.models import ImportRun, Listing
from helpers import ADMIN_EMAIL, ADMIN_PASSWORD, GOOD, axe_violations, live_server, make_csv


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
    page.get_by_label("ZIP, postal code or place").fill("M5V 3L9")
    page.get_by_label("Keywords").fill("Meadowlark")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".card h3 a")).to_have_text("Playwright Meadowlark")


def test_saving_the_edit_form_unchanged_in_chromium_changes_nothing(page: Page, admin_url: str, app: Flask,
                                                                     session: Session) -> None:
    # Item 10 of issue 14: inputs dropped the line breaks that imports accept in any field, and the bio's line
    # breaks came back as CRLF.
    listing = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id)).first()
    assert listing is not None
    listing.address = "12 Elm Street\nSuite 4"
    listing.credentials = "LMFT\r\nPhD"
    listing.bio = "\nFirst line.\r\nSecond line.\n\nThird, after a blank line.\r"
    session.commit()
    before = (listing_values(listing), listing.updated_at)
    page.goto(admin_url + f"/admin/listings/{listing.id}/edit")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"Saved {listing.name}.")).to_be_visible()
    session.expire_all()
    after = session.get(Listing, listing.id)
    assert after is not None
    assert {k: v for k, v in listing_values(after).items() if before[0][k] != v} == {}
    assert after.updated_at == before[1]


def test_a_photo_uploaded_in_chromium_shows_on_the_card_and_others_keep_their_initials(
        page: Page, admin_url: str, session: Session, tmp_path: Path) -> None:
    listing = session.scalars(select(Listing).where(Listing.published, Listing.in_person, Listing.photo == "")
                              .order_by(Listing.id)).first()
    assert listing is not None
    picture = tmp_path / "portrait.png"
    Image.new("RGB", (900, 700), "teal").save(picture)
    page.goto(admin_url + f"/admin/listings/{listing.id}/edit")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.set_input_files("#f-photo", str(picture))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"Saved {listing.name}.")).to_be_visible()
    page.goto(f"{admin_url}/?postcode={listing.postcode}&radius=5&format=in_person&per_page=100")
    card = page.locator(".card", has=page.get_by_role("link", name=listing.name, exact=True))
    photo = card.get_by_role("img", name=f"Photo of {listing.name}")
    expect(photo).to_be_visible()
    assert photo.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [600, 467]  # loaded, scaled to 600
    box = photo.bounding_box()
    assert box is not None and round(box["width"]) == round(box["height"]) == 48
    other = session.scalars(select(Listing).where(Listing.published, Listing.photo == "", Listing.id != listing.id)
                            .order_by(Listing.id)).first()
    assert other is not None
    page.goto(f"{admin_url}/therapists/{other.slug}")
    expect(page.locator("span.avatar")).to_have_text(re.compile(r"^[A-Z]{1,2}$"))
    expect(page.locator("img.avatar")).to_have_count(0)


def test_no_admin_page_has_an_accessibility_violation(sized_page: Page, admin_url: str, app: Flask,
                                                      tmp_path: Path) -> None:
    page = sized_page
    page.goto(admin_url + "/admin/login")
    found = {"/admin/login": axe_violations(page)}
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    with app.app_context(), app.extensions["db"]() as session:
        listing_id = session.scalars(select(Listing.id).order_by(Listing.id)).first()
    page.goto(admin_url + "/admin/import")
    upload = tmp_path / "some-bad.csv"
    upload.write_text(make_csv([GOOD, {**GOOD, "external_id": "bad-1", "postcode": "0000"}]), encoding="utf-8")
    page.set_input_files("#file", str(upload))
    page.get_by_role("button", name="Preview").click()
    # The preview is a new page (a form POST): axe runs on it once it is there, not on the one being left.
    expect(page.get_by_role("heading", level=1)).to_have_text("Preview: some-bad.csv")
    found["preview"] = axe_violations(page)
    for path in ("/admin/", "/admin/listings", "/admin/listings?q=a", f"/admin/listings/{listing_id}/edit",
                 f"/admin/listings/{listing_id}/delete", "/admin/import", "/admin/imports", "/admin/stale",
                 "/admin/audit"):
        page.goto(admin_url + path)
        found[path] = axe_violations(page)
    with app.app_context(), app.extensions["db"]() as session:
        runs = [ImportRun(actor=ADMIN_EMAIL, filename="a.csv", size=1, sha256="0" * 64, mode="strict", status=status,
                          rows_total=10, rows_done=4, errors_csv="x" if status == "rejected" else "")
                for status in ("rejected", "running")]
        session.add_all(runs)
        session.commit()
        run_ids = [run.id for run in runs]
    page.route("**/progress.js", lambda route: route.abort())  # the running page's reload would cut axe short
    for run_id in run_ids:
        page.goto(f"{admin_url}/admin/imports/{run_id}")
        found[f"/admin/imports/{run_id}"] = axe_violations(page)
    assert {path: violations for path, violations in found.items() if violations} == {}
