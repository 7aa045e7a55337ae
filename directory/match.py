"""The guided match: plain answers turned into search filters, and why each filter was chosen.

What each answer chooses, the explanations and the first page's starting points are data (the "match" section of
vocabulary.json), reviewed as data; this module reads them, checks at import that every filter they name is a term
of the vocabulary (a renamed or removed term fails loudly, never silently matches nothing), and maps answers to the
search page's arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from directory.vocabulary import DATA_FILE, vocabulary

QUESTIONS = ("who", "concern", "meet")  # the answers that choose filters through the table
# The search arguments the match passes through as they are: where, cost and preferences.
PASSED = ("location", "insurance", "max_fee", "sliding_scale", "gender", "language", "community")
FORMATS = ("in_person", "telehealth")


@dataclass(frozen=True)
class Answer:
    """One plain answer to a question, and the filters it chooses."""

    slug: str
    label: str
    filters: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class StartingPoint:
    """A plain way into a search from the first page: a label, a line saying what it finds, and its filters."""

    slug: str
    label: str
    explain: str
    filters: Mapping[str, tuple[str, ...]]


def _filters(raw: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """Filters as data gives them, each value checked against the vocabulary (or the formats)."""
    for kind, values in raw.items():
        for value in values:
            if not (value in FORMATS if kind == "format" else vocabulary.get(kind, value) is not None):
                raise ValueError(f"vocabulary.json's match names {kind}={value!r}, which is not a term")
    return {kind: tuple(values) for kind, values in raw.items()}


class Match:
    """The match's table: the answers to each question, the explanations and the starting points."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.answers = {question: {entry["slug"]: Answer(entry["slug"], entry["label"], _filters(entry["filters"]))
                                   for entry in data[question]} for question in QUESTIONS}
        self.starting_points = {entry["slug"]: StartingPoint(entry["slug"], entry["label"], entry["explain"],
                                                             _filters(entry["filters"]))
                                for entry in data["starting_points"]}
        self._why: dict[str, Any] = data["why"]
        for kind, reasons in self._why.items():
            if isinstance(reasons, dict):
                _filters({kind: list(reasons)})

    def why(self, kind: str, value: str) -> str | None:
        """Why a filter is chosen, in plain words: the reason for this value, or for its whole kind; None when the
        match never chooses it."""
        reasons = self._why.get(kind)
        return reasons.get(value) if isinstance(reasons, dict) else reasons

    def search_args(self, answers: Mapping[str, list[str]]) -> dict[str, Any]:
        """The search page's arguments for a set of answers (question → values; unknown values are ignored)."""
        chosen: dict[str, Any] = {}
        for question in QUESTIONS:
            for slug in answers.get(question, []):
                answer = self.answers[question].get(slug)
                for kind, terms in (answer.filters.items() if answer else ()):
                    chosen.setdefault(kind, [])
                    chosen[kind] += [term for term in terms if term not in chosen[kind]]
        for name in PASSED:
            given = [value for value in answers.get(name, []) if value.strip()]
            if given:
                chosen[name] = given
        return chosen


match = Match(json.loads(DATA_FILE.read_text(encoding="utf-8"))["match"])
