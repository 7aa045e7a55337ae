"""The index wing: the search index as stored on disk and read back (storage, snapshot, fields, segments, docnum
files, document sets, and the one seam onto Whoosh's internals). It knows nothing of listings or the database:
search/documents.py turns a listing into what it stores."""
