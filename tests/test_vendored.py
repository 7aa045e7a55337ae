"""The vendored front-end files are the pinned npm package's, byte for byte (`make test` installs it), so that
what `make run` and production serve cannot drift from what package-lock.json pins."""

from __future__ import annotations

import json

from helpers import REPO

VENDORED = REPO / "static" / "vendor" / "leaflet"
PACKAGE = REPO / "node_modules" / "leaflet"


def test_leaflet_is_the_pinned_package_with_its_licence() -> None:
    pinned = json.loads((REPO / "package.json").read_text())["dependencies"]["leaflet"]
    assert json.loads((PACKAGE / "package.json").read_text())["version"] == pinned
    pairs = [(VENDORED / "LICENSE", PACKAGE / "LICENSE")] + [
        (VENDORED / path.relative_to(PACKAGE / "dist"), path) for path in
        [PACKAGE / "dist" / "leaflet.js", PACKAGE / "dist" / "leaflet.css", *(PACKAGE / "dist" / "images").glob("*")]]
    assert len(pairs) == 8
    for vendored, packaged in pairs:
        assert vendored.read_bytes() == packaged.read_bytes(), vendored
