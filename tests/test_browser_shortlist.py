"""The shortlist in Chromium at 1280x900 and 390x844, with JavaScript and without: three saved from a results
page are the shortlist, side by side on a wide screen and stacked on a phone, the share link shows them in a fresh
browser, and axe-core finds nothing on the shortlist or the privacy page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from helpers import SIZES, axe_violations, browser_page, live_server

SEARCH = "/?location=10001&radius=25"


@pytest.fixture(scope="module")
def live_url(shared_app: Flask) -> Iterator[str]:
    with live_server(shared_app) as url:
        yield url


def _save_three(page: Page, javascript: bool) -> list[str]:
    """Press Save on the first three cards of the results; their names."""
    names = []
    for n in range(3):
        card = page.locator("li.card").nth(n)
        name = card.locator("h3 a").inner_text()
        card.get_by_role("button", name=f"Save {name} to your shortlist").click()
        if not javascript:
            page.wait_for_url(re.compile(rf"#{card.get_attribute('id')}$"))
        card = page.locator("li.card").nth(n)
        expect(card.get_by_role("button", name=f"Save {name} to your shortlist")).to_have_attribute(
            "aria-pressed", "true")
        expect(card.locator("button.toggle .label")).to_have_text("Saved")
        if javascript:
            expect(page.locator("#shortlist-status")).to_have_text(f"Saved {name} to your shortlist ({n + 1} of 10).")
        names.append(name)
    expect(page.locator("[data-shortlist-count]")).to_have_text(" (3)")
    return names


def _compared(page: Page) -> list[str]:
    return [heading.split("\n")[0] for heading in page.locator("article.compared h2 a").all_inner_texts()]


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("size", list(SIZES))
def test_three_saved_from_the_results_are_compared_and_shared(size: str, javascript: bool, browser: Browser,
                                                             live_url: str) -> None:
    page = browser_page(browser, size, javascript)
    page.goto(live_url + SEARCH)
    names = _save_three(page, javascript)
    if javascript:
        assert page.url == live_url + SEARCH  # saved in place: the page never left
    page.get_by_role("link", name=re.compile(r"^Shortlist")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your shortlist")
    page.wait_for_load_state()  # the stylesheet applied: measured before it, the first card sat at the body's 8px
    assert _compared(page) == names
    boxes = [article.bounding_box() for article in page.locator("article.compared").all()]
    if size == "wide":  # columns: one row of three, and each line of the comparison reads across at one height
        assert len({round(box["y"]) for box in boxes}) == 1 and boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]
        fees = [dt.bounding_box()["y"] for dt in page.locator("article.compared dt", has_text="Fee per session").all()]
        assert len(fees) == 3 and max(fees) - min(fees) < 1
    else:  # stacked cards, each as wide as the screen allows
        assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"] and len({round(box["x"]) for box in boxes}) == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= SIZES[size]["width"]
    share = page.locator("#share-url").input_value()
    assert share.startswith(f"{live_url}/shortlist?ids=") and "location=10001" in share
    expect(page.get_by_role("button", name="Copy link")).to_be_visible() if javascript else \
        expect(page.get_by_role("button", name="Copy link")).to_be_hidden()

    stranger = browser_page(browser, size, javascript)
    stranger.goto(share)
    expect(stranger.get_by_role("heading", level=1)).to_have_text("A shared shortlist")
    assert _compared(stranger) == names and stranger.context.cookies() == []
    stranger.context.close()

    page.get_by_role("button", name=f"Remove {names[1]}").click()
    expect(page.locator("article.compared h2 a")).to_have_count(2)
    assert _compared(page) == [names[0], names[2]]
    page.get_by_role("button", name="Clear all").click()
    expect(page.get_by_text("Nothing saved yet")).to_be_visible()
    page.context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_the_shortlist_and_the_privacy_page_have_no_accessibility_violation(size: str, browser: Browser,
                                                                              live_url: str) -> None:
    page = browser_page(browser, size)
    page.goto(live_url + SEARCH)
    _save_three(page, javascript=True)
    found = {}
    for path in ("/shortlist?location=10001", "/privacy", SEARCH, "/shortlist?ids=1,2,999999"):
        page.goto(live_url + path)
        violations = axe_violations(page)
        if violations:
            found[path] = violations
    assert found == {}
    page.get_by_role("link", name="Privacy").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Privacy")
    page.context.close()
