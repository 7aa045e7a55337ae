"""The benchmark (python -m bench): the project against an SQLite FTS5 baseline."""
