"""Therapist directory search service: the application factory."""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import click
from flask import Flask

log = logging.getLogger(__name__)
CATCH_UP_SECONDS = 15.0  # how long a starting process applies the change log its index lacks before serving
REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def _instance_secret(instance: Path) -> str:
    # A key kept in the instance folder, so sessions survive restarts and are shared by workers on one machine.
    path = instance / "secret_key"
    if not path.exists():
        draft = instance / f".secret_key.{os.getpid()}"
        draft.write_text(secrets.token_hex(32))
        draft.chmod(0o600)
        try:
            os.link(draft, path)  # atomic: the first worker's key wins, no one reads a half-written file
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def _secret_key(app: Flask) -> str:
    """The key of an app given none: kept in its instance folder, when it is the only node on its database.
    Several nodes on one PostgreSQL database would each make their own, and sessions and emailed links signed on
    one would fail on the others: that is refused, unless SINGLE_NODE says this node is alone."""
    if app.config["DATABASE_URL"].startswith("postgresql") and not app.config["SINGLE_NODE"]:
        raise RuntimeError("SECRET_KEY is not set. On PostgreSQL several nodes may share the database, and each "
                           "would make its own key, so a session or an emailed link made on one would fail on "
                           "another: set the same SECRET_KEY on every node, or SINGLE_NODE=1 if this is the only one.")
    return _instance_secret(Path(app.instance_path))


def _load_sample(app: Flask) -> None:
    """The sample listings, into a database that has none (when LOAD_SAMPLE_DATA is on)."""
    from directory import db, sample

    if app.config["LOAD_SAMPLE_DATA"]:
        started = time.monotonic()
        if loaded := sample.load_if_empty(db.factory(app), app.config["SAMPLE_SIZE"], app.config["CLOCK"]()):
            log.info("loaded and indexed %d sample listings in %.1f s", loaded, time.monotonic() - started)


def serving() -> bool:
    """Whether this process is to serve requests: under a WSGI server (no command runs) or `flask run`. Another
    command (an import, `index status`) neither catches up nor follows: status would hide the lag it reports."""
    command = click.get_current_context(silent=True)
    return command is None or command.info_name == "run"


def _follow_changes(app: Flask) -> None:
    """Catch the index up with the change log before serving, then follow it (when INDEX_FOLLOWER is on)."""
    from directory import db
    from directory.search import follower
    from directory.search.index.storage import IndexBusy

    index = app.extensions["search"]
    try:
        # Bounded well under gunicorn's 30 s worker timeout: a crashed 1M-row import's rows are applied by the
        # follower while this process serves, instead of a worker killed for starting too slowly.
        if not follower.catch_up(db.factory(app), index, app.config["INDEX_LOCK_TIMEOUT"], seconds=CATCH_UP_SECONDS):
            log.warning("the index still lacks part of the change log after %g s; the follower applies the rest "
                        "while this process serves", CATCH_UP_SECONDS)
    except IndexBusy:
        log.warning("the search index is busy; the follower will apply the changes it lacks")
    if app.config["INDEX_FOLLOWER"]:
        app.extensions["index_follower"] = follower.Follower(db.factory(app), index)
        app.extensions["index_follower"].start()


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration from the environment (or test_config), database, index, blueprints."""
    app = Flask(
        __name__,
        instance_path=(test_config or {}).get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH")
        or str(REPO_ROOT / "instance"),
        template_folder=str(REPO_ROOT / "templates"),
        static_folder=str(REPO_ROOT / "static"),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    from directory.models import utcnow
    from directory.web.json_provider import FastJSONProvider

    app.json = FastJSONProvider(app)

    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY", ""),  # unset: see _secret_key
        SINGLE_NODE=_env_flag("SINGLE_NODE", False),  # this is the only node on its database (see _secret_key)
        READY_MAX_LAG_SECONDS=float(os.environ.get("READY_MAX_LAG_SECONDS", "30")),  # /ready's bound on index lag
        CHANGE_LOG_RETENTION_DAYS=float(os.environ.get("CHANGE_LOG_RETENTION_DAYS", "7")),
        DATABASE_URL=os.environ.get("DATABASE_URL") or f"sqlite:///{Path(app.instance_path) / 'directory.sqlite3'}",
        INDEX_DIR=os.environ.get("INDEX_DIR") or str(REPO_ROOT / "indexes"),
        LOAD_SAMPLE_DATA=_env_flag("LOAD_SAMPLE_DATA", True),
        SAMPLE_SIZE=int(os.environ.get("SAMPLE_SIZE", "2000")),
        INDEX_LOCK_TIMEOUT=float(os.environ.get("INDEX_LOCK_TIMEOUT", "10")),
        RATELIMIT_STORAGE_URI=os.environ.get("RATELIMIT_STORAGE_URI", ""),
        LOGIN_RATE_LIMIT=os.environ.get("LOGIN_RATE_LIMIT", "10 per minute"),
        MAX_CONTENT_LENGTH=int(os.environ.get("MAX_CONTENT_LENGTH", str(20 * 1024 * 1024))),
        STALE_AFTER_DAYS=int(os.environ.get("STALE_AFTER_DAYS", "90")),
        CLOCK=dt.date.today,  # the one source of "today" (availability freshness); tests replace it
        AUTO_MIGRATE=_env_flag("AUTO_MIGRATE", True),
        PLACES_DIR=os.environ.get("PLACES_DIR") or app.instance_path,
        INDEX_FOLLOWER=_env_flag("INDEX_FOLLOWER", True),  # see directory/search/follower.py
        REDIS_URL=os.environ.get("REDIS_URL", ""),  # background jobs on Redis (see directory/jobs.py), else threads
        JOB_QUEUE=os.environ.get("JOB_QUEUE", "directory"),
        TICK_SECONDS=float(os.environ.get("TICK_SECONDS", "10")),  # periodic jobs (directory/periodic.py); 0: cron
        NOW=utcnow,  # the one source of the time for periodic jobs and confirmation requests; tests replace it
        PUBLIC_BASE_URL=os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000"),  # links in emails
        MAIL_SERVER=os.environ.get("MAIL_SERVER", ""),  # unset: messages go to the instance folder's outbox
        MAIL_PORT=int(os.environ.get("MAIL_PORT", "25")),
        MAIL_USE_TLS=_env_flag("MAIL_USE_TLS", False),
        MAIL_USE_SSL=_env_flag("MAIL_USE_SSL", False),
        MAIL_USERNAME=os.environ.get("MAIL_USERNAME", ""),
        MAIL_PASSWORD=os.environ.get("MAIL_PASSWORD", ""),
        MAIL_FROM=os.environ.get("MAIL_FROM", "Therapist Directory <directory@localhost>"),
        MAIL_RETRY_WAITS=tuple(int(wait) for wait in os.environ.get("MAIL_RETRY_WAITS", "60,300,1800").split(",")),
        CONFIRMATION_INTERVAL_DAYS=int(os.environ.get("CONFIRMATION_INTERVAL_DAYS", "30")),
        CONFIRMATION_LEAD_DAYS=int(os.environ.get("CONFIRMATION_LEAD_DAYS", "14")),
        CONFIRMATION_LINK_DAYS=int(os.environ.get("CONFIRMATION_LINK_DAYS", "14")),
        LINK_RATE_LIMIT=os.environ.get("LINK_RATE_LIMIT", "60 per hour"),
        LINK_LISTING_RATE_LIMIT=os.environ.get("LINK_LISTING_RATE_LIMIT", "30 per hour"),
        # Map tiles under the results, only when both are set (`https://host/{z}/{x}/{y}.png` and its credit line):
        # each tile request tells that host where the searcher is looking, so none is made by default.
        MAP_TILE_URL=os.environ.get("MAP_TILE_URL", ""),
        MAP_ATTRIBUTION=os.environ.get("MAP_ATTRIBUTION", ""),
    )
    if test_config:
        app.config.update(test_config)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or _secret_key(app)
    # Rate limits are counted where the jobs are: shared by every worker and node (memory:// counts per process).
    # While that Redis is down they are counted in memory, rather than every limited request failing.
    app.config["RATELIMIT_STORAGE_URI"] = (app.config["RATELIMIT_STORAGE_URI"] or app.config["REDIS_URL"]
                                           or "memory://")
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)

    from directory import cli, db, migrate
    from directory.places import places
    from directory.search import sync
    from directory.web import (admin, admin_freshness, api, confirm, errors, health, match, public, security,
                               shortlist, storable_input)

    places.use(Path(app.config["PLACES_DIR"]))  # built on a fresh instance (6 s), then only opened
    db.init_app(app)
    if app.config["AUTO_MIGRATE"]:
        migrate.upgrade_at_start(db.engine(app))
    schema_ready = migrate.current(db.engine(app)) == migrate.HEAD
    if not schema_ready:
        # Only with AUTO_MIGRATE off: the app still starts, so that `flask db upgrade` can run.
        log.error("the database schema is behind this code: run `flask --app app db upgrade`")
    storable_input.init_app(app)
    security.init_app(app)
    index = sync.open_index(app.config["INDEX_DIR"], app.config["INDEX_LOCK_TIMEOUT"], db.factory(app))
    app.extensions["search"] = index
    cli.init_app(app)
    errors.init_app(app)
    app.register_blueprint(public.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(admin_freshness.bp)
    app.register_blueprint(confirm.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(shortlist.bp)
    app.register_blueprint(match.bp)
    if schema_ready:
        # On a fresh instance the sample is loaded by the process that builds the first index, while the others
        # wait: none of them serves before the index holds the sample.
        sync.build_if_missing(db.factory(app), index, then=lambda: _load_sample(app))
        _load_sample(app)
        if serving():
            _follow_changes(app)
            if app.config["TICK_SECONDS"] > 0:
                from directory.periodic import Ticker

                app.extensions["ticker"] = Ticker(app, app.config["TICK_SECONDS"])
                app.extensions["ticker"].start()
    return app
