"""Issue 24 in Chromium at 1280x900 and 390x844: each filter people choose by (who the therapist sees, the
communities their practice affirms, their gender, a fee ceiling, a sliding scale) chosen in the panel and removed
by its chip; the first card still whole in the first screen; nothing axe-core can find; profiles that say it all.

The world is the sample with five therapists of our own near 10001 whose bios share one made-up word, so a search
for it finds exactly them and what each filter keeps is known by hand (below), whatever the sample holds."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from helpers import GOOD, axe_violations, copy_world, do_import, live_server, make_csv, world_app

WORD = "quillfeather"
OURS = "/?location=10001&q=" + WORD
ROW = {**GOOD, "postcode": "10001", "bio": f"A {WORD} practice.", "telehealth": "yes", "in_person": "yes"}
ROWS = [
    {**ROW, "external_id": "f-ada", "name": "Ada Quill", "ages": "children; teens",
     "client_types": "individuals; families", "communities": "LGBTQ+ affirming", "gender": "woman", "fee_min": "90",
     "fee_max": "140", "sliding_scale": "yes"},
    {**ROW, "external_id": "f-ben", "name": "Ben Quill", "ages": "adults", "client_types": "couples; individuals",
     "communities": "veterans", "gender": "man", "fee_min": "200", "fee_max": "200", "sliding_scale": "no"},
    {**ROW, "external_id": "f-cam", "name": "Cam Quill", "ages": "teens; young adults", "client_types": "groups",
     "communities": "trans-affirming; LGBTQ+ affirming", "gender": "non-binary", "sliding_scale": "yes"},
    {**ROW, "external_id": "f-dee", "name": "Dee Quill", "ages": "older adults", "client_types": "individuals",
     "communities": "Jewish", "gender": "Two-Spirit", "fee_min": "130", "sliding_scale": "no"},
    {**ROW, "external_id": "f-eli", "name": "Eli Quill", "ages": "adults", "fee_max": "100", "sliding_scale": "no"},
]
EVERYONE = {"Ada Quill", "Ben Quill", "Cam Quill", "Dee Quill", "Eli Quill"}
# Each filter: how it is chosen in the panel (a box's label, or the fee box and what is typed), its URL parameter,
# its chip, and whom it keeps (by hand from ROWS: Eli's only fee, 100, is a highest one, so under 120; Cam gives no
# fee, so is under no ceiling).
FILTERS = {
    "age": ("Teens (13-17)", None, "age=teens", "Teens (13-17)", {"Ada Quill", "Cam Quill"}),
    "client_type": ("Couples", None, "client_type=couples", "Couples", {"Ben Quill"}),
    "community": ("LGBTQ+ affirming", None, "community=lgbtq-affirming", "LGBTQ+ affirming",
                  {"Ada Quill", "Cam Quill"}),
    "gender": (re.compile(r"^Woman"), None, "gender=woman", "Gender: Woman", {"Ada Quill"}),
    "max_fee": ("Up to $", "120", "max_fee=120", "Up to $120 a session", {"Ada Quill", "Eli Quill"}),
    "sliding_scale": ("Offers a sliding scale", None, "sliding_scale=1", "Offers a sliding scale",
                      {"Ada Quill", "Cam Quill"}),
}


@pytest.fixture(scope="module")
def filters_app(sample_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    root = tmp_path_factory.mktemp("filters-world")
    copy_world(sample_world, root)
    with world_app(root) as made:
        report = do_import(made, make_csv(ROWS))
        assert (report.created, report.rejected) == (len(ROWS), 0), report.as_dict()
        yield made


@pytest.fixture(scope="module")
def live_url(filters_app: Flask) -> Iterator[str]:
    with live_server(filters_app) as url:
        yield url


def names(page: Page) -> set[str]:
    return set(page.locator(".card h3 a").all_inner_texts())


def open_panel(page: Page) -> None:
    """Unfold the filters where they are folded (a phone)."""
    panel = page.locator("#filters")
    if panel.get_attribute("open") is None:
        panel.locator("summary").click()


def first_card_in_first_screen(page: Page) -> None:
    box, height = page.locator(".card").first.bounding_box(), page.viewport_size["height"]
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height, (box, height)


@pytest.mark.parametrize("kind", list(FILTERS))
def test_each_new_filter_is_chosen_in_the_panel_and_removed_by_its_chip(sized_page: Page, live_url: str,
                                                                        kind: str) -> None:
    label, typed, parameter, chip, kept = FILTERS[kind]
    page = sized_page
    page.goto(live_url + OURS)
    expect(page.locator(".card")).to_have_count(len(EVERYONE))
    open_panel(page)
    control = page.get_by_label(label)
    if typed is None:
        control.check()
    else:
        control.fill(typed)
    page.get_by_role("button", name="Apply").first.click()
    expect(page).to_have_url(re.compile(re.escape(parameter)))
    expect(page.locator(".card")).to_have_count(len(kept))
    assert names(page) == kept
    chips = page.get_by_role("list", name="Active filters")
    expect(chips.get_by_role("link")).to_have_text([re.compile(re.escape(chip)), "Clear all"])
    if typed is None:
        expect(page.get_by_label(label)).to_be_checked()
    else:
        expect(page.get_by_label(label)).to_have_value(typed)
    chips.get_by_role("link", name=re.compile(re.escape(chip))).click()
    expect(page).not_to_have_url(re.compile(re.escape(parameter)))
    expect(page.locator(".card")).to_have_count(len(EVERYONE))
    expect(page.get_by_role("list", name="Active filters")).to_have_count(0)


def test_filters_combine_and_clear_all_clears_them(sized_page: Page, live_url: str) -> None:
    page = sized_page
    page.goto(live_url + OURS + "&age=teens&age=older-adults&community=lgbtq-affirming&sliding_scale=1")
    # Values of one filter are any of them (teens or older adults); filters are all of them.
    assert names(page) == {"Ada Quill", "Cam Quill"}
    page.goto(live_url + OURS + "&age=teens&age=older-adults&max_fee=150")
    assert names(page) == {"Ada Quill", "Dee Quill"}
    page.get_by_role("list", name="Active filters").get_by_role("link", name="Clear all").click()
    expect(page.locator(".card")).to_have_count(len(EVERYONE))
    expect(page).to_have_url(re.compile(rf"location=10001.*q={WORD}"))


def test_with_the_new_filters_chosen_the_first_card_is_whole_in_the_first_screen_and_axe_finds_nothing(
        sized_page: Page, live_url: str) -> None:
    page = sized_page
    page.goto(live_url + "/?location=10001&age=teens&client_type=families&community=lgbtq-affirming&gender=woman"
                         "&max_fee=150&sliding_scale=1")
    expect(page.get_by_role("list", name="Active filters").get_by_role("link")).to_have_count(7)
    expect(page.locator(".card").first).to_be_visible()
    assert page.evaluate("window.scrollY") == 0
    first_card_in_first_screen(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    open_panel(page)
    assert axe_violations(page) == []
    page.goto(live_url + "/therapists/" + page_slug(page, live_url, "Dee Quill"))
    assert axe_violations(page) == []


def page_slug(page: Page, live_url: str, name: str) -> str:
    page.goto(live_url + OURS)
    href = page.get_by_role("link", name=name, exact=True).get_attribute("href")
    assert href is not None
    return href.split("/therapists/", 1)[1].split("?", 1)[0]


def test_a_word_that_is_a_filter_shows_the_filter_chosen_and_its_chip_takes_the_word_away(
        page: Page, live_url: str) -> None:
    page.goto(live_url + "/?location=10001&q=teens")
    expect(page.get_by_label("Teens (13-17)")).to_be_checked()
    # The keyword box holds the text as run, without the word: unticking the box must not choose it again.
    expect(page.locator("#q")).to_have_value("")
    chip = page.get_by_role("list", name="Active filters").get_by_role("link", name=re.compile("Teens"))
    expect(chip).to_have_count(1)
    expect(page.locator(".filter-offer")).to_have_text("Filter by therapists who see teens?")
    chip.click()
    expect(page).not_to_have_url(re.compile(r"q=|age="))
    expect(page.get_by_label("Teens (13-17)")).not_to_be_checked()
    # Clear all takes away the words that chose a filter, or they would choose it again.
    page.goto(live_url + "/?location=10001&q=teens&client_type=families")
    chips = page.get_by_role("list", name="Active filters").get_by_role("link")
    expect(chips).to_have_text([re.compile("Teens"), re.compile("Families"), "Clear all"])
    chips.last.click()
    expect(page).to_have_url(re.compile(r"/\?location=10001$"))


@pytest.mark.parametrize(("words", "offer", "chosen"), [
    ("teens grief", "Filter by therapists who see teens?", {"age": ["teens"]}),
    ("couples grief", "Filter by therapists who see couples?", {"client_type": ["couples"]}),
    ("LGBTQ grief", "Filter by LGBTQ+ affirming therapists?", {"community": ["lgbtq-affirming"]}),
    ("veterans grief", "Filter by therapists who work with veterans and military families?",
     {"community": ["veterans"]}),
    ("Jewish grief", "Filter by Jewish faith-informed therapists?", {"community": ["faith-jewish"]}),
    ("woman grief", "Filter by women therapists?", {"gender": ["woman"]}),
    ("nonbinary grief", "Filter by non-binary therapists?", {"gender": ["non-binary"]}),
    ("sliding scale grief", "Filter by therapists offering a sliding scale?", {"sliding_scale": ["1"]}),
])
def test_the_offer_of_a_filter_word_reads_as_a_sentence_and_chooses_its_filter(
        filters_app: Flask, words: str, offer: str, chosen: dict[str, list[str]]) -> None:
    client = filters_app.test_client()
    page = client.get("/", query_string={"location": "10001", "q": words}).get_data(as_text=True)
    [(href, text)] = re.findall(r'<p class="suggestion filter-offer"><a href="([^"]+)">([^<]+)</a></p>', page)
    assert text == offer
    assert parse_qs(urlsplit(html.unescape(href)).query) == {"location": ["10001"], "q": ["grief"], **chosen}
    assert client.get(html.unescape(href)).status_code == 200


def test_a_profile_says_who_they_see_their_communities_and_gender(page: Page, live_url: str) -> None:
    page.goto(live_url + "/therapists/" + page_slug(page, live_url, "Ada Quill"))
    for heading, items in (("Ages", ["Children (under 13)", "Teens (13-17)"]),
                           ("Sessions for", ["Individuals", "Families"]), ("Communities", ["LGBTQ+ affirming"])):
        expect(page.locator(f"h3:text-is('{heading}') + ul li")).to_have_text(items)
    expect(page.get_by_text("What the therapist says about their practice, not about who they are.")).to_be_visible()
    expect(page.get_by_text("Gender: Woman", exact=True)).to_be_visible()
    # A gender as written that names no term is shown as written.
    page.goto(live_url + "/therapists/" + page_slug(page, live_url, "Dee Quill"))
    expect(page.get_by_text("Gender: Two-Spirit", exact=True)).to_be_visible()
    page.goto(live_url + "/therapists/" + page_slug(page, live_url, "Eli Quill"))
    expect(page.get_by_text("Gender:")).to_have_count(0)
    expect(page.locator("section", has=page.get_by_role("heading", name="Identity and community"))).to_contain_text(
        "Not listed.")


def test_a_fee_that_is_not_a_number_is_shown_on_its_box_even_on_a_phone(sized_page: Page, live_url: str) -> None:
    page = sized_page
    page.goto(live_url + "/?location=10001&max_fee=12.5")
    expect(page.get_by_role("alert")).to_be_visible()
    fee = page.get_by_label("Up to $")
    expect(fee).to_be_visible()  # the folded panel opens for a field of its own
    expect(fee).to_have_attribute("aria-invalid", "true")
    expect(fee).to_be_focused()
    assert axe_violations(page) == []
