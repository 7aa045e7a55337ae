"""Input no database can store or compare (NUL characters, ids beyond PostgreSQL's integer) is refused at the edge
with a 400 or 404 on both databases, never a 500; a CSV with a NUL byte anywhere is refused before anything."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from directory.imports.csv_reading import UnusableFile
from helpers import GOOD, csrf_token, do_import, make_csv


@pytest.mark.parametrize("path", ["/api/v1/therapists/x%00", "/api/v1/therapists/%00", "/therapists/x%00",
                                  "/therapists/%00abc"])
def test_a_nul_in_the_path_is_not_found(shared_client: FlaskClient, path: str) -> None:
    response = shared_client.get(path)
    assert response.status_code == 404
    if path.startswith("/api/"):
        assert response.get_json()["error"] == "not_found"


def test_a_nul_in_any_other_parameter_is_a_bad_request(shared_client: FlaskClient) -> None:
    # The search's own parameters never reach a database (test_hostile_input covers them); everything else may.
    api = shared_client.get("/api/v1/vocabulary?x=a%00b")
    assert api.status_code == 400 and api.get_json()["error"] == "invalid_parameter"
    assert "NUL" in api.get_json()["message"]
    page = shared_client.get("/admin/login?next=%00")
    assert page.status_code == 400 and "NUL" in page.get_data(as_text=True)


def test_a_nul_in_the_admin_search_and_the_login_form_is_a_bad_request(admin_client: FlaskClient,
                                                                        app: Flask) -> None:
    assert admin_client.get("/admin/listings?q=ab%00c").status_code == 400
    anonymous = app.test_client()
    token = csrf_token(anonymous.get("/admin/login").get_data(as_text=True))
    response = anonymous.post("/admin/login", data={"email": "a\x00@example.org", "password": "x", "csrf_token": token})
    assert response.status_code == 400 and "NUL" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/admin/imports/99999999999", "/admin/imports/2147483648",
                                  "/admin/imports/2147483647", "/admin/listings/99999999999/edit",
                                  "/admin/listings/2147483648/edit", "/admin/imports/0",
                                  "/admin/imports/99999999999/errors.csv"])
def test_ids_beyond_the_integer_range_are_not_found(admin_client: FlaskClient, path: str) -> None:
    assert admin_client.get(path).status_code == 404


def test_huge_ids_in_posts_are_not_found(admin_client: FlaskClient) -> None:
    page = admin_client.get("/admin/listings").get_data(as_text=True)
    for path in ("/admin/listings/99999999999/publish", "/admin/listings/99999999999/delete"):
        assert admin_client.post(path, data={"csrf_token": csrf_token(page), "published": "1"}).status_code == 404


def _nul_after(prefix_bytes: int) -> bytes:
    rows = [{**GOOD, "external_id": f"n{i}", "bio": "Steady, warm, practical. " * 4} for i in range(200)]
    data = make_csv(rows).encode("utf-8")
    assert len(data) > prefix_bytes + 100
    return data[:prefix_bytes] + b"\x00" + data[prefix_bytes:]


def test_a_csv_with_a_nul_past_its_first_4_kb_is_unusable_at_once(app: Flask, runner: FlaskCliRunner,
                                                                  tmp_path: Path) -> None:
    data = _nul_after(20_000)
    with pytest.raises(UnusableFile, match="binary"):
        do_import(app, data, dry_run=True)
    path = tmp_path / "nul.csv"
    path.write_bytes(data)
    result = runner.invoke(args=["import-csv", str(path)])
    assert result.exit_code == 2 and "binary" in result.output and "byte 20,001" in result.output


def test_the_web_preview_refuses_a_csv_with_a_late_nul(admin_client: FlaskClient) -> None:
    token = csrf_token(admin_client.get("/admin/import").get_data(as_text=True))
    response = admin_client.post("/admin/import", data={
        "csrf_token": token, "mode": "strict", "file": (io.BytesIO(_nul_after(9_000)), "late-nul.csv")})
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and "binary" in body
    assert "Confirm" not in body
