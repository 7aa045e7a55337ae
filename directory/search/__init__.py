"""Full-text and geo search over listings, knowing nothing of Flask: callers pass the index, session and day.

The query side: request.py parses a search once; engine.py runs it in terms of radius.py (distance filtering),
accepting.py, text.py and facets.py; results.py loads its page of listings; dead_ends.py finds ways out of an empty
answer. documents.py turns a listing into a search document, sync.py keeps the index in step with the database,
and index/ stores and reads the index. schema.py only keeps old index files readable.
"""
