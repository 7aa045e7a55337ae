"""How long a person who knows none of the terms takes to reach a search (issue 31), by a stated model, walking the
real pages in Chromium at a phone's size.

    make run                        # or any server with the sample data
    python -m bench.match_walk --url http://127.0.0.1:5000

Three people from the seed articles take the shortest way through the guided match, then each again from the
first page's starting point that fits them. No person is timed: each page's time is modelled with the
keystroke-level model's operators (Card, Moran and Newell): 1.35 s to decide on each action, 1.1 s to point and
0.2 s to tap, 0.28 s a typed character, plus reading at 250 words a minute, plus each page load as measured.
Reading is counted two ways: every visible word of the page's main content ("reads everything"), and the words in
reading order up to the last thing the person uses on that page, with every option of a question they answer, a
drop-down's included ("reads to what they use"), which is how people scan. Choosing from a drop-down is two taps:
open it, pick. Prints a line per page and each walk's totals. Asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Page, sync_playwright

WORDS_A_SECOND = 250 / 60
DECIDE, POINT, TAP, KEY = 1.35, 1.1, 0.2, 0.28
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# The words of main a person reads: all visible ones, and those up to the last element used (or inside a question
# whose options they weigh).
_COUNT_WORDS = """(selectors) => {
  const used = selectors.map((s) => document.querySelector(s));
  const last = used[used.length - 1];
  const questions = used.map((e) => e.closest('fieldset')).filter(Boolean);
  // A drop-down's options are not visible until it opens, and the person reads them then.
  const options = used.filter((e) => e.tagName === 'SELECT')
    .reduce((n, e) => n + e.innerText.split(/\\s+/).filter(Boolean).length, 0);
  const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
  let all = 0, used_words = 0, node;
  while ((node = walker.nextNode())) {
    if (!node.parentElement.checkVisibility()) continue;
    const words = node.textContent.split(/\\s+/).filter(Boolean).length;
    all += words;
    const before = last.contains(node) || (last.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_PRECEDING);
    if (before || questions.some((q) => q.contains(node))) used_words += words;
  }
  return [all + options, used_words + options];
}"""


@dataclass
class Step:
    """What a person does on one page: taps (CSS selectors) and, before the last tap, text typed into a box."""
    taps: list[str]
    typed: dict[str, str] = field(default_factory=dict)


@dataclass
class Walk:
    """One person's way from the first page to the results."""
    who: str
    steps: list[Step]


WALKS = [
    Walk("a. an adult, low most days and afraid people will leave, in Brooklyn, in person", [
        Step(["button[name=who][value=me]"]),
        Step(["label[for=concern-low]", "label[for=concern-left]", "button[name=step]"]),
        Step(["label[for=meet-near]", "button[name=done]"], {"#location": "Brooklyn"}),
    ]),
    Walk("b. a couple caught in the same fight, in Toronto, with Sun Life cover", [
        Step(["button[name=who][value=couple]"]),
        Step(["label[for=concern-fight]", "button[name=step]"]),
        Step(["label[for=meet-either]", "button[name=step]"], {"#location": "Toronto"}),
        Step(["#insurance", "button[name=done]"]),
    ]),
    Walk("c. a parent of a withdrawn, low teenager, in Chicago 60614, in person or online", [
        Step(["button[name=who][value=child]"]),
        Step(["label[for=concern-low]", "button[name=step]"]),
        Step(["label[for=meet-either]", "button[name=done]"], {"#location": "60614"}),
    ]),
    Walk("a. again, from a starting point of the first page", [
        Step(["button[value=low]"], {"#location": "Brooklyn"}),
    ]),
    Walk("b. again, from a starting point of the first page", [
        Step(["button[value=couples]"], {"#location": "Toronto"}),
    ]),
    Walk("c. again, from a starting point of the first page", [
        Step(["button[value=teenager]"], {"#location": "60614"}),
    ]),
]


def _do_step(page: Page, step: Step) -> dict[str, Any]:
    """Act out one page; return its words, modelled seconds and measured load."""
    all_words, used_words = page.evaluate(_COUNT_WORDS, [*step.typed, *step.taps])
    acting = (DECIDE + POINT + TAP) * len(step.taps)
    for box, text in step.typed.items():
        page.fill(box, text)
        acting += POINT + TAP + DECIDE + KEY * len(text)
    for selector in step.taps[:-1]:
        if page.locator(selector).evaluate("e => e.tagName") == "SELECT":
            page.select_option(selector, label="Sun Life")
            acting += POINT + TAP  # the pick, after the tap that opened it
        else:
            page.click(selector)
    started = time.perf_counter()
    with page.expect_navigation():
        page.click(step.taps[-1])
    page.wait_for_load_state()
    return {"url": page.url, "all_words": all_words, "used_words": used_words, "acting": acting,
            "load": time.perf_counter() - started}


def walk(page: Page, base: str, route: Walk) -> None:
    """Walk one route from the first page and print each page's figures and the totals."""
    page.goto(base + "/")
    page.wait_for_load_state()
    print(route.who)
    totals = {"all": 0.0, "used": 0.0}
    for number, step in enumerate(route.steps, 1):
        figures = _do_step(page, step)
        for kind in totals:
            totals[kind] += figures[f"{kind}_words"] / WORDS_A_SECOND + figures["acting"] + figures["load"]
        print(f"  page {number}: {figures['all_words']:3d} words visible, {figures['used_words']:3d} read to what is "
              f"used; acting {figures['acting']:4.1f} s, load {figures['load']:.2f} s")
    results = page.locator("#results-heading").inner_text()
    print(f"  ends on {page.url.partition('?')[2][:150]}")
    print(f"  results: {results}")
    print(f"  total: {totals['used']:.0f} s reading to what is used, {totals['all']:.0f} s reading everything")


def main() -> None:
    """Walk every route at a phone's size and print the modelled times."""
    parser = argparse.ArgumentParser(prog="python -m bench.match_walk", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="a running server with the sample data")
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for route in WALKS:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            walk(page, args.url.rstrip("/"), route)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
