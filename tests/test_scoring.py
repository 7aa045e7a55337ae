"""The vectorised BM25 gives Whoosh's own scores: checked document by document against Whoosh's matcher."""

from __future__ import annotations

import pytest
from flask import Flask

from directory.search import engine
from directory.search.engine import _bm25, _scores_among
from directory.search.text import text_query


@pytest.mark.parametrize("q", ["depression", "insecure attachment", "emotionally focused couples", "Toronto grief"])
def test_vectorised_bm25_equals_whoosh_scoring(q: str, shared_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "BULK_SCORING", 0)  # force the array path even for small sets
    view = shared_app.extensions["search"].view()
    text = text_query(q)
    every = set(view.every_doc())
    whoosh_scores = _scores_among(view.searcher, text.query, every)
    assert whoosh_scores, q
    ours = _bm25(view, text, set(whoosh_scores))
    assert ours.keys() == whoosh_scores.keys()
    for docnum, score in whoosh_scores.items():
        assert ours[docnum] == pytest.approx(score, rel=1e-9)
