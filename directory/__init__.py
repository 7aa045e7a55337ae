"""Therapist directory search service: the application factory."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration from the environment (or test_config), database, index, blueprints."""
    app = Flask(
        __name__,
        instance_path=os.environ.get("INSTANCE_PATH", str(REPO_ROOT / "instance")),
        template_folder=str(REPO_ROOT / "templates"),
        static_folder=str(REPO_ROOT / "static"),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_hex(32),
        DATABASE_URL=os.environ.get("DATABASE_URL") or f"sqlite:///{Path(app.instance_path) / 'directory.sqlite3'}",
        INDEX_DIR=os.environ.get("INDEX_DIR") or str(REPO_ROOT / "indexes"),
        LOAD_SAMPLE_DATA=_env_flag("LOAD_SAMPLE_DATA", True),
        SAMPLE_SIZE=int(os.environ.get("SAMPLE_SIZE", "2000")),
        INDEX_LOCK_TIMEOUT=float(os.environ.get("INDEX_LOCK_TIMEOUT", "30")),
    )
    if test_config:
        app.config.update(test_config)

    from directory import cli, db, sample, search
    from directory.web import api, errors, public

    db.init_app(app)
    search.init_app(app)
    cli.init_app(app)
    errors.init_app(app)
    app.register_blueprint(public.bp)
    app.register_blueprint(api.bp)
    search.build_if_missing(app)
    if app.config["LOAD_SAMPLE_DATA"]:
        sample.load_if_empty(app.extensions["db"], app.config["SAMPLE_SIZE"])
    return app
