"""Whether the PostgreSQL server the suite's second half runs on is reachable: `python tests/postgres_server.py`
exits 0 when it is, and 1 with the reason when it is not (the Makefile then says so instead of skipping silently)."""

from __future__ import annotations

import os
import sys

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def main() -> int:
    """Connect once, with a short timeout; print why when it fails."""
    engine = create_engine(URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means the same thing here: no server to test on
        reason = f"no PostgreSQL server at {make_url(URL).render_as_string()}: {type(exc).__name__}: {exc}"
        print(reason.splitlines()[0])
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
