"""Web security in one place: CSRF, login rate limit, security headers, cookies, admin sign-in checks."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import limits
from flask import Flask, Response, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from directory import accounts, db

csrf = CSRFProtect()
limiter = Limiter(get_remote_address, default_limits=[])

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class _SessionInterface(SecureCookieSessionInterface):
    """Marks the session cookie Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(super().get_cookie_secure(app) or request.is_secure)


def tile_source(url: str) -> str:
    """The Content-Security-Policy source of a tile URL template: its scheme and host (a `{s}.` subdomain pattern
    as `*.`).

    :raise ValueError: when it is not an http(s) URL of a plain host, which could not go into the policy safely.
    """
    parts = urlsplit(url)
    host = parts.netloc.replace("{s}.", "*.")
    if parts.scheme not in ("https", "http") or not re.fullmatch(r"(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?", host) \
            or re.search(r"[\s;,'\"]", url):
        raise ValueError(f"MAP_TILE_URL must be an http(s) URL template of a plain host, like "
                         f"https://tiles.example.org/{{z}}/{{x}}/{{y}}.png; got {url[:200]!r}")
    return f"{parts.scheme}://{host}"


def map_tiles() -> dict[str, str] | None:
    """The map tile server the results page may load tiles from (`url`, `attribution`, and its CSP `source`), or
    None: only when both MAP_TILE_URL and MAP_ATTRIBUTION are set."""
    url, attribution = current_app.config["MAP_TILE_URL"], current_app.config["MAP_ATTRIBUTION"]
    if not (url and attribution):
        return None
    return {"url": url, "attribution": attribution, "source": tile_source(url)}


def _headers(response: Response) -> Response:
    tiles = map_tiles()
    # Widened to the tile server alone, for images, when one is configured; by default the page asks no other host.
    policy = CONTENT_SECURITY_POLICY.replace("img-src 'self' data:", f"img-src 'self' data: {tiles['source']}") \
        if tiles else CONTENT_SECURITY_POLICY
    response.headers.setdefault("Content-Security-Policy", policy)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    return response


def safe_next(target: str | None, default: str) -> str:
    """A post-login redirect target: a local path only; anything else (//evil, /\\evil, https://evil) → default."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return default
    return target


def sign_in(email: str, version: int) -> None:
    """Start a fresh session for an admin (nothing planted before it survives)."""
    session.clear()
    session["admin"] = email
    session["admin_version"] = version


def limits_in_database() -> bool:
    """Whether sign-in attempts are counted in the database: when the limiter has no storage shared by every
    worker (memory:// counts per worker: 4 workers let 4 times the limit through)."""
    return current_app.config["RATELIMIT_STORAGE_URI"].startswith("memory://")


def sign_in_blocked() -> bool:
    """Whether this client used up its wrong passwords (counted in the database; see limits_in_database)."""
    item = limits.parse(current_app.config["LOGIN_RATE_LIMIT"])
    return accounts.recent_failures(db.session(), get_remote_address(), item.get_expiry()) >= item.amount


def sign_in_failed() -> None:
    """Count a wrong password of this client in the database."""
    item = limits.parse(current_app.config["LOGIN_RATE_LIMIT"])
    accounts.record_failure(db.session(), get_remote_address(), item.get_expiry())


def current_admin() -> str | None:
    """The signed-in admin's email, or None; a session from before the account signed out (anywhere) or changed
    its password is None too."""
    email = session.get("admin")
    if email is None:
        return None
    if "admin_version" not in g:
        g.admin_version = accounts.signed_in_version(db.session(), email)
    return email if g.admin_version is not None and g.admin_version == session.get("admin_version") else None


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send anonymous visitors to the login page, then back here."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_admin() is None:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


def init_app(app: Flask) -> None:
    """Bind CSRF protection and the rate limiter, and add the headers and cookie rules."""
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.session_interface = _SessionInterface()
    csrf.init_app(app)
    limiter.init_app(app)
    app.after_request(_headers)
    if app.config["MAP_TILE_URL"]:
        tile_source(app.config["MAP_TILE_URL"])  # refused at start, not on every page
