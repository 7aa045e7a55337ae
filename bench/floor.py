"""The floor (issue 33): the project's own search answers replayed from memory by a trivial app under the same
server, so that what is left of a request's time besides the search (HTTP, gunicorn, Flask, the client) is measured
on its own.

    FLOOR_FILE=answers.json gunicorn -w 1 bench.floor:app

FLOOR_FILE is a JSON object from a request's path and query string ("/api/v1/search?postcode=11201") to the
project's exact response body; any other request is a 404.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import Flask, Response, abort, request


def answers(path: Path) -> dict[str, bytes]:
    """The recorded bodies of a floor file, encoded once, by path and query string."""
    return {key: body.encode("utf-8") for key, body in json.loads(path.read_text(encoding="utf-8")).items()}


app = Flask(__name__)
# Read at import, in the gunicorn master or worker alike: a request only looks up bytes.
ANSWERS = answers(Path(os.environ["FLOOR_FILE"])) if os.environ.get("FLOOR_FILE") else {}


@app.get("/<path:path>")
def replay(path: str) -> Response:
    """The recorded body for this path and query string, as JSON.

    :raise 404: when the request was not recorded.
    """
    body = ANSWERS.get(f"/{path}?{request.query_string.decode('latin-1')}")
    if body is None:
        abort(404)
    return Response(body, mimetype="application/json")
