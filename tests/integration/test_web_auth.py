"""Admin UI sign-in over real HTTP (TestClient), on SQLite and PostgreSQL: sessions in signed
cookies, CSRF on every form, expiry, logout revoking every session, login throttling."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tidings.app import create_app
from tidings.core.clock import FrozenClock
from tidings.core.settings import Settings
from tidings.testing import Credentials
from tidings.web.sessions import COOKIE

EMAIL, PASSWORD = "ada@example.com", "correct horse battery"


@pytest.fixture
def web_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data", pipeline_in_process=False)


@pytest.fixture
def ui(web_settings: Settings, creds: Credentials, clock: FrozenClock) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings, clock)) as client:
        client.app.state.container.web.users.create(EMAIL, PASSWORD)  # type: ignore[attr-defined]
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login(client: TestClient, email: str = EMAIL, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(client.get("/admin/login").text)
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": token, "next": "/admin"},
        follow_redirects=False,
    )


def signed_in(client: TestClient) -> str:
    """Sign in; the CSRF token of the signed-in session."""
    r = login(client)
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/admin/sources").text)


def test_pages_need_a_session_and_come_back_after_sign_in(ui: TestClient) -> None:
    r = ui.get("/admin/profiles?q=x", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/admin/login?next=/admin/profiles%3Fq%3Dx"
    # What scripts fetch answers 401 JSON, not a redirect to a form.
    r = ui.get("/admin/sources/src_x/stream")
    assert r.status_code == 401
    assert r.json()["code"] == "login_required"

    page = ui.get("/admin/login?next=/admin/catalog")
    assert page.status_code == 200
    token = csrf_of(page.text)
    r = ui.post(
        "/admin/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token, "next": "/admin/catalog"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/admin/catalog"
    assert ui.get("/admin/catalog").status_code == 200


def test_the_session_cookie_is_httponly_lax_and_scoped(ui: TestClient) -> None:
    r = login(ui)
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/admin" in cookie
    assert "Max-Age=43200" in cookie  # 12 hours
    assert "Secure" not in cookie  # served over http here
    assert r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_cookies_are_secure_when_the_public_url_is_https(
    db_url: str, tmp_path: Path, creds: Credentials, clock: FrozenClock
) -> None:
    settings = Settings(
        database_url=db_url,
        data_dir=tmp_path / "data",
        pipeline_in_process=False,
        public_url="https://cdp.example.com",
    )
    with TestClient(create_app(settings, clock), base_url="https://testserver") as client:
        r = client.get("/admin/login")
        assert "Secure" in r.headers["set-cookie"]


def test_wrong_password_and_unknown_email_get_the_same_generic_answer(ui: TestClient) -> None:
    wrong = login(ui, password="not the password")
    unknown = login(ui, email="nobody@example.com")
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert "Wrong email or password." in r.text
        assert 'role="alert"' in r.text
    assert ui.get("/admin", follow_redirects=False).status_code == 303


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(ui: TestClient) -> None:
    ui.get("/admin/login")  # a session cookie with a token
    r = ui.post("/admin/login", data={"email": EMAIL, "password": PASSWORD})
    assert r.status_code == 403
    assert "This form has expired" in r.text
    r = ui.post("/admin/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": "guess"})
    assert r.status_code == 403

    token = signed_in(ui)
    before = len(ui.app.state.container.sources.list())  # type: ignore[attr-defined]
    assert ui.post("/admin/sources", data={"name": "Sneaky"}).status_code == 403
    # The token of the anonymous session before sign-in no longer works either.
    assert ui.post("/admin/sources", data={"name": "Sneaky", "csrf_token": "x"}).status_code == 403
    assert len(ui.app.state.container.sources.list()) == before  # type: ignore[attr-defined]
    r = ui.post("/admin/sources", data={"name": "Allowed", "csrf_token": token})
    assert r.status_code == 201


def test_a_forged_or_tampered_cookie_is_not_a_session(ui: TestClient) -> None:
    login(ui)
    value = ui.cookies[COOKIE]
    ui.cookies.clear()
    flipped = "A" if value[-6] != "A" else "B"  # inside the signature, not its padding bits
    ui.cookies.set(COOKIE, value[:-6] + flipped + value[-5:], path="/admin")
    assert ui.get("/admin", follow_redirects=False).status_code == 303


def test_sessions_expire(ui: TestClient, clock: FrozenClock) -> None:
    signed_in(ui)
    clock.advance(timedelta(hours=11, minutes=59))
    assert ui.get("/admin", follow_redirects=False).status_code == 200
    clock.advance(timedelta(minutes=2))
    r = ui.get("/admin", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/admin/login")


def test_logout_revokes_every_session_of_the_user_on_the_server(ui: TestClient) -> None:
    token = signed_in(ui)
    stolen = ui.cookies[COOKIE]
    other = TestClient(ui.app)
    other.cookies.set(COOKIE, stolen, path="/admin")
    assert other.get("/admin", follow_redirects=False).status_code == 200

    r = ui.post("/admin/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/admin/login?signed_out=true"
    assert ui.get("/admin", follow_redirects=False).status_code == 303
    # The copied cookie is still well signed and unexpired, but its session version is gone.
    assert other.get("/admin", follow_redirects=False).status_code == 303
    assert login(ui).status_code == 303  # signing in again works


def test_deleting_a_user_ends_their_sessions(ui: TestClient) -> None:
    signed_in(ui)
    ui.app.state.container.web.users.delete(EMAIL)  # type: ignore[attr-defined]
    assert ui.get("/admin", follow_redirects=False).status_code == 303


def test_failed_sign_ins_are_throttled_per_account(ui: TestClient, clock: FrozenClock) -> None:
    for _ in range(5):
        assert login(ui, password="wrong password").status_code == 401
    r = login(ui)  # even the right password waits now
    assert r.status_code == 429
    assert "Too many failed sign-ins. Try again in 15 minutes." in r.text
    assert r.headers["retry-after"] == "900"
    assert login(ui, email="someone@example.com").status_code == 401  # other accounts are fine
    clock.advance(timedelta(minutes=15))
    assert login(ui).status_code == 303


def test_failed_sign_ins_are_throttled_per_address(ui: TestClient) -> None:
    for n in range(20):
        assert login(ui, email=f"guess{n}@example.com").status_code == 401
    assert login(ui).status_code == 429


def test_sign_in_never_redirects_off_site(ui: TestClient) -> None:
    token = csrf_of(ui.get("/admin/login").text)
    for target in ("//evil.example/admin", "https://evil.example", "/v1/sources", "/admin\\x"):
        r = ui.post(
            "/admin/login",
            data={"email": EMAIL, "password": PASSWORD, "csrf_token": token, "next": target},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/admin", target
        ui.cookies.clear()
        token = csrf_of(ui.get("/admin/login").text)


def test_missing_form_fields_get_a_page_naming_the_field(ui: TestClient) -> None:
    token = csrf_of(ui.get("/admin/login").text)
    r = ui.post("/admin/login", data={"email": EMAIL, "csrf_token": token})
    assert r.status_code == 422
    assert "text/html" in r.headers["content-type"]
    assert "password" in r.text
