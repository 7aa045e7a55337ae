"""The guided match in Chromium at 1280x900 and 390x844, with JavaScript and without: from the first page to the
results, back and forward; the danger answer opens the crisis line without a request; the first page's starting
points; axe-core on every step and the first page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from helpers import SIZES, axe_violations, browser_page, live_server


@pytest.fixture(scope="module")
def live_url(shared_app: Flask) -> Iterator[str]:
    with live_server(shared_app) as url:
        yield url


def _fits(page: Page, size: str) -> None:
    """The step is one screen: nothing overflows sideways, and its Next (or Show) button is in the first screen."""
    page.wait_for_load_state()  # a step reached by a click is measured with its stylesheet applied
    assert page.evaluate("document.documentElement.scrollWidth") <= SIZES[size]["width"]
    box = page.locator(".match-nav button").bounding_box()
    assert box is not None and box["y"] + box["height"] <= SIZES[size]["height"] * 1.6, box


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("size", list(SIZES))
def test_from_the_first_page_through_the_match_to_results_and_back(size: str, javascript: bool, browser: Browser,
                                                                   live_url: str) -> None:
    page = browser_page(browser, size, javascript)
    page.goto(live_url + "/")
    # The first question is asked on the first page: one tap answers it and opens the second.
    page.get_by_role("group", name="Answer a few questions. Who is the help for?").get_by_role(
        "button", name="My child or teenager").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("What is going on?")
    page.get_by_role("link", name="← Back").click()  # the question as its own step, answered
    expect(page.get_by_role("heading", level=1)).to_have_text("Who is the help for?")
    expect(page.get_by_label("My child or teenager")).to_be_checked()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("What is going on?")
    page.get_by_label("I feel low most days").check()
    page.get_by_label("I worry all the time").check()
    _fits(page, size)
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Either is fine").check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("alert")).to_contain_text("Where should we look?")  # no place yet: asked again
    page.get_by_label("Your ZIP code, postal code or town").fill("Brooklyn, NY")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("What about cost?")
    page.go_back()  # the answers are in the URL: back shows step 3 as it was answered
    expect(page.get_by_label("Your ZIP code, postal code or town")).to_have_value("Brooklyn, NY")
    page.go_forward()
    page.get_by_role("link", name="Skip this question").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Anything you would prefer?")
    _fits(page, size)
    page.get_by_role("button", name="Show therapists").click()
    page.wait_for_url(re.compile(r"/\?"))
    if size == "phone":  # folded there, so that the first card is in the first screen
        expect(page.locator("li.card").first).to_be_in_viewport()
        page.get_by_text("Why these filters (4)").click()
    reasons = page.get_by_role("region", name="Why these filters").get_by_role("listitem")
    expect(reasons).to_have_count(4)  # children, teens, depression, anxiety
    expect(reasons.first).to_contain_text("Children (under 13): sees children")
    expect(page.locator("li.card").first).to_be_visible()
    reasons.nth(3).get_by_role("link").click()  # removable like a chip
    if size == "phone":
        page.get_by_text("Why these filters (3)").click()
    expect(page.get_by_role("region", name="Why these filters").get_by_role("listitem")).to_have_count(3)
    assert "specialty=anxiety" not in page.url and "guided=1" in page.url
    page.context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_the_danger_answer_opens_the_crisis_line_and_sends_nothing(size: str, browser: Browser,
                                                                   live_url: str) -> None:
    page = browser_page(browser, size)
    page.goto(live_url + "/match?step=2&who=me")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.get_by_text("I'm thinking about ending my life or hurting myself").click()
    help_line = page.get_by_role("link", name="988")
    expect(help_line.last).to_be_visible()
    box = help_line.last.bounding_box()
    assert box is not None and box["y"] + box["height"] <= SIZES[size]["height"]
    assert requested == []
    page.context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_every_step_and_the_first_page_have_no_accessibility_violation(size: str, browser: Browser,
                                                                       live_url: str) -> None:
    page = browser_page(browser, size)
    found = {}
    for path in ("/", "/match", "/match?step=2&who=me", "/match?step=3", "/match?step=4&location=10001",
                 "/match?step=4&location=10001&max_fee=x&step=5", "/match?step=5&location=10001",
                 "/?guided=1&specialty=depression&location=10001"):
        page.goto(live_url + path)
        if "step=2" in path:
            page.locator("details.danger summary").click()
        violations = axe_violations(page)
        if violations:
            found[path] = violations
    assert found == {}
    for label in ("Feeling low or depressed", "Relationship or couples", "For a teenager", "After something traumatic"):
        page.goto(live_url + "/")
        page.get_by_label("ZIP, postal code or place").fill("10001")  # typed first, then the starting point
        page.get_by_role("button", name=label).click()
        expect(page.get_by_role("region", name="Why these filters")).to_be_attached()
        assert "location=10001" in page.url and "guided=1" in page.url
    page.goto(live_url + "/")
    page.get_by_role("button", name="For a teenager").click()  # no place yet: the page asks where, filter kept
    expect(page.get_by_role("heading", name="Where should we look?")).to_be_visible()
    page.get_by_label("ZIP, postal code or place").fill("10001")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("region", name="Why these filters")).to_be_attached()
    assert "age=teens" in page.url
    page.context.close()
