"""A real browser (Playwright driving Debian's Chromium) uses the search page like a person would."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from helpers import live_server


@pytest.fixture(scope="module")
def live_url(shared_app: Flask) -> Iterator[str]:
    with live_server(shared_app) as url:
        yield url


def distances(page: Page) -> list[float]:
    return [float(text.split()[0]) for text in page.locator(".card .distance").all_inner_texts()]


def test_search_filter_and_open_a_profile(page: Page, live_url: str) -> None:
    page.goto(live_url + "/")
    expect(page.get_by_role("banner")).to_contain_text("988")
    page.get_by_label("ZIP, postal code or place").fill("10001")
    page.get_by_label("Within").select_option("25")
    page.get_by_role("button", name="Search").click()

    expect(page.locator("#results-heading")).to_contain_text("within 25 miles of 10001 (New York, NY)")
    first = distances(page)
    # In-person results show their distance; a therapist seen only online says so instead.
    assert page.locator(".card").count() == 20 and len(first) >= 15 and first == sorted(first)

    page.get_by_label("Emotionally Focused Therapy (EFT)").check()
    page.get_by_role("button", name="Apply").first.click()
    expect(page).to_have_url(re.compile(r"modality=eft"))
    cards = page.locator(".card")
    assert cards.count() > 0
    for i in range(cards.count()):
        # The filter's term comes first among the card's approaches, marked as matched.
        expect(cards.nth(i).locator(".terms .matched")).to_contain_text("Emotionally Focused Therapy (EFT)")
    filtered = distances(page)
    assert filtered == sorted(filtered)
    expect(page.get_by_label("Emotionally Focused Therapy (EFT)")).to_be_checked()

    name = cards.first.locator("h3 a").inner_text()
    cards.first.locator("h3 a").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    expect(page.locator(".availability")).to_contain_text("onfirmed")
    expect(page.get_by_role("banner")).to_contain_text("911")


def test_keyboard_search_and_error_message(page: Page, live_url: str) -> None:
    page.goto(live_url + "/")
    page.get_by_label("ZIP, postal code or place").fill("1000")
    page.get_by_label("ZIP, postal code or place").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("is not a US ZIP code")
    page.get_by_label("ZIP, postal code or place").fill("m5v3l9")
    page.get_by_label("Keywords").fill("depresion")
    page.get_by_label("Keywords").press("Enter")
    expect(page.locator(".suggestion")).to_contain_text("depression")
    page.locator(".suggestion a").click()
    expect(page.locator("#results-heading")).to_contain_text("km of M5V 3L9 (Toronto, ON)")
    assert page.locator("mark").count() > 0
