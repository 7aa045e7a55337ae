"""Our shortcuts around Whoosh give Whoosh's own results: the vectorised BM25 equals its matcher's scores, and the
fast text field indexes exactly what Whoosh's TEXT field would."""

from __future__ import annotations

import numpy as np
import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from whoosh.fields import KEYWORD, TEXT

from directory.models import Listing
from directory.search import engine
from directory.search.engine import _bm25, _scores_among
from directory.search.schema import TEXT_ANALYZER, FastKeyword, FastText, listing_document, make_schema
from directory.search.text import text_query


@pytest.mark.parametrize("q", ["depression", "insecure attachment", "emotionally focused couples", "Toronto grief"])
def test_vectorised_bm25_equals_whoosh_scoring(q: str, shared_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "BULK_SCORING", 0)  # force the array path even for small sets
    view = shared_app.extensions["search"].view()
    text = text_query(q)
    whoosh_scores = _scores_among(view.searcher, text.query, view.every_doc())
    assert whoosh_scores, q
    matched = np.array(sorted(whoosh_scores), dtype=np.int32)
    ours = _bm25(view, text, matched)
    for docnum, score in zip(matched.tolist(), ours.tolist()):
        assert score == pytest.approx(whoosh_scores[docnum], rel=1e-9)


def _whoosh_postings(text: str) -> list[tuple[bytes, int, float, bytes]]:
    return sorted(TEXT(analyzer=TEXT_ANALYZER).index(text))


def _fast_postings(text: str) -> list[tuple[bytes, int, float, bytes]]:
    return sorted(FastText(analyzer=TEXT_ANALYZER).index(text))


def test_fast_text_indexes_sample_listings_exactly_as_whoosh(shared_app: Flask) -> None:
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        texts = [doc["text"] for doc in map(listing_document, session.scalars(select(Listing).limit(300))) if doc]
    assert texts
    for text in texts:
        assert _fast_postings(text) == _whoosh_postings(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("aeiouxyz AIT.-'_é1\n\tßİ") + ["the ", "running ", "a.b ", "U.S. ", "therapies"]),
                max_size=40).map("".join) | st.text(max_size=60))
def test_fast_text_indexes_any_text_exactly_as_whoosh(text: str) -> None:
    assert _fast_postings(text) == _whoosh_postings(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["eft", "cbt", " ", "  ", "\t", "\n", "\r", "é", "US-NY", "cell:3:12", ",", "x"]),
                max_size=30).map("".join) | st.text(max_size=60))
def test_fast_keyword_indexes_any_value_exactly_as_whoosh(value: str) -> None:
    assert sorted(FastKeyword().index(value)) == sorted(KEYWORD().index(value))


def test_fast_keyword_indexes_sample_listings_exactly_as_whoosh(shared_app: Flask) -> None:
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        docs = [doc for doc in map(listing_document, session.scalars(select(Listing).limit(300))) if doc]
    fields = [name for name, field in make_schema().items() if isinstance(field, FastKeyword)]
    assert {"cell", "modality", "flag"} <= set(fields)
    for doc in docs:
        for name in fields:
            assert sorted(FastKeyword().index(doc[name])) == sorted(KEYWORD().index(doc[name])), name
