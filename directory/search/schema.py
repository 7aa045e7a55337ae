"""Kept for the index files, not for code: Whoosh pickles each field's class by module name into every index's
table of contents, and every index this project has written names `directory.search.schema.FastText` and
`directory.search.schema.FastKeyword`. Without this module none of them opens (tests/test_index_files.py opens
one). The index's fields are defined in search/index/fields.py; import nothing from here."""

from directory.search.index.whoosh_internals import FastKeyword, FastText

__all__ = ["FastKeyword", "FastText"]
