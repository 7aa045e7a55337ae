"""The signed links of a confirmation request: each names the request, its listing and one answer, signed with the
app's secret. The signature only proves the link was made here; whether it still works (not expired, not used, the
listing unchanged since) is decided from the request's row, on the app's clock."""

from __future__ import annotations

from flask import Flask
from itsdangerous import BadData, URLSafeSerializer

ACTIONS = ("accepting", "not-accepting", "unsubscribe")
_SALT = "listing-confirmation-link"  # a link can never pass for another signed value of the app
PATH = "/listing-check/"
ONE_CLICK_PATH = "/unsubscribe/"  # the List-Unsubscribe address mail clients POST to


def sign(app: Flask, request_id: int, listing_id: int, action: str) -> str:
    """The token of a link answering `action` to request `request_id` about listing `listing_id`."""
    return URLSafeSerializer(app.config["SECRET_KEY"], salt=_SALT).dumps([request_id, listing_id, action])


def read(app: Flask, token: str) -> tuple[int, int, str] | None:
    """What a token says (request id, listing id, action), or None when it was not signed here as it stands."""
    try:
        payload = URLSafeSerializer(app.config["SECRET_KEY"], salt=_SALT).loads(token[:500])
    except BadData:
        return None
    match payload:
        case [int(request_id), int(listing_id), str(action)] if action in ACTIONS:
            return request_id, listing_id, action
    return None


def url(app: Flask, token: str, path: str = PATH) -> str:
    """The absolute address of a link, from PUBLIC_BASE_URL (a job has no request to take a host from)."""
    return app.config["PUBLIC_BASE_URL"].rstrip("/") + path + token
