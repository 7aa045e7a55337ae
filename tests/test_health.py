"""Probes for load balancers: /health answers while the process does; /ready says whether this node can serve what
the database holds (the database answers, the index is open, its lag under the bound), 503 when not and 200 again
after; neither sets a cookie, is rate limited or shows a secret. And a node on PostgreSQL refuses to start without a
shared SECRET_KEY unless told it is alone."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from directory import create_app, db
from directory.models import ListingChange, utcnow
from directory.search import follower
from helpers import SERVER_URL, on_postgresql


def _ready(app: Flask) -> tuple[int, dict[str, object]]:
    response = app.test_client().get("/ready")
    assert "Set-Cookie" not in response.headers
    return response.status_code, response.get_json()


def test_health_answers_and_ready_is_200_on_a_node_that_is_level(app: Flask) -> None:
    client = app.test_client()
    for _ in range(200):  # never rate limited
        response = client.get("/health")
        assert response.status_code == 200 and response.get_json() == {"status": "ok"}
        assert "Set-Cookie" not in response.headers
    status, body = _ready(app)
    assert status == 200 and body["status"] == "ready", body
    assert body["checks"] == {"database": "ok", "index": "ok", "lag_seconds": 0.0, "max_lag_seconds": 30.0}


def test_ready_is_503_while_the_index_lags_past_the_bound_and_200_once_it_has_caught_up(app: Flask) -> None:
    with app.extensions["db"]() as session:
        listing_id = session.scalar(text("SELECT min(id) FROM listings"))
        # A change committed a minute ago that this node's index has not applied (its follower stopped, say).
        session.add(ListingChange(listing_id=listing_id, action="updated", at=utcnow() - dt.timedelta(seconds=60)))
        session.commit()
    status, body = _ready(app)
    assert status == 503 and body["status"] == "not ready", body
    assert 59 <= body["checks"]["lag_seconds"] < 120, body  # type: ignore[index, operator]
    app.config["READY_MAX_LAG_SECONDS"] = 120
    assert _ready(app)[0] == 200
    app.config["READY_MAX_LAG_SECONDS"] = 30
    follower.follow_once(db.factory(app), app.extensions["search"])
    status, body = _ready(app)
    assert status == 200 and body["checks"]["lag_seconds"] == 0.0, body  # type: ignore[index]


def _unreachable(app: Flask, tmp_path: Path) -> object:
    """Make the app's database unreachable: closed to connections (PostgreSQL), or its file gone (SQLite)."""
    db.engine(app).dispose()
    url = make_url(app.config["DATABASE_URL"])
    if on_postgresql():
        server = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
        with server.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false'))
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                               {"name": url.database})
        return server
    shutil.move(url.database, tmp_path / "moved.sqlite3")  # type: ignore[arg-type]
    Path(url.database).parent.chmod(0o500)  # type: ignore[arg-type]
    return None


def _reachable(app: Flask, tmp_path: Path, server: object) -> None:
    url = make_url(app.config["DATABASE_URL"])
    if server is not None:
        with server.connect() as connection:  # type: ignore[attr-defined]
            connection.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true'))
        server.dispose()  # type: ignore[attr-defined]
    else:
        Path(url.database).parent.chmod(0o700)  # type: ignore[arg-type]
        Path(url.database).unlink(missing_ok=True)  # type: ignore[arg-type]
        shutil.move(tmp_path / "moved.sqlite3", url.database)  # type: ignore[arg-type]
    db.engine(app).dispose()


def test_ready_is_503_while_the_database_is_unreachable_and_200_after(app: Flask, tmp_path: Path) -> None:
    assert _ready(app)[0] == 200
    server = _unreachable(app, tmp_path)
    try:
        status, body = _ready(app)
    finally:
        _reachable(app, tmp_path, server)
    assert status == 503 and body["checks"]["database"].startswith("unreachable ("), body  # type: ignore[index]
    assert "127.0.0.1" not in str(body) and "sqlite3" not in str(body)  # no address, no path
    assert _ready(app)[0] == 200


def test_a_node_on_postgresql_without_secret_key_refuses_to_start_unless_alone(tmp_path: Path) -> None:
    config = {"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere", "SECRET_KEY": "",
              "INSTANCE_PATH": str(tmp_path / "instance"), "INDEX_DIR": str(tmp_path / "indexes")}
    with pytest.raises(RuntimeError, match="set the same SECRET_KEY on every node, or SINGLE_NODE=1"):
        create_app(config)
    assert not (tmp_path / "instance" / "secret_key").exists()
    # Alone, it makes its own key (and then fails on the database nobody runs, which is another matter).
    with pytest.raises(Exception, match="127.0.0.1"):
        create_app({**config, "SINGLE_NODE": True})
    assert (tmp_path / "instance" / "secret_key").exists()
