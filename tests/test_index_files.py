"""Index files written by earlier code open and search with this code. Whoosh pickles each field's class by module
name into an index's table of contents, so moving a field class makes every index on disk unreadable (see
directory/search/schema.py); a rebuild could mend it, but only after a start that fails.

The fixture is also from before accent folding: its table of contents holds the text analyzer without it, so it is
reported as outdated and rebuilt by the first process to start. It must still open for that (the check reads its
schema, `index check` its columns), and it still answers searches rightly for words written without accents, which
both analyses index alike: all of its words. It is also from before the fields of who a therapist sees, gender and
fees (age, client_type, community, gender, country, fee): reported as outdated for them too, a search of all the
facets on it says the index must be rebuilt (a 503, not a 500), and with the four facets it had it answers as then.

The fixture is a live generation written by commit 81e8b9e (before search/index/ existed) through its own
SearchIndex.write and listing_document: listings 1-4 below in one commit, then listing 4 rewritten in a second (a
deletion in the first segment and a segment of its own). 39 KB."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from directory.availability import Window
from directory.geo import postcodes
from directory.search import facets
from directory.search.engine import search
from directory.search.index.snapshot import OutdatedIndex
from directory.search.index.storage import CURRENT, SearchIndex
from directory.search.request import SearchRequest
from helpers import copy_world, world_app

FIXTURE = Path(__file__).parent / "fixtures" / "index_written_at_81e8b9e"
# What the fixture holds, as written: id → (city, modalities, specialties, words of its bio as last written).
# 1 Ada Byron, New York (the 10001 centroid, 0.25 km): eft; depression; "...depression and insecure attachment."
# 2 Bea Cole, Brooklyn (6 km), in person and online: cbt; anxiety; "...anxiety; evening sessions."
# 3 Cy Dunn, Toronto, not accepting: emdr; trauma-ptsd; "EMDR for trauma and grief; couples welcome."
# 4 Di Eves, New York (1 km): eft, cbt; depression, couples; "Couples, depression and grief, with attachment..."
# All were confirmed on 2026-11-01 and are licensed in their own state or province.
FRESH = Window(dt.date(2026, 9, 1), dt.date(2026, 11, 30))
# The fields this code's schema has and the fixture's lacks or analyses otherwise, and those the fixture has that
# this code's dropped (listings are found by their `pk` column, and spelling words kept a segment at a time), written
# out by hand.
OUTDATED = {"text", "age", "client_type", "community", "gender", "country", "fee", "id", "words"}
OLD_FACETS = ("modality", "specialty", "language", "insurance")  # the facets the fixture's code counted


def make_fixture_live(root: Path, generation: str = "gen-81e8b9e") -> None:
    """Copy the fixture into the index folder `root` as a generation, and make it the live one."""
    shutil.copytree(FIXTURE, root / generation)
    (root / CURRENT).unlink(missing_ok=True)
    os.symlink(generation, root / CURRENT)


@pytest.fixture
def old_index(tmp_path: Path) -> Iterator[SearchIndex]:
    root = tmp_path / "indexes"
    make_fixture_live(root)
    index = SearchIndex(root)
    yield index
    index.close()


def test_the_fixture_names_the_field_classes_by_their_old_module() -> None:
    (toc,) = FIXTURE.glob("_MAIN_*.toc")
    assert b"directory.search.schema" in toc.read_bytes()


def test_an_index_written_by_earlier_code_is_read_whole(old_index: SearchIndex) -> None:
    assert old_index.fields_outdated() == OUTDATED  # e.g. analysed before accent folding: rebuilt at start
    snapshot = old_index.snapshot()
    assert not snapshot.outdated()
    pks = snapshot.column("pk")
    assert sorted(pks[snapshot.every_doc()].tolist()) == [1, 2, 3, 4]  # listing 4's first version is deleted
    assert sorted(pks[snapshot.docs_with("text", "grief")].tolist()) == [3, 4]
    assert sorted(pks[snapshot.docs_with("modality", "cbt")].tolist()) == [2, 4]
    assert sorted(old_index.stamps()) == [1, 2, 3, 4]


def test_a_search_of_a_field_the_old_index_lacks_says_it_must_be_rebuilt(old_index: SearchIndex) -> None:
    for request in (SearchRequest(fresh=FRESH, q="grief"), SearchRequest(fresh=FRESH, age=("teens",)),
                    SearchRequest(fresh=FRESH, max_fee=100)):
        with pytest.raises(OutdatedIndex, match="`index check --repair`"):
            search(old_index, request)


def test_an_index_written_by_earlier_code_answers_searches(old_index: SearchIndex,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facets, "FACETS", OLD_FACETS)
    near = postcodes.lookup("10001")
    found = search(old_index, SearchRequest(fresh=FRESH, origin=near, q="depression"))
    assert [hit.listing_id for hit in found.hits] == [1, 4]  # nearest first
    assert found.facets["modality"]["eft"] == 2 and found.facets["modality"]["cbt"] == 1
    everywhere = search(old_index, SearchRequest(fresh=FRESH, q="grief"))
    assert sorted(hit.listing_id for hit in everywhere.hits) == [3, 4]
    accepting = search(old_index, SearchRequest(fresh=FRESH, q="grief", accepting=True))
    assert [hit.listing_id for hit in accepting.hits] == [4]
    online = search(old_index, SearchRequest(fresh=FRESH, origin=near, format="telehealth"))
    assert [hit.listing_id for hit in online.hits] == [2]


def test_an_index_written_before_accent_folding_is_rebuilt_at_start_and_reported_by_check(
        sample_world: Path, tmp_path: Path) -> None:
    copy_world(sample_world, tmp_path)
    root = tmp_path / "indexes"
    for generation in root.glob("gen-*"):
        shutil.rmtree(generation)
    make_fixture_live(root)
    assert SearchIndex(root).fields_outdated() == OUTDATED
    with world_app(tmp_path) as started:
        # The first process to start rebuilt it from the database: the sample's 2,000 listings, folded.
        index = started.extensions["search"]
        assert index.fields_outdated() == set() and (root / CURRENT).resolve().name != "gen-81e8b9e"
        client = started.test_client()
        totals = [client.get("/api/v1/search", query_string={"q": q}).get_json()["total"]
                  for q in ("Montreal", "Montréal")]
        assert totals[0] > 0 and totals[0] == totals[1]
        runner = started.test_cli_runner()
        assert runner.invoke(args=["index", "check"]).exit_code == 0
        # Put live under a running process (as by hand from a backup): `index check` reports it, --repair rebuilds.
        make_fixture_live(root, "gen-81e8b9e-again")
        # Meanwhile a search says search is being rebuilt (it lacks fields this code counts), not a bare 500.
        outdated = client.get("/api/v1/search", query_string={"q": "grief"})
        assert outdated.status_code == 503 and "rebuilt" in outdated.get_json()["message"]
        checked = runner.invoke(args=["index", "check"])
        assert checked.exit_code == 1 and "another text analysis" in checked.output
        repaired = runner.invoke(args=["index", "check", "--repair"])
        assert repaired.exit_code == 0, repaired.output
        assert index.fields_outdated() == set()
        assert client.get("/api/v1/search", query_string={"q": "Montréal"}).get_json()["total"] == totals[0]
