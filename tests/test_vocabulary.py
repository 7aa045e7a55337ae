"""Vocabulary values as real spreadsheets and directories spell them: the matcher, the CSV import, the admin form
and free-text search, each against a hand-written table of what every spelling means."""

from __future__ import annotations

import html
import random
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory.models import Listing
from directory.vocabulary import KINDS, TermError, vocabulary
import text_oracle
from helpers import csrf_token, do_import, make_csv

# How directories and therapists write these names, each with the slug it must mean (checked by hand against
# vocabulary.json). Abbreviations dropped, alone and kept; " / " alternatives; "&"; British and American
# spellings; plurals and singulars; accents; a trailing "therapy" or "counseling"; odd case and spacing.
SPELLINGS = [
    ("modality", "Internal Family Systems", "ifs"),
    ("modality", "Internal Family Systems (IFS)", "ifs"),
    ("modality", "IFS", "ifs"),
    ("modality", "IFS Therapy", "ifs"),
    ("modality", "Internal Family System", "ifs"),
    ("modality", "Interpersonal Therapy", "ipt"),
    ("modality", "Interpersonal Psychotherapy (IPT)", "ipt"),
    ("modality", "Emotionally Focused Therapy", "eft"),
    ("modality", "Emotionally Focussed Therapy", "eft"),
    ("modality", "Emotionally-Focused Couples Therapy (EFCT)", "eft"),
    ("modality", "EFT", "eft"),
    ("modality", "Acceptance & Commitment Therapy", "act"),
    ("modality", "Acceptance and Commitment Therapy (ACT)", "act"),
    ("modality", "Mentalization-Based Treatment", "mbt"),
    ("modality", "Mentalisation Based Treatment", "mbt"),
    ("modality", "Cognitive Behavioral Therapy (CBT)", "cbt"),
    ("modality", "Cognitive Behavioural Therapy", "cbt"),
    ("modality", "Cognitive Behavior Therapy", "cbt"),
    ("modality", "  cbt  ", "cbt"),
    ("modality", "Dialectical Behavior Therapy", "dbt"),
    ("modality", "Dialectical Behavioural Therapy (DBT)", "dbt"),
    ("modality", "EMDR Therapy", "emdr"),
    ("modality", "Eye Movement Desensitization & Reprocessing (EMDR)", "emdr"),
    ("modality", "attachment based", "attachment-based"),
    ("modality", "Attachment-Based Therapy", "attachment-based"),
    ("modality", "Attachment Based Family Therapy", "abft"),
    ("modality", "Compassion Focused Therapy", "cft"),
    ("modality", "Compassion-Focussed Therapy (CFT)", "cft"),
    ("modality", "Psychodynamic", "psychodynamic"),
    ("modality", "Psychodynamic Psychotherapy", "psychodynamic"),
    ("modality", "Gottman Method Couples Therapy", "gottman"),
    ("modality", "Family Systems", "family-systems"),
    ("modality", "Trauma Informed Care", "trauma-informed"),
    ("modality", "Schema-Focused Therapy", "schema"),
    ("specialty", "Attachment issues", "insecure-attachment"),
    ("specialty", "Insecure Attachment", "insecure-attachment"),
    ("specialty", "Insecure attachment / attachment issues", "insecure-attachment"),
    ("specialty", "Attachment Issue", "insecure-attachment"),
    ("specialty", "Trauma & PTSD", "trauma-ptsd"),
    ("specialty", "Trauma and PTSD", "trauma-ptsd"),
    ("specialty", "Trauma/PTSD", "trauma-ptsd"),
    ("specialty", "Post-Traumatic Stress Disorder", "trauma-ptsd"),
    ("specialty", "Depression", "depression"),
    ("specialty", "Depressive Disorders", "depression"),
    ("specialty", "Anxiety Disorders", "anxiety"),
    ("specialty", "Grief & Loss", "grief"),
    ("specialty", "Self Esteem", "self-esteem"),
    ("specialty", "Relationship Issue", "relationship-issues"),
    ("specialty", "Suicidal Ideation", "suicidal-thoughts"),
    ("specialty", "Bipolar", "bipolar"),
    ("language", "Español", "spanish"),
    ("language", "Espanol", "spanish"),
    ("language", "Français", "french"),
    ("language", "ASL", "asl"),
    ("language", "Chinese (Mandarin)", "mandarin"),
    ("insurance", "Blue Cross Blue Shield", "bcbs"),
    ("insurance", "BlueCross BlueShield", "bcbs"),
    ("insurance", "Blue Cross (Canada)", "blue-cross-canada"),
    ("insurance", "Pacific Blue Cross", "blue-cross-canada"),
    ("insurance", "United Healthcare", "uhc"),
    ("insurance", "UnitedHealthcare", "uhc"),
    ("insurance", "Sun Life", "sun-life"),
    ("insurance", "SunLife", "sun-life"),
    ("insurance", "Green Shield", "green-shield"),
    ("insurance", "Tricare", "tricare"),
    # Who a therapist sees: couples and teens were specialties once, and directories still write them so.
    ("age", "Teenagers", "teens"),
    ("age", "Adolescent", "teens"),
    ("age", "Teens (13-17)", "teens"),
    ("age", "Kids", "children"),
    ("age", "Children (under 13)", "children"),
    ("age", "Preteens", "children"),
    ("age", "College Students", "young-adults"),
    ("age", "Young Adults", "young-adults"),
    ("age", "Adult", "adults"),
    ("age", "Seniors", "older-adults"),
    ("age", "Older Adults (65+)", "older-adults"),
    ("client_type", "Couples Counselling", "couples"),
    ("client_type", "Couples Counseling", "couples"),
    ("client_type", "Couples Therapy", "couples"),
    ("client_type", "Couple", "couples"),
    ("client_type", "Marriage Counselling", "couples"),
    ("client_type", "Family Therapy", "families"),
    ("client_type", "Group Therapy", "groups"),
    ("client_type", "One-on-one", "individuals"),
    ("client_type", "Individual", "individuals"),
    ("community", "LGBTQ+", "lgbtq-affirming"),
    ("community", "LGBTQIA+", "lgbtq-affirming"),
    ("community", "Gay-Affirming", "lgbtq-affirming"),
    ("community", "Gender-Affirming Care", "trans-affirming"),
    ("community", "Transgender and non-binary affirming", "trans-affirming"),
    ("community", "BIPOC", "bipoc-centered"),
    ("community", "BIPOC-centred", "bipoc-centered"),
    ("community", "People of Colour", "bipoc-centered"),
    ("community", "Military Families", "veterans"),
    ("community", "Christian Counselling", "faith-christian"),
    ("community", "Catholic", "faith-christian"),
    ("community", "Islamic", "faith-muslim"),
    ("community", "Judaism", "faith-jewish"),
    ("community", "Neurodiversity-Affirming", "neurodivergent-affirming"),
    ("community", "Refugees", "immigrants-refugees"),
    ("community", "Disabled clients", "disability-affirming"),
    # Gender as intake forms and spreadsheets write it.
    ("gender", "Female", "woman"),
    ("gender", "F", "woman"),
    ("gender", "Trans Woman", "woman"),
    ("gender", "Cisgender Woman", "woman"),
    ("gender", "Male", "man"),
    ("gender", "M", "man"),
    ("gender", "Trans man", "man"),
    ("gender", "Non-Binary", "non-binary"),
    ("gender", "Nonbinary", "non-binary"),
    ("gender", "NB", "non-binary"),
    ("gender", "Genderqueer", "non-binary"),
    ("gender", "Enby", "non-binary"),
]

# Values that must stay errors, with words their message must hold.
REFUSED = [
    ("insurance", "Blue Cross", ["could mean", "(bcbs)", "(blue-cross-canada)"]),
    ("modality", "Emotionaly Focused Therapy",
     ["unknown modality", "did you mean 'Emotionally Focused Therapy (EFT)'"]),
    ("modality", "Internal Famly Systems", ["unknown modality", "did you mean 'Internal Family Systems (IFS)'"]),
    ("specialty", "Depresion", ["unknown specialty", "did you mean 'Depression'"]),
    ("modality", "Astrology", ["unknown modality 'Astrology'"]),
    # The name and the abbreviation written beside it name different terms: never pick one silently.
    ("modality", "Interpersonal Psychotherapy (CBT)", ["could mean", "(ipt)", "(cbt)"]),
    # A parenthesis that carries meaning is not dropped, so this is not silently the Canadian insurer.
    ("insurance", "Blue Cross (US)", ["could mean", "(bcbs)"]),
    # A specialty's synonym is no modality, and no respelling of one: it is not "Trauma-informed care" misspelt.
    ("modality", "Trauma", ["unknown modality 'Trauma'"]),
    # Alike to a fuzzy ratio of 50 or more, but different things: no "did you mean" at all.
    ("language", "Japanese", ["unknown language 'Japanese'"]),
    ("modality", "Primal Scream Therapy", ["unknown modality 'Primal Scream Therapy'"]),
    # Who a therapist sees is no specialty any more (the import moves such a value, with a warning).
    ("specialty", "Couples", ["unknown specialty 'Couples'"]),
    ("specialty", "Adolescents", ["unknown specialty 'Adolescents'"]),
    # Genders that are no term of the vocabulary: kept as written by the import, never guessed.
    ("gender", "Two-Spirit", ["unknown gender 'Two-Spirit'"]),
    ("gender", "Woman (she/her)", ["unknown gender 'Woman (she/her)'"]),
    ("gender", "genderqueer woman", ["unknown gender"]),
]

# Gender values that decline to say one (the same as blank), and values that do say something.
NOT_SAID = ["Prefer not to say", "prefer not to answer", "N/A", "n/a", "NA", "None", "-", "", "Decline to state",
            "Declined", "Not specified", "Unspecified"]
SAID = ["Woman", "Two-Spirit", "No", "Non-binary", "Not a man"]


def test_the_table_is_big_enough_and_covers_every_kind() -> None:
    assert len(SPELLINGS) >= 40
    assert {kind for kind, _, _ in SPELLINGS} == set(KINDS)


@pytest.mark.parametrize(("kind", "written", "slug"), SPELLINGS)
def test_real_world_spellings_resolve(kind: str, written: str, slug: str) -> None:
    assert vocabulary.resolve(kind, written) == slug


@pytest.mark.parametrize(("kind", "written", "words"), REFUSED)
def test_ambiguous_values_and_typos_are_errors(kind: str, written: str, words: list[str]) -> None:
    with pytest.raises(TermError) as raised:
        vocabulary.resolve(kind, written)
    for word in words:
        assert word in str(raised.value)


@pytest.mark.parametrize("written", NOT_SAID)
def test_a_gender_that_declines_to_say_one_says_nothing(written: str) -> None:
    assert vocabulary.says_nothing(written)
    assert vocabulary.match("gender", written) == ()


@pytest.mark.parametrize("written", SAID)
def test_a_gender_that_says_something_is_not_taken_for_silence(written: str) -> None:
    assert not vocabulary.says_nothing(written)


def _edits(a: str, b: str) -> int:
    """Levenshtein distance with a swap of neighbours as one edit (optimal string alignment), the dynamic program
    written here as the oracle."""
    rows = [list(range(len(b) + 1))] + [[i] + [0] * len(b) for i in range(1, len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[-1][-1]


def _bound(word: str) -> int:
    """The edits a respelling may hold, as the README states it: none up to two letters, one up to five, two beyond."""
    return {0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 1}.get(len(word), 2)


def _respells(typed: str, known: str) -> bool:
    """Word by word within each typed word's bound, or the whole within the bound of its length."""
    if _edits(typed, known) <= _bound(typed):
        return True
    typed_words, known_words = typed.split(" "), known.split(" ")
    return len(typed_words) == len(known_words) and all(
        _edits(t, k) <= _bound(t) for t, k in zip(typed_words, known_words, strict=True))


def test_the_oracle_counts_edits_as_written() -> None:
    assert [_edits(a, b) for a, b in [("", "abc"), ("kitten", "sitting"), ("ab", "ba"), ("depresion", "depression"),
                                      ("japanese", "cantonese"), ("ca", "abc")]] == [3, 3, 1, 1, 4, 3]


@pytest.mark.parametrize(("kind", "typed", "slug"), [
    ("modality", "Emotionaly Focused Therapy", "eft"),
    ("modality", "Internal Famly Systems", "ifs"),
    ("specialty", "Depresion", "depression"),
    ("modality", "Cognitve Behavorial Therapy", "cbt"),  # two words respelled, each within its own bound
    ("modality", "Psycho dynamic", "psychodynamic"),  # a word split in two, read as one
    ("modality", "CTB", "cbt"),  # a swap of neighbours is one edit
    ("language", "Spansh", "spanish"),
])
def test_a_typo_suggests_the_term_it_respells(kind: str, typed: str, slug: str) -> None:
    suggested = vocabulary.closest(kind, typed)
    assert suggested is not None and suggested.slug == slug


@pytest.mark.parametrize(("kind", "typed", "not_meant"), [
    ("language", "Japanese", "cantonese"),  # four edits from "cantonese", a fuzzy ratio of 82
    ("modality", "Primal Scream Therapy", "schema"),  # nine edits from "schema therapy"
    ("modality", "Trauma", "trauma-informed"),
    ("modality", "Astrology", None),
])
def test_a_different_term_that_looks_alike_is_no_suggestion(kind: str, typed: str, not_meant: str | None) -> None:
    assert not any(_respells(vocabulary.spelling.key(typed), key) for key in vocabulary._by_key[kind])
    assert vocabulary.closest(kind, typed) is None
    if not_meant:
        assert not_meant in vocabulary.slugs(kind)  # the term the old fuzzy ratio offered is still there


def test_did_you_mean_names_the_nearest_known_respelling() -> None:
    # The hint is a registered spelling the value is a respelling of, the fewest edits away, and none when there
    # is none: three seeded typos of each registered spelling, against every spelling of their kind in Python.
    rng = random.Random(14)
    checked = none = 0
    for kind in KINDS:
        keys = vocabulary._by_key[kind]
        for key in sorted(keys) * 3:
            chars = list(key)
            at = rng.randrange(len(chars))
            chars[at:at + 1] = rng.choice([[], [rng.choice("aeioust")], [rng.choice("aeioust"), chars[at]]])
            typo = "".join(chars)
            if not typo.strip() or vocabulary.match(kind, typo):
                continue
            folded = vocabulary.spelling.key(typo)
            near = [(_edits(folded, other), other) for other in keys if _respells(folded, other)]
            suggested = vocabulary.closest(kind, typo)
            if not near:
                assert suggested is None, (typo, suggested)
                none += 1
                continue
            assert suggested is not None, typo
            best = min(distance for distance, _ in near)
            got = min(distance for distance, other in near if suggested.slug in keys[other])
            assert got == best, (kind, typo, suggested.slug)
            checked += 1
    # Measured: 631 typos with a suggestion and 12 without: abbreviations cut to two letters ("cbt" as "cb"), and
    # "sifs", which folds as a plural to "sif", two edits from "ifs".
    assert checked > 600 and none > 0


def test_the_only_ambiguous_name_is_blue_cross() -> None:
    # A new synonym that collides with another term's name shows up here instead of as a surprise in an import.
    assert {kind: vocabulary.ambiguous_keys(kind) for kind in KINDS} == {
        "modality": {}, "specialty": {}, "language": {}, "insurance": {"blue cross": ["bcbs", "blue-cross-canada"]},
        "age": {}, "client_type": {}, "community": {}, "gender": {},
    }


def test_no_name_of_one_kind_is_the_name_of_another_that_free_text_reads_as_a_filter() -> None:
    # A word typed alone that names two filters ("family": a client type, or a specialty?) is no filter word; so
    # the kinds whose names the text can name must not share a spelling. Specialties and approaches are text.
    filter_kinds = ("language", "insurance", "age", "client_type", "community", "gender")
    owners: dict[str, set[str]] = {}
    for kind in filter_kinds:
        for key in vocabulary._by_key[kind]:
            owners.setdefault(key, set()).add(kind)
    assert {key: kinds for key, kinds in owners.items() if len(kinds) > 1} == {}


def test_no_name_holds_a_comma_that_would_split_it() -> None:
    # The importer reads "CBT, EMDR" as two terms; that is only safe while no name has a comma of its own.
    for kind in KINDS:
        for term in vocabulary.terms[kind].values():
            assert not any("," in name for name in (term.name, *term.synonyms)), term


# The kinds written as lists of terms (gender is one value: tests/test_import_who_it_is_for.py imports its spellings).
COLUMN = {"modality": "modalities", "specialty": "specialties", "language": "languages", "insurance": "insurance",
          "age": "ages", "client_type": "client_types", "community": "communities"}
LISTED = [(kind, written, slug) for kind, written, slug in SPELLINGS if kind in COLUMN]


def _spreadsheet_rows() -> list[tuple[dict[str, str], dict[str, list[str]]]]:
    """Rows that spell every table entry once (a few per cell, as spreadsheets do), with the slugs each must get."""
    rows = []
    for start in range(0, len(LISTED), 3):
        chunk = LISTED[start:start + 3]
        cells: dict[str, list[str]] = {}
        expected: dict[str, list[str]] = {}
        for kind, written, slug in chunk:
            cells.setdefault(COLUMN[kind], []).append(written)
            if slug not in expected.setdefault(COLUMN[kind], []):
                expected[COLUMN[kind]].append(slug)
        row = {"external_id": f"spell-{start}", "name": f"Spelling Example {start}", "postcode": "10001"}
        row |= {column: "; ".join(values) for column, values in cells.items()}
        rows.append((row, expected))
    # Commas between terms, as many spreadsheets write them.
    rows.append(({"external_id": "spell-commas", "name": "Comma Example", "postcode": "10001",
                  "modalities": "CBT, EMDR, Internal Family Systems"}, {"modalities": ["cbt", "emdr", "ifs"]}))
    return rows


def test_a_spreadsheet_of_real_spellings_imports_strictly(app: Flask, session: Session) -> None:
    rows = _spreadsheet_rows()
    columns = ["external_id", "name", "postcode", *COLUMN.values()]
    report = do_import(app, make_csv([row for row, _ in rows], columns=columns))
    assert report.errors.first == [] and report.rejected == 0 and report.written
    assert report.created == len(rows)
    for row, expected in rows:
        listing = session.scalar(select(Listing).where(Listing.external_id == row["external_id"]))
        assert listing is not None
        for column in COLUMN.values():
            assert getattr(listing, column) == expected.get(column, []), (row, column)


def test_the_same_spellings_typed_into_the_admin_form_save(admin_client: FlaskClient, session: Session) -> None:
    listing = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id)).first()
    assert listing is not None
    form_page = admin_client.get(f"/admin/listings/{listing.id}/edit").get_data(as_text=True)
    fields = {name: html.unescape(value)
              for name, value in re.findall(r'<input id="f-[^"]+" name="([^"]+)" value="([^"]*)"', form_page)}
    bio = re.search(r'<textarea[^>]*name="bio"[^>]*>(.*?)</textarea>', form_page, re.S)
    fields["bio"] = html.unescape(bio.group(1)) if bio else ""
    for row, expected in _spreadsheet_rows():
        values = {**fields, **{column: row.get(column, "") for column in COLUMN.values()}}
        response = admin_client.post(f"/admin/listings/{listing.id}/edit",
                                     data={**values, "csrf_token": csrf_token(form_page)})
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        session.expire_all()
        saved = session.get(Listing, listing.id)
        for column in COLUMN.values():
            assert getattr(saved, column) == expected.get(column, []), (row, column)


# Free text that is, as a whole, a way of writing a term, with the term it names (checked by hand); and text that
# names none, whose results are the word matches alone.
TEXT = [
    ("trauma & ptsd", {("specialty", "trauma-ptsd")}),
    ("interpersonal therapy", {("modality", "ipt")}),
    ("Compassion Focussed Therapy", {("modality", "cft")}),
    ("EMDR therapy", {("modality", "emdr")}),
    ("Mentalisation-Based Treatment", {("modality", "mbt")}),
    ("Acceptance & Commitment Therapy", {("modality", "act")}),
    ("family problems", {("specialty", "family-conflict")}),  # "family" alone is a filter word, not among others
    ("insecure attachment", {("specialty", "insecure-attachment")}),
    ("depression", {("specialty", "depression")}),
    ('"low mood"', {("specialty", "depression")}),
    ("emotionally-focused couples", {("modality", "eft")}),
    ("depression couples", set()),
    ("Spanish depression", set()),  # "Spanish" alone is the language filter (test_filter_words.py); here, a word
    ('"attachment-based" teens', set()),
]


@pytest.mark.parametrize(("q", "named"), TEXT)
def test_free_text_finds_what_the_term_finds(q: str, named: set[tuple[str, str]], shared_app: Flask,
                                             shared_client: FlaskClient) -> None:
    expected, tagged = set(), set()
    with shared_app.app_context(), shared_app.extensions["db"]() as session:
        for listing in session.scalars(select(Listing).where(Listing.published)):
            has_term = any(slug in getattr(listing, COLUMN[kind]) for kind, slug in named)
            if has_term:
                tagged.add(listing.external_id)
            if has_term or text_oracle.matches(q, listing):
                expected.add(listing.external_id)
    found: set[str] = set()
    page = 1
    while True:
        body = shared_client.get("/api/v1/search", query_string={"q": q, "per_page": 100, "page": page}).get_json()
        found |= {r["id"] for r in body["results"]}
        if page * 100 >= body["total"]:
            break
        page += 1
    assert body["total"] == len(expected)
    assert found == expected
    assert tagged <= found
    if named:
        assert tagged, "the sample data should hold listings with this term"
