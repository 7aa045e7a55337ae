"""The guided match, `/match`: five short steps, one question each, that end on the search page with the filters
the answers chose (directory/match.py). Each step is a GET form carrying the earlier answers, so the answers are in
the URL, and back and forward work without JavaScript. Nothing is stored.

The answer "I'm thinking about ending my life or hurting myself" is not a form value: it opens, in the page itself,
the crisis line, so that it never reaches a URL, a later step, the results or a log.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from directory.match import match
from directory.search.request import MAX_FEE
from directory.vocabulary import vocabulary

bp = Blueprint("match", __name__)
STEPS = 5
# What each step asks; the other answers ride along in hidden fields.
FIELDS = {1: ("who",), 2: ("concern",), 3: ("meet", "location"), 4: ("insurance", "max_fee", "sliding_scale"),
          5: ("gender", "language", "community")}
ANSWERS = {name for names in FIELDS.values() for name in names}


def fee_ceiling(answers: dict[str, list[str]]) -> str:
    """The most the person can pay, as the search takes it ("" when not given; "$120" reads as 120).

    :raise ValueError: when it is not a whole number of dollars the search accepts.
    """
    given = next((value.strip().removeprefix("$").strip() for value in answers.get("max_fee", []) if value.strip()),
                 "")
    if given and not (re.fullmatch(r"[0-9]{1,6}", given) and int(given) <= MAX_FEE):
        raise ValueError(given)
    return str(int(given)) if given else ""


def _problem(answers: dict[str, list[str]]) -> tuple[int, str] | None:
    """The first step whose answer the search cannot do without or cannot read, and what to say; None when the
    answers can be searched."""
    if not "".join(answers.get("location", [])).strip():
        return 3, "Where should we look? A ZIP code, a postal code or a town is enough."
    try:
        fee_ceiling(answers)
    except ValueError:
        return 4, (f"Write the most you want to pay as a whole number of dollars up to {MAX_FEE:,}, such as 120, or "
                   "leave it empty.")
    return None


def from_starting_point(args: MultiDict[str, str]) -> str:
    """The search page's URL for a starting point chosen on the first page (`start`, a button of the search form):
    what the person typed in the form, so a place typed first is kept, with the starting point's filters added."""
    point = match.starting_points.get(args.get("start", ""))
    pairs = [(name, value) for name, value in args.items(multi=True)
             if name not in ("start", "guided") and value.strip()]
    if point is not None:
        pairs += [(kind, term) for kind, terms in point.filters.items() for term in terms
                  if (kind, term) not in pairs] + [("guided", "1")]
    return url_for("public.home") + ("?" + urlencode(pairs) if pairs else "")


@bp.get("/match")
def step() -> Any:
    """One step of the guided match, or (`done`) the search page with the filters its answers chose."""
    answers = {name: [value[:200] for value in request.args.getlist(name)][:20] for name in ANSWERS}
    wanted = request.args.get("step", "1")
    number = min(max(int(wanted), 1), STEPS) if re.fullmatch(r"[0-9]{1,2}", wanted) else 1
    problem, done = _problem(answers), bool(request.args.get("done"))
    if done and problem is None:
        args = match.search_args({**answers, "max_fee": [fee_ceiling(answers)],
                                  "location": [next(value for value in answers["location"] if value.strip())]})
        return redirect(url_for("public.home", **args, guided="1"), 303)
    error = None
    if problem is not None and (done or problem[0] < number):
        number, error = problem  # back to the step that needs an answer, saying why
    kept = [(name, value) for name in sorted(ANSWERS - set(FIELDS[number])) for value in answers[name]]
    given: dict[str, Any] = {name: answers[name] for name in ANSWERS if answers[name]}
    back = url_for("match.step", **given, step=number - 1) if number > 1 else url_for("public.home")
    # Skipping a question leaves its earlier answer out; the location (step 3) cannot be skipped.
    skip = url_for("match.step", **{name: values for name, values in given.items() if name not in FIELDS[number]},
                   step=number + 1) if number in (1, 2, 4) else None
    return render_template("match.html", step=number, steps=STEPS, kept=kept, answers=answers, error=error,
                           match=match, vocabulary=vocabulary, back=back, skip=skip)
