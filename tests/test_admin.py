"""The admin area: access control, CSRF, redirects, rate limit, headers, listing management, web imports."""

from __future__ import annotations

import html
import io
import re
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from directory import accounts
from directory.imports.lock import ImportBusy, import_lock
from directory.models import AdminUser, AuditEvent, Listing
from directory.search.index.storage import PARALLEL_BATCH
from helpers import (
    ADMIN_EMAIL, ADMIN_PASSWORD, GOOD, confirm, copy_world, csrf_token, held_in_thread, make_csv, upload, wait_for_run,
    world_app,
)


def test_every_admin_endpoint_refuses_anonymous_requests(app: Flask) -> None:
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or rule.endpoint in ("admin.login", "admin.logout"):
            continue
        url = rule.build({arg: (1 if arg.endswith("_id") else "0" * 64) for arg in rule.arguments})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            # GETs go to the login page; POSTs without a session fail CSRF (400) before reaching the view.
            assert response.status_code in (302, 400), (rule, method, response.status_code)
            if response.status_code == 302:
                assert "/admin/login" in response.headers["Location"]
            checked += 1
    assert checked >= 15


def test_anonymous_posts_with_a_valid_token_are_still_refused(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/listings/1/publish", data={"csrf_token": token, "published": "0"})
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_cli_creates_lists_and_changes_admins(runner: FlaskCliRunner, session: Session) -> None:
    result = runner.invoke(args=["admin", "create", "Boss@Example.org", "--password-stdin"],
                           input="a long enough secret\n")
    assert result.exit_code == 0, result.output
    admin = session.scalar(select(AdminUser))
    assert admin.email == "boss@example.org" and admin.password_hash.startswith("scrypt:")
    assert runner.invoke(args=["admin", "create", "boss@example.org", "--password-stdin"],
                         input="another long one\n").exit_code == 1
    assert runner.invoke(args=["admin", "create", "x@example.org", "--password-stdin"], input="short\n").exit_code == 1
    assert "boss@example.org" in runner.invoke(args=["admin", "list"]).output
    assert runner.invoke(args=["admin", "set-password", "boss@example.org", "--password-stdin"],
                         input="a brand new secret\n").exit_code == 0
    session.expire_all()
    assert accounts.authenticate(session, "BOSS@example.org", "a brand new secret") is not None
    assert accounts.authenticate(session, "boss@example.org", "a long enough secret") is None


def test_login_needs_csrf_and_the_right_password(app: Flask, session: Session) -> None:
    accounts.create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    client = app.test_client()
    assert client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).status_code == 400
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    wrong = client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.get_data(as_text=True)
    right = client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
    assert right.status_code == 302 and right.headers["Location"] == "/admin/"
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get("/admin/").status_code == 200
    session.expire_all()
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "login")).actor == ADMIN_EMAIL


def test_session_cookie_is_secure_over_https(app: Flask, session: Session) -> None:
    accounts.create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    client = app.test_client()
    token = csrf_token(client.get("/admin/login", base_url="https://localhost").get_data(as_text=True))
    # Over HTTPS, Flask-WTF also checks the Referer is this site, as browsers send it.
    response = client.post("/admin/login", base_url="https://localhost", headers={"Referer": "https://localhost/admin/login"},
                           data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302 and "Secure" in response.headers["Set-Cookie"]


def test_login_clears_a_planted_session(app: Flask, session: Session) -> None:
    accounts.create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    client = app.test_client()
    with client.session_transaction() as planted:
        planted["planted"] = "by an attacker"
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
    with client.session_transaction() as current:
        assert "planted" not in current and current["admin"] == ADMIN_EMAIL


@pytest.mark.parametrize("target, expected", [
    ("/admin/listings?q=x", "/admin/listings?q=x"),
    ("//evil.example", "/admin/"),
    ("/\\evil.example", "/admin/"),
    ("https://evil.example/admin", "/admin/"),
    ("javascript:alert(1)", "/admin/"),
    ("/admin/\r\nSet-Cookie: x=1", "/admin/"),
])
def test_next_redirect_accepts_only_local_paths(app: Flask, session: Session, target: str, expected: str) -> None:
    accounts.create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/login", data={
        "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token, "next": target})
    assert response.headers["Location"] == expected


def test_brute_force_login_gets_429(app: Flask, session: Session) -> None:
    accounts.create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    statuses = [client.post("/admin/login",
                            data={"email": ADMIN_EMAIL, "password": f"guess {i}", "csrf_token": token}).status_code
                for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    assert client.get("/admin/login").status_code == 200  # only attempts are limited


def test_rate_limit_state_lives_in_the_jobs_redis(sample_world: Path, tmp_path: Path, session: Session) -> None:
    import redis

    connection = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    connection.flushdb()
    copy_world(sample_world, tmp_path / "world")
    with world_app(tmp_path / "world", REDIS_URL="redis://127.0.0.1:6379/15",
                   LOGIN_RATE_LIMIT="3 per minute") as redis_app:
        assert redis_app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/15"
        client = redis_app.test_client()
        token = csrf_token(client.get("/admin/login").get_data(as_text=True))
        statuses = [client.post("/admin/login", data={"email": "x@example.org", "password": "y", "csrf_token": token})
                    .status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert any(b"LIMITS" in key or b"limit" in key.lower() for key in connection.keys("*"))
    connection.flushdb()


def test_security_headers_on_every_response(shared_client: FlaskClient) -> None:
    for path in ("/", "/api/v1/search?postcode=10001", "/admin/login", "/nope", "/static/style.css"):
        with shared_client.get(path) as response:
            headers = response.headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"]
    # Scripts come only from files of this origin (the CSP forbids inline ones), and the page needs none of them.
    tags = re.findall(r"<script[^>]*>", shared_client.get("/").get_data(as_text=True))
    assert all(re.fullmatch(r'<script src="/static/[\w.]+\.js" defer>', tag) for tag in tags), tags


def test_oversized_upload_gets_a_friendly_413(sample_world: Path, tmp_path: Path, session: Session) -> None:
    copy_world(sample_world, tmp_path / "world")
    with world_app(tmp_path / "world", MAX_CONTENT_LENGTH=10_000, WTF_CSRF_ENABLED=False) as small:
        client = small.test_client()
        with client.session_transaction() as s:
            s["admin"] = "someone@example.org"
        response = client.post("/admin/import", data={"file": (io.BytesIO(b"x" * 20_000), "big.csv")})
    assert response.status_code == 413
    assert "larger than the" in response.get_data(as_text=True) and "988" in response.get_data(as_text=True)


def test_web_import_preview_errors_csv_confirm_and_search(admin_client: FlaskClient, session: Session) -> None:
    rows = [{**GOOD, "external_id": "web-1", "name": "Webb Goodrow"},
            {**GOOD, "external_id": "web-2", "postcode": "00000"}]
    preview = upload(admin_client, make_csv(rows), skip_invalid="1")
    assert "rejected-count" in preview, preview[preview.find("<main"):][:1500]
    assert "<strong id=\"rejected-count\">1</strong>" in preview and "ZIP code 00000" in preview
    errors_link = re.search(r'href="(/admin/import/[0-9a-f]{64}/errors\.csv)"', preview).group(1)
    errors = admin_client.get(errors_link)
    assert (errors.status_code == 200 and "web-2" in errors.get_data(as_text=True)
            and "errors" in errors.get_data(as_text=True))
    assert session.scalar(select(Listing).where(Listing.external_id == "web-1")) is None  # preview wrote nothing
    run = wait_for_run(session, confirm(admin_client, preview))
    assert (run.status, run.created, run.rejected, run.actor) == ("done", 1, 1, ADMIN_EMAIL)
    page = admin_client.get(f"/admin/imports/{run.id}").get_data(as_text=True)
    assert "done" in page and f"/admin/imports/{run.id}/errors.csv" in page
    body = admin_client.get("/api/v1/search", query_string={"q": "Goodrow"}).get_json()
    assert [r["id"] for r in body["results"]] == ["web-1"]
    assert "list.csv" in admin_client.get("/admin/imports").get_data(as_text=True)


def test_a_big_web_import_indexes_in_workers_while_searches_run(admin_client: FlaskClient, app: Flask, session: Session,
                                                               runner: FlaskCliRunner) -> None:
    # Enough rows for the parallel index writer, started from the web's background thread while another thread
    # searches: the situation in which forked index writers used to hang.
    count = PARALLEL_BATCH + 500
    rows = [{**GOOD, "external_id": f"big-{n}", "name": f"Bulkington {n}"} for n in range(count)]
    stop = threading.Event()
    failures: list[int] = []

    def search_loop() -> None:
        client = app.test_client()
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            status = client.get("/api/v1/search", query_string={"postcode": "10001", "q": "couples"}).status_code
            if status != 200:
                failures.append(status)

    searcher = threading.Thread(target=search_loop)
    searcher.start()
    try:
        run = wait_for_run(session, confirm(admin_client, upload(admin_client, make_csv(rows))), seconds=240)
    finally:
        stop.set()
        searcher.join()
    assert (run.status, run.created) == ("done", count) and not failures
    assert admin_client.get("/api/v1/search", query_string={"q": "Bulkington"}).get_json()["total"] == count
    assert runner.invoke(args=["index", "check"]).exit_code == 0


def test_strict_preview_offers_no_confirm_button(admin_client: FlaskClient) -> None:
    preview = upload(admin_client, make_csv([{**GOOD, "postcode": "bad"}]))
    assert "Nothing can be imported in strict mode" in preview and "/admin/import/confirm" not in preview


def test_replace_preview_shows_how_many_will_be_unpublished(admin_client: FlaskClient, session: Session) -> None:
    published = len(session.scalars(select(Listing.id).where(Listing.published)).all())
    preview = upload(admin_client, make_csv([GOOD]), replace="1")
    assert f"<strong>{published}</strong> to unpublish" in preview


def test_a_second_import_while_one_runs_gets_409(admin_client: FlaskClient, app: Flask, runner: FlaskCliRunner,
                                                 tmp_path: Path) -> None:
    with held_in_thread(import_lock(app).held("someone@example.org")):
        response = admin_client.post("/admin/import", data={
            "csrf_token": csrf_token(admin_client.get("/admin/import").get_data(as_text=True)),
            "file": (io.BytesIO(make_csv([GOOD]).encode()), "x.csv")}, content_type="multipart/form-data")
        assert response.status_code == 409
        assert "An import is running (started by someone@example.org at" in response.get_data(as_text=True)
        path = tmp_path / "x.csv"
        path.write_text(make_csv([GOOD]))
        result = runner.invoke(args=["import-csv", str(path)])
        assert result.exit_code == 1 and "An import is running (started by someone@example.org" in result.output
        with pytest.raises(ImportBusy):
            with import_lock(app).held("third"):
                pass


def edit_form(page: str) -> dict[str, str | list[str]]:
    """What a browser sends from an untouched edit form: its text inputs, textareas (the newline after the tag
    dropped), ticked boxes and chosen options, unescaped."""
    form: dict[str, str | list[str]] = {}
    for name, value in re.findall(r'<input id="f-\w+" name="(\w+)" value="([^"]*)"', page):
        form[name] = html.unescape(value)
    for name, value in re.findall(r'<textarea id="f-\w+" name="(\w+)" rows="\d+">\n?(.*?)</textarea>', page, re.S):
        form[name] = html.unescape(value)
    for name, value in re.findall(r'<input type="checkbox" id="f-[\w-]+" name="(\w+)" value="([^"]*)" checked>', page):
        form.setdefault(name, [])
        form[name].append(html.unescape(value))  # type: ignore[union-attr]
    for name, options in re.findall(r'<select id="f-\w+" name="(\w+)"[^>]*>(.*?)</select>', page, re.S):
        form[name] = html.unescape(re.search(r'<option value="([^"]*)" selected>', options).group(1))
    form["csrf_token"] = csrf_token(page)
    return form


def test_edit_publish_unpublish_delete_show_in_search_at_once(admin_client: FlaskClient, session: Session) -> None:
    listing = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id)).first()
    listing_id = listing.id
    edit_page = admin_client.get(f"/admin/listings/{listing.id}/edit").get_data(as_text=True)
    form = edit_form(edit_page)
    form["bio"] = "Now offering walk-and-talk sessions by the river."
    form["name"] = "Renamed Quokkaworth"
    bad = admin_client.post(f"/admin/listings/{listing.id}/edit", data={**form, "email": "nope", "fee_min": "x"})
    assert bad.status_code == 400 and "is not an email address" in bad.get_data(as_text=True)
    assert admin_client.post(f"/admin/listings/{listing.id}/edit", data=form).status_code == 302
    search = lambda: admin_client.get("/api/v1/search", query_string={"q": "Quokkaworth"}).get_json()["total"]  # noqa: E731
    assert search() == 1
    token = csrf_token(admin_client.get("/admin/listings").get_data(as_text=True))
    admin_client.post(f"/admin/listings/{listing.id}/publish", data={"csrf_token": token, "published": "0"})
    assert search() == 0
    admin_client.post(f"/admin/listings/{listing.id}/publish", data={"csrf_token": token, "published": "1"})
    assert search() == 1
    confirm_page = admin_client.get(f"/admin/listings/{listing.id}/delete").get_data(as_text=True)
    assert "Delete Renamed Quokkaworth?" in confirm_page
    admin_client.post(f"/admin/listings/{listing.id}/delete", data={"csrf_token": csrf_token(confirm_page)})
    assert search() == 0
    session.expire_all()
    assert session.get(Listing, listing_id) is None
    actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-4:] == ["edit", "unpublish", "publish", "delete"]
    assert "Quokkaworth" in admin_client.get("/admin/audit").get_data(as_text=True)


def test_saving_an_untouched_edit_form_changes_nothing(admin_client: FlaskClient, session: Session) -> None:
    picks = [select(Listing).order_by(Listing.id).limit(20), select(Listing).where(~Listing.published).limit(5),
             select(Listing).where(Listing.latitude.is_not(None)).limit(5)]
    columns = [column.key for column in Listing.__table__.columns]
    before = {listing.id: [getattr(listing, column) for column in columns]
              for query in picks for listing in session.scalars(query)}
    for listing_id in before:
        page = admin_client.get(f"/admin/listings/{listing_id}/edit").get_data(as_text=True)
        form = edit_form(page)
        assert admin_client.post(f"/admin/listings/{listing_id}/edit", data=form).status_code == 302
    session.expire_all()
    assert {pk: [getattr(session.get(Listing, pk), column) for column in columns] for pk in before} == before


def test_listing_search_stale_view_export_and_template(admin_client: FlaskClient, session: Session) -> None:
    unpublished = session.scalars(select(Listing).where(~Listing.published)).first()
    page = admin_client.get("/admin/listings", query_string={"status": "unpublished", "q": unpublished.external_id})
    assert unpublished.name in page.get_data(as_text=True)
    stale = admin_client.get("/admin/stale", query_string={"days": 100}).get_data(as_text=True)
    old = session.scalars(select(Listing).where(Listing.published).order_by(Listing.availability_confirmed_on)).first()
    assert old.external_id in stale
    export = admin_client.get("/admin/export.csv")
    text = export.get_data(as_text=True)
    assert export.mimetype == "text/csv" and text.startswith("external_id,name,")
    assert len(text.strip().splitlines()) >= 2001
    template = admin_client.get("/admin/import/template.csv").get_data(as_text=True)
    assert template.startswith("external_id,name,") and "EFT" in template


def test_the_edit_form_ticks_who_they_see_and_communities_and_keeps_a_gender_as_written(
        admin_client: FlaskClient, session: Session) -> None:
    listing = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id)).first()
    listing.ages, listing.client_types, listing.communities = ["adults"], [], []
    listing.gender, listing.gender_unmapped = "", "Two-Spirit"
    session.commit()
    url = f"/admin/listings/{listing.id}/edit"
    page = admin_client.get(url).get_data(as_text=True)
    assert '<option value="Two-Spirit" selected>Two-Spirit (as written)</option>' in page
    form = edit_form(page)
    assert form["ages"] == ["adults"] and "client_types" not in form and form["gender"] == "Two-Spirit"
    assert admin_client.post(url, data=form).status_code == 302
    session.expire_all()
    assert (listing.gender, listing.gender_unmapped) == ("", "Two-Spirit")  # saved untouched, kept as written

    form = edit_form(admin_client.get(url).get_data(as_text=True))
    # A browser sends ticked boxes in the form's order, the vocabulary's.
    form.update(ages=["teens", "adults"], client_types=["couples"], communities=["lgbtq-affirming", "faith-jewish"],
                gender="woman")
    assert admin_client.post(url, data=form).status_code == 302
    session.expire_all()
    # What was stored keeps its place; what was ticked is added after it.
    assert (listing.ages, listing.client_types, listing.communities) == (
        ["adults", "teens"], ["couples"], ["lgbtq-affirming", "faith-jewish"])
    assert (listing.gender, listing.gender_unmapped) == ("woman", "")
    answer = admin_client.get(f"/api/v1/therapists/{listing.external_id}").get_json()
    assert {key: answer[key] for key in ("ages", "client_types", "communities", "gender", "gender_unmapped")} == {
        "ages": ["adults", "teens"], "client_types": ["couples"], "communities": ["lgbtq-affirming", "faith-jewish"],
        "gender": "woman", "gender_unmapped": ""}
    search = admin_client.get("/api/v1/search", query_string={
        "q": listing.name, "gender": "woman", "community": "faith-jewish", "client_type": "couples"}).get_json()
    assert listing.external_id in [result["id"] for result in search["results"]]

    # The same rules as an import: a value that names no term is refused, and nothing is saved.
    bad = admin_client.post(url, data={**form, "ages": "nonsense-age", "name": "Not Saved"})
    assert bad.status_code == 400 and 'id="e-ages"' in bad.get_data(as_text=True)
    session.expire_all()
    assert listing.name != "Not Saved" and listing.ages == ["adults", "teens"]


def test_the_stale_view_lists_genders_that_name_no_term_with_a_link_to_edit_them(
        admin_client: FlaskClient, session: Session) -> None:
    marked = session.scalars(select(Listing).order_by(Listing.id).limit(2)).all()
    marked[0].gender, marked[0].gender_unmapped = "", "Two-Spirit"
    marked[1].published, marked[1].gender, marked[1].gender_unmapped = False, "", "Genderqueer & proud"
    session.commit()
    page = admin_client.get("/admin/stale").get_data(as_text=True)
    section = page.split('id="unmapped-genders"', 1)[1]
    expected = session.scalar(select(func.count()).where(Listing.gender_unmapped != ""))
    assert re.search(rf"Genders that name no term \({expected}\)", section)
    rows = re.findall(r'<td><a href="/admin/listings/(\d+)/edit">[^<]*</a></td><td>([^<]*)</td>\s*<td>([^<]*)</td>',
                      section)
    assert (str(marked[0].id), marked[0].external_id, "Two-Spirit") in rows
    assert (str(marked[1].id), marked[1].external_id, "Genderqueer &amp; proud") in rows  # unpublished too
    assert len(rows) == expected
