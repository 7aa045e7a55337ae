"""The distance view in Chromium at 1280x900 and 390x844: as many markers as in-person cards, reached by the
keyboard in card order, no request to any host but the app's; with MAP_TILE_URL set to a tile server this test
starts (one PNG for every tile), Leaflet draws the markers over its tiles and asks only that host; axe-core finds
nothing either way."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from helpers import SIZES, axe_violations, browser_page, live_server, serving

SEARCH = "/?location=11201&radius=10"
# A 1x1 PNG, served for every tile.
TILE = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
                        "RU5ErkJggg==")


class _Tiles(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(TILE)))
        self.end_headers()
        self.wfile.write(TILE)

    def log_message(self, *args: object) -> None:
        pass


class _TileServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a browser cancels the tiles it no longer needs mid-answer: nothing to report


@pytest.fixture(scope="module")
def live_url(shared_app: Flask) -> Iterator[str]:
    with live_server(shared_app) as url:
        yield url


@pytest.fixture()
def tile_server() -> Iterator[str]:
    """A tile server on a free port of 127.0.0.1; its base URL."""
    with serving(_TileServer(("127.0.0.1", 0), _Tiles)) as url:
        yield url


def _open(page: Page, url: str, size: str) -> list[str]:
    """Open the results with every request recorded; the map unfolded (a phone's toggle pressed, and until then
    nothing of Leaflet asked for)."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    if size == "phone":
        page.wait_for_load_state("networkidle")
        assert not [url for url in requested if "leaflet" in url]
        page.locator("#map summary").click()
    expect(page.locator("#map figure")).to_be_visible()
    return requested


@pytest.mark.parametrize("size", list(SIZES))
def test_the_distance_view_marks_each_in_person_card_and_asks_no_other_host(size: str, browser: Browser,
                                                                            live_url: str) -> None:
    page = browser_page(browser, size)
    requested = _open(page, live_url + SEARCH, size)
    in_person = [card.get_attribute("id") for card in page.locator("li.card").all()
                 if card.locator(".distance").count()]
    markers = page.locator("svg.distance-view a.marker")
    expect(markers).to_have_count(len(in_person))
    numbers = [int(number) for number in markers.evaluate_all("ms => ms.map(m => m.dataset.number)")]
    assert numbers == sorted(numbers) and len(numbers) >= 5
    markers.first.focus()
    for number in numbers[1:4]:  # Tab goes from marker to marker in card order
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.dataset.number") == str(number)
    expect(page.locator("#map-caption")).to_contain_text(f"{len(numbers)} therapists of this page within 10 miles")
    assert {urlsplit(url).netloc for url in requested} == {urlsplit(live_url).netloc}
    assert axe_violations(page) == []
    page.context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_with_tiles_configured_leaflet_draws_the_markers_over_them_from_that_host_only(
        size: str, browser: Browser, live_url: str, shared_app: Flask, tile_server: str) -> None:
    shared_app.config.update(MAP_TILE_URL=tile_server + "/{z}/{x}/{y}.png", MAP_ATTRIBUTION="Test tiles")
    try:
        page = browser_page(browser, size)
        requested = _open(page, live_url + SEARCH, size)
        expect(page.locator(".leaflet-tile-loaded").first).to_be_attached()
        drawn = page.locator(".tile-marker span")
        expect(drawn).to_have_count(page.locator("svg.distance-view a.marker").count())
        expect(page.locator(".leaflet-control-attribution")).to_contain_text("Test tiles")
        expect(page.locator("svg.distance-view")).to_be_hidden()  # the same markers, over the tiles instead
        hosts = {urlsplit(url).netloc for url in requested}
        assert hosts == {urlsplit(live_url).netloc, urlsplit(tile_server).netloc}, hosts
        assert axe_violations(page) == []
        page.context.close()
    finally:
        shared_app.config.update(MAP_TILE_URL="", MAP_ATTRIBUTION="")
