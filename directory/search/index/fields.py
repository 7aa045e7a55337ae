"""The index's vocabulary: its fields (what is a term, what is a column), the terms of the `flag` field, and the
licence term. What a listing puts in each field is search/documents.py's."""

from __future__ import annotations

from whoosh import columns
from whoosh.fields import COLUMN, ID, Schema

from directory.geo import region_country
from directory.search.index.whoosh_internals import TEXT_ANALYZER, FastKeyword, FastText

TEXT_KINDS = ("modality", "specialty")  # the vocabulary kinds whose names and synonyms are in a listing's text
# Terms of the `flag` field, and the one a search's session format (other than "any") looks up.
TELEHEALTH_FLAG, IN_PERSON_FLAG, ACCEPTING_FLAG = "telehealth", "in_person", "accepting"
SLIDING_SCALE_FLAG = "sliding_scale"
NO_FEE = 2**31 - 1  # the `fee` column of a listing that gives none: above every ceiling
FORMAT_FLAG = {"in_person": IN_PERSON_FLAG, "telehealth": TELEHEALTH_FLAG}
# Not a field: a document's key for the bio's own words, unstemmed, which spelling suggestions are made of. Only the
# set of them matters, never which listing wrote one, so each segment keeps its words as one list (in its docnum
# file) instead of postings a document: as a field they were 11% of an index worker's time. A segment keeps a word
# while its stem is a term of the text field there, so that a merge drops the words of documents deleted since, as
# it drops their terms (a word stays while another document has one of the same stem).
SPELLING_WORDS = "_spelling_words"
SPELLING_STEMS_FIELD = "text"


def make_schema() -> Schema:
    """Index fields: terms for filtering and text, columns for what ranking needs; display data stays in the DB."""
    return Schema(
        text=FastText(analyzer=TEXT_ANALYZER),
        cell=FastKeyword(),
        modality=FastKeyword(),
        specialty=FastKeyword(),
        language=FastKeyword(),
        insurance=FastKeyword(),
        age=FastKeyword(),
        client_type=FastKeyword(),
        community=FastKeyword(),
        gender=FastKeyword(),
        country=FastKeyword(),  # whose currency the listing's fees are in
        licence=ID(),
        flag=FastKeyword(),
        pk=COLUMN(columns.NumericColumn("q")),
        lat=COLUMN(columns.NumericColumn("d")),
        lon=COLUMN(columns.NumericColumn("d")),
        sortname=COLUMN(columns.VarBytesColumn()),
        stamp=COLUMN(columns.NumericColumn("d")),
        confirmed=COLUMN(columns.NumericColumn("i")),  # availability_confirmed_on's day_number
        fee=COLUMN(columns.NumericColumn("i")),  # the lowest fee a session, or NO_FEE
    )


def licence_term(region: str) -> str:
    """The term for "licensed in this state or province"; regions are prefixed by country to stay unambiguous."""
    country = region_country(region)
    return f"{country}-{region}" if country else ""
