"""Tripwires for directory/search/index/whoosh_internals.py: each shortcut through Whoosh's internals gives what Whoosh
itself gives (indexed fields, segment files byte for byte, docnum lists, positions, BM25 scores), the version check
refuses an unverified Whoosh, and an index generation written before docnum files is reported and rebuilt, not
misread."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from whoosh import index as whoosh_index
from whoosh import columns
from whoosh.fields import COLUMN, KEYWORD, TEXT
from werkzeug.datastructures import MultiDict
from whoosh.writing import SegmentWriter

from directory.models import Listing
from directory.sample import generate
from directory.search.documents import listing_document
from directory.search.index import snapshot as index_snapshot
from directory.search.index import whoosh_internals
from directory.search.index.docnums import EXT as DOCNUM_EXT
from directory.search.index.docnums import DocnumReader, DocnumWriter
from directory.search.index.fields import SPELLING_WORDS, make_schema
from directory.search.index.snapshot import OutdatedIndex
from directory.search.index.whoosh_internals import (
    TEXT_ANALYZER, FastKeyword, FastText, UnverifiedWhoosh, check_version, stemmed_words,
)
from directory.search.index.whoosh_segment_writer import TermBufferedWriter
from directory.search.engine import search
from directory.search.request import parse
from directory.search.text import text_query
from directory.web.app_state import fresh_window
from helpers import REPO


def test_the_installed_whoosh_is_a_verified_version() -> None:
    import whoosh

    check_version(whoosh.__version__)
    assert tuple(whoosh.__version__[:3]) in whoosh_internals.VERIFIED


@pytest.mark.parametrize("version", [(2, 7, 5), (2, 8, 0), (3, 0, 0), (2, 7, 3)])
def test_an_unverified_whoosh_version_is_refused_with_a_clear_message(version: tuple[int, ...]) -> None:
    with pytest.raises(UnverifiedWhoosh) as raised:
        check_version(version)
    message = str(raised.value)
    assert ".".join(map(str, version)) in message and "2.7.4" in message and "requirements.txt" in message


def test_the_app_does_not_start_on_an_unverified_whoosh(tmp_path: Path) -> None:
    # A fake Whoosh 2.8.0 in front of the real one: importing the app must fail at once, saying why.
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text("import whoosh\nwhoosh.__version__ = (2, 8, 0)\n")
    env = {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{REPO}"}
    done = subprocess.run([sys.executable, "-c", "import app"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "UnverifiedWhoosh" in done.stderr and "Whoosh 2.8.0 is installed" in done.stderr


def listing_documents(count: int, first_pk: int) -> list[dict[str, Any]]:
    stamp = dt.datetime(2026, 1, 1)
    listings = (Listing(id=first_pk + n, updated_at=stamp, **fields)
                for n, fields in enumerate(generate(count, today=dt.date(2026, 12, 1))))
    return [doc for listing in listings if (doc := listing_document(listing)) is not None]


def segment_contents(path: Path) -> dict[str, Any]:
    """The postings files of an index's one segment, byte for byte; and as read: every term's postings and
    statistics, the columns and the text lengths.

    Whoosh packs columns into one file in an order that varies from run to run, so those are compared as read.
    """
    ix = whoosh_index.open_dir(str(path))
    (segment,) = ix._segments()
    prefix = f"MAIN_{segment.segment_id().split('_')[-1]}"
    contents: dict[str, Any] = {p.suffix: p.read_bytes() for p in path.iterdir()
                                if p.name.startswith(prefix) and p.suffix not in (".col", DOCNUM_EXT)}
    with ix.reader() as reader:
        for field, term in reader.all_terms():
            matcher = reader.postings(field, term)
            postings = []
            while matcher.is_active():
                postings.append((matcher.id(), matcher.weight(), matcher.value()))
                matcher.next()
            info = reader.term_info(field, term)
            stats = (info.weight(), info.doc_frequency(), info.min_length(), info.max_length(), info.max_weight())
            contents[f"{field}:{term!r}"] = (postings, stats)
        for name in ("pk", "lat", "lon", "sortname", "stamp"):
            contents[name] = list(reader.column_reader(name))
        contents["text lengths"] = [reader.doc_field_length(d, "text") for d in range(reader.doc_count_all())]
    return contents


def assert_docnum_file_lists_every_posting(path: Path) -> None:
    """The segment's docnum file gives, for every term, the docnums Whoosh's postings hold."""
    ix = whoosh_index.open_dir(str(path))
    with ix.reader() as reader:
        (leaf, _), = reader.leaf_readers()
        docnum_file = whoosh_internals.docnum_file(leaf)
        assert docnum_file is not None
        listed = 0
        for field, term in reader.all_terms():
            found = docnum_file.docnums(field, term)
            assert found.dtype == np.int32 and found.tolist() == list(reader.postings(field, term).all_ids())
            weights = docnum_file.weights(field, term)
            if field == "text":  # the one scored field keeps its weights, exactly as Whoosh's blocks do
                assert weights is not None and weights.dtype == np.float64
                assert weights.tolist() == [w for _, w in reader.postings(field, term).items_as("weight")]
            else:
                assert weights is None
            listed += len(found)
        assert listed > 50 * reader.doc_count_all()
        assert not len(docnum_file.docnums("text", b"no-such-word"))


@pytest.mark.parametrize("spill", [False, True], ids=["in-memory", "spilled-runs"])
def test_term_buffered_writer_writes_the_same_segment_as_whoosh(tmp_path: Path, spill: bool) -> None:
    # The real schema and documents, and two earlier segments that the commit merges in.
    earlier = [listing_documents(40, first_pk=10_000 + 100 * k) for k in range(2)]
    docs = listing_documents(1500, first_pk=1)
    written = {}
    for name, writer_class in (("whoosh", SegmentWriter), ("buffered", TermBufferedWriter)):
        path = tmp_path / name
        path.mkdir()
        ix = whoosh_index.create_in(str(path), make_schema())
        for batch in earlier:
            with ix.writer() as writer:
                for doc in batch:
                    writer.add_document(**doc)
        writer = writer_class(ix) if writer_class is TermBufferedWriter else writer_class(ix, compound=False)
        if spill and isinstance(writer, TermBufferedWriter):
            writer._limit = 64 * 1024  # a few hundred documents a run
        for doc in docs:
            writer.add_document(**doc)
        if spill and isinstance(writer, TermBufferedWriter):
            assert len(writer._runs) >= 3
        writer.commit(optimize=True)  # merges the earlier segments in through Whoosh's pool
        written[name] = segment_contents(path)
        if writer_class is TermBufferedWriter:
            assert_docnum_file_lists_every_posting(path)
        assert len(written[name]["pk"]) == len(docs) + 80
        assert not list(path.glob("*.terms")) and not list(Path(writer._tempstorage.folder).glob("*.terms"))
    assert {".trm", ".pst"} <= set(written["whoosh"])
    if spill:
        # Block data is pickled, and pickle writes a value that recurs in a block (one bytes object shared by
        # several postings) as a back-reference; values read back from a run are no longer shared, so the bytes
        # of the files differ while every decoded posting, above, is the same.
        for found in written.values():
            del found[".trm"], found[".pst"]
    assert written["buffered"] == written["whoosh"]


@pytest.mark.parametrize("spill", [False, True], ids=["in-memory", "spilled-runs"])
def test_segments_keep_the_spelling_words_whoosh_would_list_as_a_field(tmp_path: Path, spill: bool) -> None:
    # The reference: the same commits through Whoosh's own writer, the spelling words as a keyword field, whose
    # lexicon lists each word a document wrote, a deleted one's until a merge drops it. Here the second commit
    # deletes the only document with one word, and the last merges every segment into one. The project keeps a word
    # while its stem is a text term of the segment, so the two agree where, as here, every spelling word is a word of
    # the text and no deleted document's word shares its stem with a live document's.
    batches = [listing_documents(40, first_pk=10_000 + 100 * k) for k in range(2)] + [listing_documents(300, 1)]
    for doc, word in ((batches[0][0], "deletedonly"), (batches[1][5], "mergedonly")):
        doc["text"] += f" {word}"
        doc[SPELLING_WORDS] += f" {word}"
    reference_schema = make_schema()
    reference_schema.add("words", KEYWORD)
    (tmp_path / "whoosh").mkdir()
    (tmp_path / "buffered").mkdir()
    reference = whoosh_index.create_in(str(tmp_path / "whoosh"), reference_schema)
    ix = whoosh_index.create_in(str(tmp_path / "buffered"), make_schema())
    kept_at_each_commit = []
    for k, batch in enumerate(batches):
        for writer in (SegmentWriter(reference, compound=False), TermBufferedWriter(ix)):
            if k == 1:
                writer.delete_document(0)
            if spill and isinstance(writer, TermBufferedWriter):
                writer._limit = 16 * 1024
            as_field = not isinstance(writer, TermBufferedWriter)
            for doc in batch:
                writer.add_document(**doc, **({"words": doc[SPELLING_WORDS]} if as_field else {}))
            writer.commit(optimize=k == 2)
        with reference.reader() as reader:
            expected = sorted(term.decode() for term in reader.lexicon("words"))
        with ix.reader() as reader:
            kept = set().union(*(whoosh_internals.docnum_file(leaf).words for leaf, _ in reader.leaf_readers()))
            segments = len(reader.leaf_readers())
        assert sorted(kept) == expected and len(expected) > 50
        kept_at_each_commit.append(kept)
    assert "deletedonly" in kept_at_each_commit[1] and "deletedonly" not in kept_at_each_commit[2]
    assert "mergedonly" in kept_at_each_commit[2] and segments == 1


def _live_reader(app: Flask) -> Any:
    """Whoosh's own reader of the live generation, opened apart from the app's snapshots."""
    return whoosh_index.open_dir(str(Path(app.extensions["search"].root) / "current")).reader()


def test_documents_holding_a_word_and_its_positions_are_those_whoosh_iterates(app: Flask) -> None:
    # Checked against Whoosh's own iteration of the postings. Some documents are deleted first, so deleted docnums
    # sit inside what is read; positions are decoded only from the blocks that hold a candidate.
    index = app.extensions["search"]
    with app.app_context():
        index.write(list(range(1, 400, 3)), [])
        snapshot = index.snapshot()
        assert not snapshot.outdated()
        reader = _live_reader(app)
        assert reader.has_deletions()
        every = snapshot.every_doc()
        rng = np.random.default_rng(5)
        samples = [every, every[:0], every[100:260], every[-50:], np.sort(rng.choice(every, 40, replace=False)),
                   np.sort(rng.choice(every, 700, replace=False))]
        for stem in ("depress", "attach", "couple", "toronto", "eft", "nosuchword"):
            held = dict(reader.postings("text", stem).items_as("positions")) if ("text", stem) in reader else {}
            whoosh = np.array(sorted(held))
            assert snapshot.docs_with("text", stem).tolist() == whoosh.tolist()
            for candidates in samples:
                among = snapshot.narrow("text", stem, candidates)
                assert among.tolist() == candidates[np.isin(candidates, whoosh)].tolist()
                assert snapshot.positions("text", stem, among) == {d: frozenset(held[d]) for d in among.tolist()}
                snapshot.term_postings.clear()
        assert any(len(snapshot.narrow("text", "depress", s)) for s in samples[2:])
        reader.close()


@pytest.mark.parametrize("weights_from", ["docnum files", "posting blocks"])
@pytest.mark.parametrize("q", ["depression", "insecure attachment", "emotionally focused couples", "Toronto grief"])
def test_vectorised_bm25_equals_whoosh_scoring(q: str, weights_from: str, shared_app: Flask,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_snapshot, "BULK_SCORING", 0)  # force the array path even for small sets
    if weights_from == "posting blocks":  # as from a docnum file written before weights were kept
        monkeypatch.setattr(DocnumReader, "weights", lambda *_: None)
    else:
        monkeypatch.setattr(index_snapshot, "segment_postings", lambda *_: pytest.fail("read the posting blocks"))
    snapshot = shared_app.extensions["search"].snapshot()
    snapshot.term_postings.clear()
    snapshot._term_postings_bytes = 0
    text = text_query(q)
    assert text.query is not None
    whoosh_scores = snapshot.whoosh_scores(text.query, snapshot.every_doc())
    assert whoosh_scores, q
    matched = np.array(sorted(whoosh_scores), dtype=np.int32)
    ours = snapshot.scores(text.query, text.stems, matched)
    snapshot.term_postings.clear()
    snapshot._term_postings_bytes = 0
    for docnum, score in zip(matched.tolist(), ours.tolist(), strict=True):
        assert score == pytest.approx(whoosh_scores[docnum], rel=1e-9)


def test_a_docnum_file_gives_back_each_terms_docnums_and_weights_exactly(tmp_path: Path) -> None:
    # Whole counts as bytes or 16-bit integers, anything else as the 32-bit floats Whoosh's blocks hold; a term
    # recorded without weights (as every term was before weights were kept) says so with None.
    terms = {
        (b"few", (3, 9, 10), (1.0, 2.0, 255.0), "B"),
        (b"many", tuple(range(0, 90_000, 3)), tuple(float(n % 70_000) for n in range(30_000)), "H"),
        (b"boosted", (0, 7, 8), (1.5, 0.25, 0.1), "f"),
        (b"bare", (4, 5, 400), None, None),
    }
    with open(tmp_path / "segment.ids", "wb") as out:
        writer = DocnumWriter(out)
        for term, docnums, weights, _ in sorted(terms, key=lambda t: t[0]):
            writer.add("text", term, docnums, weights)
        writer.close(["zeta", "éclair", "alpha"])
    reader = DocnumReader(str(tmp_path / "segment.ids"))
    assert reader.words == ["alpha", "zeta", "éclair"]
    for term, docnums, weights, code in terms:
        assert reader.docnums("text", term).tolist() == list(docnums)
        found = reader.weights("text", term)
        if weights is None:
            assert found is None
        else:
            assert found is not None and found.dtype == np.float64
            assert found.tolist() == [float(np.float32(w)) for w in weights]  # 0.1 as Whoosh's array("f") keeps it
            assert reader._table[("text", term)][5] == code
    assert not len(reader.docnums("text", b"absent")) and not len(reader.weights("text", b"absent"))


@pytest.mark.parametrize("compound", [False, True], ids=["files", "compound"])  # the project writes files
def test_columns_and_text_lengths_read_at_once_are_what_whoosh_reads(tmp_path: Path, compound: bool) -> None:
    # Four segments: one whole, with an empty sort name among the others; one whose last documents give no fee, rank
    # or sort name (stored numbers stop short of the documents, the rest read as the default, here not 0) and one
    # whose text has no indexed word (Whoosh's length None, read as 0); one where no document gives a fee (no column)
    # and every confirmation is the default (a column storing nothing); and one past 2**15 documents, where Whoosh
    # also stores the sort names' offsets. Compressed bytes are decoded by Whoosh's reader, not read raw. And an index
    # with no segment yet.
    schema = make_schema()
    schema.add("rank", COLUMN(columns.NumericColumn("i", default=-3)))
    schema.add("note", COLUMN(columns.CompressedBytesColumn()))
    ix = whoosh_index.create_in(str(tmp_path), schema)
    assert whoosh_internals.numeric_column(ix.reader(), "pk", np.int64).tolist() == []
    assert whoosh_internals.field_lengths(ix.reader(), "text").tolist() == []
    assert whoosh_internals.bytes_column(ix.reader(), "sortname") == []
    whole, short, bare = (listing_documents(150, first_pk=1 + 1000 * k) for k in range(3))
    for n, doc in enumerate(whole + short):
        doc.update(rank=n * 7 - 500, note=f"note {n}".encode())
    whole[5]["sortname"] = b""
    for doc in short[-4:]:
        del doc["fee"], doc["sortname"], doc["rank"]
    short[0]["text"] = "a the of"
    for doc in bare:
        del doc["fee"]
        doc["confirmed"] = 0
    many = [{"pk": n, "sortname": f"name {n % 97}".encode()} for n in range(2**15 + 10)]
    for batch in (whole, short, bare, many):
        with ix.writer(compound=compound) as writer:
            for doc in batch:
                writer.add_document(**doc)
    numeric = {**index_snapshot.NUMERIC_COLUMNS, "rank": np.int64}
    with ix.reader() as reader:
        leaves = [leaf for leaf, _ in reader.leaf_readers()]
        assert len(leaves) == 4
        for leaf in leaves:
            for name, dtype in numeric.items():
                found = whoosh_internals.numeric_column(leaf, name, dtype)
                assert found.dtype == dtype
                assert found.tolist() == [dtype(v).item() for v in leaf.column_reader(name)]
            assert whoosh_internals.bytes_column(leaf, "sortname") == list(leaf.column_reader("sortname"))
            if leaf._perdoc.has_column("note"):  # Whoosh's reader of a missing compressed column raises
                assert whoosh_internals.bytes_column(leaf, "note") == list(leaf.column_reader("note"))
            lengths = [leaf.doc_field_length(d, "text") for d in range(leaf.doc_count_all())]
            assert whoosh_internals.field_lengths(leaf, "text").tolist() == [float(n or 0) for n in lengths]
        # Each case above is really there.
        assert whoosh_internals.bytes_column(leaves[0], "sortname")[5] == b""
        assert whoosh_internals.bytes_column(leaves[0], "note")[:2] == [b"note 0", b"note 1"]
        assert leaves[1].column_reader("fee", translate=False)._count < leaves[1].doc_count_all()
        assert whoosh_internals.numeric_column(leaves[1], "rank", np.int64).tolist()[-4:] == [-3] * 4
        assert whoosh_internals.bytes_column(leaves[1], "sortname")[-4:] == [b""] * 4
        assert leaves[1].doc_field_length(0, "text") is None
        assert not leaves[2]._perdoc.has_column("fee")
        assert leaves[2].column_reader("confirmed", translate=False)._count == 0
        assert leaves[3].column_reader("sortname", translate=False).had_stored_offsets


@pytest.mark.parametrize("q", ["depression", "insecure attachment", "emotionally focused couples", "EMDR therapy"])
def test_a_search_orders_alike_whether_its_words_lists_are_in_memory_or_not(
        q: str, shared_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    # Scoring a page window skips through the postings, unless an earlier search loaded every word's whole list.
    # Sorted by relevance, and with words that name a filter ("EMDR therapy", "couples"), which also finds listings
    # without every word: those score 0 either way.
    index = shared_app.extensions["search"]
    snapshot = index.snapshot()
    text = text_query(q)
    assert text.query is not None
    with shared_app.app_context():
        request = parse(MultiDict({"postcode": "10001", "radius": "100", "q": q, "per_page": "100",
                                   "sort": "relevance"}), fresh_window())
        snapshot.term_postings.clear()
        snapshot._term_postings_bytes = 0
        skipping = search(index, request)
        matched = snapshot.every_doc()[:1500]
        by_matcher = snapshot.scores(text.query, text.stems, matched)
        assert not any(key[2] == "weights" for key in snapshot.term_postings)
        with monkeypatch.context() as patched:
            patched.setattr(index_snapshot, "BULK_SCORING", 0)
            snapshot.scores(text.query, text.stems, snapshot.every_doc())  # as a national search loads them
        assert all(("text", stem, "weights") in snapshot.term_postings for stem in text.stems)
        with monkeypatch.context() as patched:
            patched.setattr(snapshot, "whoosh_scores", lambda *_: pytest.fail("skipped through the postings"))
            in_memory = search(index, request)
            by_arrays = snapshot.scores(text.query, text.stems, matched)
        snapshot.term_postings.clear()
        snapshot._term_postings_bytes = 0
    assert len(skipping.hits) > 10 and skipping.hits == in_memory.hits
    assert by_arrays.tolist() == pytest.approx(by_matcher.tolist(), rel=1e-9)
    assert np.count_nonzero(by_matcher) and (by_matcher == 0).tolist() == (by_arrays == 0).tolist()


def test_a_generation_written_before_docnum_files_is_reported_and_rebuilt(app: Flask, runner: FlaskCliRunner) -> None:
    # Such an index is not read by a slower path (deleted): searches refuse it, check reports it, --repair rebuilds.
    current = Path(app.extensions["search"].root) / "current"
    for path in current.resolve().glob(f"*{DOCNUM_EXT}"):
        path.unlink()
    with app.app_context():
        assert app.extensions["search"].snapshot().outdated()
        with pytest.raises(OutdatedIndex):
            app.extensions["search"].snapshot().docs_with("text", "depress")
    searched = app.test_client().get("/api/v1/search", query_string={"q": "depression"})
    assert searched.status_code == 503 and searched.get_json()["error"] == "service_unavailable"
    checked = runner.invoke(args=["index", "check"])
    assert checked.exit_code == 1 and "rebuilt" in checked.output
    repaired = runner.invoke(args=["index", "check", "--repair"])
    assert repaired.exit_code == 0, repaired.output
    with app.app_context():
        assert not app.extensions["search"].snapshot().outdated()
    assert runner.invoke(args=["index", "check"]).exit_code == 0
    body = app.test_client().get("/api/v1/search", query_string={"q": "depression"}).get_json()
    assert body["total"] > 0


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


def test_stemmed_words_are_the_analyzers_tokens(shared_app: Flask) -> None:
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        bios = [listing.bio for listing in session.scalars(select(Listing).limit(300))]
    for text in [*bios, "Don't re-read U.S. notes: a, I, é-tude, 24/7 ßİ"]:
        analyzed = [(t.text if not t.stopped else None, t.startchar, t.endchar)
                    for t in TEXT_ANALYZER(text, chars=True, removestops=False)]
        ours = list(stemmed_words(text))
        # Words the analyzer keeps have the same stem and span; its stopwords are ours without a stem.
        assert [(s, a, b) for s, a, b in ours if s is not None] == [x for x in analyzed if x[0] is not None]
