"""The admin UI's pages over real HTTP (TestClient), on SQLite and PostgreSQL: what each page
shows is what the services hold, write keys appear once, and feed imports report progress."""

from __future__ import annotations

import asyncio
import base64
import html
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.integration.test_web_auth import EMAIL, PASSWORD, csrf_of, login
from tidings.app import create_app
from tidings.core.clock import FrozenClock
from tidings.core.settings import Settings
from tidings.testing import Credentials


def csrf(client: TestClient) -> str:
    return csrf_of(client.get("/admin/sources").text)


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def send(
    client: TestClient, key: str, *events: dict[str, Any], status: int = 200
) -> dict[str, Any]:
    r = client.post("/v1/batch", json={"batch": list(events)}, headers=basic(key))
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def apply(client: TestClient) -> None:
    client.app.state.container.pipeline.drain()  # type: ignore[attr-defined]


def text_of(page: str) -> str:
    """The page's text without tags, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_every_page_has_the_accessibility_basics(ui: TestClient, creds: Credentials) -> None:
    send(ui, creds.write_key, {"type": "identify", "userId": "u1", "traits": {"email": "a@b.c"}})
    apply(ui)
    for path in (
        "/admin",
        "/admin/sources",
        f"/admin/sources/{creds.source_id}",
        "/admin/profiles",
        "/admin/profiles/user_id:u1",
        "/admin/catalog",
    ):
        page = ui.get(path)
        assert page.status_code == 200, path
        body = page.text
        assert '<html lang="en">' in body
        assert '<a class="skip" href="#main">' in body
        assert '<main id="main"' in body and '<nav class="nav" aria-label="Main">' in body
        assert 'aria-current="page"' in body, path
        # Every input other than hidden ones has a label pointing at it.
        for tag in re.findall(r"<(?:input|select)\b[^>]*>", body):
            if 'type="hidden"' in tag:
                continue
            found = re.search(r'id="([^"]+)"', tag)
            assert found, f"{path}: an input without an id: {tag}"
            assert f'for="{found.group(1)}"' in body, f"{path}: no label for {tag}"
        # Assets come from tidings itself, and no inline script or style runs.
        for src in re.findall(r'(?:src|href)="(https?:[^"]+)"', body):
            pytest.fail(f"{path} loads {src} from elsewhere")
        assert "<script>" not in body and "style=" not in body


def test_the_dashboard_counts_events_per_minute_and_rejections(
    ui: TestClient, creds: Credentials, clock: FrozenClock
) -> None:
    send(ui, creds.write_key, *[{"type": "track", "userId": "u1", "event": "A"}] * 3)
    send(ui, creds.write_key, {"type": "track", "userId": "u1"}, status=400)
    body = ui.get("/admin").text
    words = text_of(body)
    assert "3 events in the last 60 minutes" in words
    assert '<svg class="chart"' in body and "<polyline" in body
    assert "test source 3 3 3" in words  # last hour, peak per minute, last minute
    assert "1 refused in the last 24 hours" in words
    assert "missing_field" in words and "track needs an event name" in words
    assert "Backlog 3 events waiting" in words
    apply(ui)
    assert "caught up" in ui.get("/admin").text


def test_source_names_are_escaped_everywhere(ui: TestClient) -> None:
    token = csrf(ui)
    made = ui.post(
        "/admin/sources", data={"name": "<img src=x onerror=alert(1)>", "csrf_token": token}
    )
    assert made.status_code == 201
    key = re.search(r'id="write-key" type="text" readonly value="([^"]+)"', made.text)
    assert key
    send(ui, key.group(1), {"type": "track", "userId": "u", "event": "E"})
    for path in ("/admin", "/admin/sources"):
        body = ui.get(path).text
        assert "<img src=x" not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body


def test_a_write_key_is_shown_once_and_rotating_replaces_it(
    ui: TestClient, creds: Credentials
) -> None:
    token = csrf(ui)
    r = ui.post("/admin/sources", data={"name": "Web shop", "csrf_token": token})
    assert r.status_code == 201
    key = re.search(r'value="(wk_[^"]+)"', r.text)
    assert key
    write_key = key.group(1)
    assert "This is the only time the full write key is shown" in r.text
    assert 'data-copy="#write-key"' in r.text
    source = next(s for s in ui.app.state.container.sources.list() if s.name == "Web shop")  # type: ignore[attr-defined]
    for path in ("/admin/sources", f"/admin/sources/{source.id}", "/admin"):
        page = ui.get(path).text
        assert write_key not in page
    assert source.write_key_hint in ui.get("/admin/sources").text
    assert send(ui, write_key, {"type": "track", "userId": "u", "event": "E"})["success"]

    r = ui.post(f"/admin/sources/{source.id}/rotate", data={"csrf_token": token})
    assert r.status_code == 200
    new_key = re.search(r'value="(wk_[^"]+)"', r.text)
    assert new_key and new_key.group(1) != write_key
    old = ui.post("/v1/track", json={"userId": "u", "event": "E"}, headers=basic(write_key))
    assert old.status_code == 401
    assert send(ui, new_key.group(1), {"type": "track", "userId": "u", "event": "E"})["success"]

    assert ui.post("/admin/sources/src_nope/rotate", data={"csrf_token": token}).status_code == 404
    blank = ui.post("/admin/sources", data={"name": "   ", "csrf_token": token})
    assert blank.status_code == 400
    assert "a source needs a name of 1-200 characters" in blank.text


def test_the_debugger_page_shows_payloads_and_rejection_reasons(
    ui: TestClient, creds: Credentials
) -> None:
    send(
        ui,
        creds.write_key,
        {"type": "track", "userId": "ada", "event": "Product Viewed", "properties": {"sku": "s1"}},
        {"type": "page", "anonymousId": "anon-1"},
        {"type": "track", "userId": "ada"},
    )
    body = ui.get(f"/admin/sources/{creds.source_id}").text
    words = text_of(body)
    assert "Product Viewed userId ada" in words
    assert 'data-type="page"' in body and 'data-type="rejected"' in body
    assert "missing_field · event: track needs an event name" in words
    assert "&#34;sku&#34;: &#34;s1&#34;" in body  # the raw payload, escaped
    seq = re.search(r'data-after-seq="(\d+)"', body)
    assert seq and int(seq.group(1)) == 2
    assert re.search(r'data-after-rejection="1"', body)
    assert ui.get("/admin/sources/src_nope").status_code == 404


def test_the_debugger_stream_takes_the_session_and_starts_after_the_page(
    ui: TestClient, creds: Credentials
) -> None:
    send(ui, creds.write_key, {"type": "track", "userId": "ada", "event": "First"})
    send(ui, creds.write_key, {"type": "track", "userId": "ada", "event": "Second"})
    debugger = ui.app.state.container.debugger  # type: ignore[attr-defined]

    async def read() -> list[bytes]:
        async def never() -> bool:
            return False

        chunks = []
        async for chunk in debugger.stream(creds.source_id, never, 0.3, after=(1, 0)):
            chunks.append(chunk)
        return chunks

    messages = [c for c in asyncio.run(read()) if c.startswith(b"event: event")]
    assert len(messages) == 1 and b'"event":"Second"' in messages[0]
    # The route itself: a session suffices (no admin token), an unknown source is a 404.
    assert ui.get("/admin/sources/src_nope/stream").status_code == 404


def test_profile_search_by_email_user_id_anonymous_id_and_type(
    ui: TestClient, creds: Credentials
) -> None:
    send(
        ui,
        creds.write_key,
        {
            "type": "track",
            "anonymousId": "anon-42",
            "event": "Product Viewed",
            "properties": {
                "product_id": "sku-1",
                "name": "Mug",
                "price": 12,
                "url": "https://s/p/1",
            },
        },
        {
            "type": "identify",
            "anonymousId": "anon-42",
            "userId": "u-7",
            "traits": {"email": "Ada@Example.com", "first_name": "Ada"},
        },
    )
    apply(ui)
    for query, id_type, target in (
        ("ada@example.com", "any", "/admin/profiles/email:ada@example.com"),
        ("ADA@example.com ", "any", "/admin/profiles/email:ada@example.com"),
        ("u-7", "any", "/admin/profiles/user_id:u-7"),
        ("anon-42", "any", "/admin/profiles/anonymous_id:anon-42"),
        ("anon-42", "anonymous_id", "/admin/profiles/anonymous_id:anon-42"),
        ("user_id:u-7", "any", "/admin/profiles/user_id:u-7"),
    ):
        r = ui.get(
            "/admin/profiles", params={"q": query, "id_type": id_type}, follow_redirects=False
        )
        assert r.status_code == 303, (query, r.text)
        assert r.headers["location"] == target
    missing = ui.get("/admin/profiles", params={"q": "nobody"})
    assert missing.status_code == 404
    assert "no profile holds &#39;nobody&#39;" in missing.text
    wrong_type = ui.get("/admin/profiles", params={"q": "u-7", "id_type": "phone"})
    assert wrong_type.status_code == 400
    assert "unknown id type" in wrong_type.text


def test_the_profile_page_shows_the_person(ui: TestClient, creds: Credentials) -> None:
    product = {"product_id": "sku-2", "name": "Tote", "price": 49, "url": "https://s/p/2"}
    send(
        ui,
        creds.write_key,
        {
            "type": "track",
            "anonymousId": "anon-42",
            "event": "Product Viewed",
            "timestamp": "2026-11-23T11:00:00Z",
            "properties": {
                "product_id": "sku-1",
                "name": "Mug",
                "price": 12,
                "url": "https://s/p/1",
            },
        },
        {
            "type": "track",
            "anonymousId": "anon-42",
            "event": "Product Added",
            "timestamp": "2026-11-23T11:20:00Z",
            "properties": product,
        },
        {
            "type": "identify",
            "timestamp": "2026-11-23T11:05:00Z",
            "anonymousId": "anon-42",
            "userId": "u-7",
            "traits": {"email": "ada@example.com", "first_name": "Ada", "plan": {"tier": "gold"}},
        },
        {
            "type": "track",
            "userId": "u-7",
            "event": "Order Completed",
            "timestamp": "2026-11-23T11:10:00Z",
            "properties": {
                "order_id": "o-1",
                "total": 30,
                "currency": "EUR",
                "products": [{"product_id": "sku-3", "price": 30, "name": "Hat"}],
            },
        },
    )
    apply(ui)
    body = ui.get("/admin/profiles/email:ada@example.com").text
    words = text_of(body)
    assert "<h1>Ada</h1>" in body
    assert "first_name Ada" in words and "&#34;tier&#34;: &#34;gold&#34;" in body
    assert "anonymous_id anon-42" in words and "user_id u-7" in words
    assert "Mug 12.00" in words  # recently viewed
    assert "Tote sku-2 1 49.00" in words  # the cart
    assert "o-1" in words and "30.00 EUR" in words and "Hat × 1" in words  # the last order
    assert "merged user_id u-7 + anonymous_id anon-42" in words
    assert "so their profiles were merged" in words
    assert words.count("Raw payload") == 4
    assert ui.get("/admin/profiles/email:nobody@example.com").status_code == 404
    assert ui.get("/admin/profiles/email:ada@example.com?before=abc").status_code == 400


def test_the_timeline_pages_through_older_events(ui: TestClient, creds: Credentials) -> None:
    send(
        ui,
        creds.write_key,
        *[{"type": "track", "userId": "u1", "event": f"E{n}"} for n in range(25)],
    )
    apply(ui)
    first = ui.get("/admin/profiles/user_id:u1").text
    assert text_of(first).count("Raw payload") == 20
    older = re.search(r'href="(/admin/profiles/user_id:u1\?before=\d+)">Older events', first)
    assert older, "no link to older events"
    second = ui.get(html.unescape(older.group(1))).text
    assert text_of(second).count("Raw payload") == 5
    assert "Older events" not in second and "Newest events" in second
    names = re.findall(r'<span class="entry-name">(E\d+)</span>', first + second)
    assert names == [f"E{n}" for n in reversed(range(25))]


def test_the_catalog_lists_searches_and_pages(ui: TestClient) -> None:
    feed = orjson.dumps(
        [
            {"id": f"p{n:03d}", "title": f"Mug {n}" if n % 2 else f"Tote {n}", "price": "9.50 EUR"}
            for n in range(60)
        ]
    )
    asyncio.run(ui.app.state.container.catalog.import_feed(feed, "json"))  # type: ignore[attr-defined]
    first = ui.get("/admin/catalog").text
    assert "60 products" in text_of(first)
    assert text_of(first).count("9.50 EUR") == 50
    nxt = re.search(r'href="(/admin/catalog\?cursor=[^"]+)">Next page', first)
    assert nxt
    second = ui.get(html.unescape(nxt.group(1))).text
    assert text_of(second).count("9.50 EUR") == 10 and "First page" in second
    found = ui.get("/admin/catalog", params={"q": "tote"}).text
    assert text_of(found).count("9.50 EUR") == 30 and "Mug" not in text_of(found)
    none = ui.get("/admin/catalog", params={"q": "zzz"}).text
    assert "No product matches “zzz”" in text_of(none)
    assert ui.get("/admin/catalog", params={"cursor": "!!"}).status_code == 400


def upload(client: TestClient, name: str, data: bytes, fmt: str = "auto") -> Any:
    return client.post(
        "/admin/catalog/import",
        data={"csrf_token": csrf(client), "format": fmt},
        files={"feed": (name, data, "application/octet-stream")},
        follow_redirects=False,
    )


def finish(client: TestClient, location: str) -> dict[str, Any]:
    job_id = location.rsplit("/", 1)[1]
    imports = client.app.state.container.web.imports  # type: ignore[attr-defined]
    client.portal.call(imports.wait, job_id)  # type: ignore[attr-defined]
    progress = client.get(f"{location}/progress")
    assert progress.status_code == 200
    body: dict[str, Any] = progress.json()
    return body


def test_import_progress_counts_only_committed_rows(ui: TestClient) -> None:
    catalog = ui.app.state.container.catalog  # type: ignore[attr-defined]
    catalog.chunk_rows = 10
    rows = "\n".join(f"p{n},Mug {n},{n}.99 USD" for n in range(35))
    seen: list[tuple[int, int, int]] = []

    def record(written: int, total: int) -> None:
        seen.append((written, total, catalog.count()))  # what the database holds by then

    asyncio.run(catalog.import_feed(f"id,title,price\n{rows}\n".encode(), "csv", record))
    assert seen == [(0, 35, 0), (10, 35, 10), (20, 35, 20), (30, 35, 30), (35, 35, 35)]


def test_a_feed_upload_imports_in_the_background(ui: TestClient) -> None:
    rows = "\n".join(f"p{n},Mug {n},{n}.99 USD" for n in range(35))
    feed = f"id,title,price\n{rows}\n,no id,1\n".encode()
    r = upload(ui, "feed.csv", feed)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/admin/catalog/imports/imp_")
    job = finish(ui, r.headers["location"])
    assert job["status"] == "done" and job["percent"] == 100
    assert (job["written"], job["total"]) == (35, 35)
    assert job["summary"]["inserted"] == 35 and job["summary"]["rejected"] == 1
    page = text_of(ui.get(r.headers["location"]).text)
    assert "Imported" in page and "Rows read 36 New 35 Updated 0 Rejected 1" in page
    assert "line 37" in page and "missing_product_id" in page
    assert "feed.csv" in text_of(ui.get("/admin/catalog").text)
    assert ui.app.state.container.catalog.count() == 35  # type: ignore[attr-defined]


def test_a_running_import_shows_a_progress_bar_that_polls(ui: TestClient) -> None:
    from tidings.web.imports import ImportJob

    job = ImportJob("imp_x", "big.csv", "csv", 10, "2026-11-23T12:00:00.000Z", "writing", 200, 50)
    ui.app.state.container.web.imports._jobs[job.id] = job  # type: ignore[attr-defined]
    body = ui.get("/admin/catalog/imports/imp_x").text
    assert 'data-poll="/admin/catalog/imports/imp_x/progress"' in body
    assert '<progress id="import-bar" max="100" value="25">' in body
    assert "50 of 200 rows written (25%)" in text_of(body)
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in body
    assert ui.get("/admin/catalog/imports/imp_x/progress").json()["percent"] == 25


def test_a_file_that_is_not_a_feed_fails_with_the_reason(ui: TestClient) -> None:
    r = upload(ui, "feed.json", b'{"not": "a feed"}')
    job = finish(ui, r.headers["location"])
    assert job["status"] == "failed"
    assert job["error"]["message"]
    page = ui.get(r.headers["location"]).text
    assert "The import failed" in page and job["error"]["message"] in text_of(page)
    empty = upload(ui, "empty.csv", b"  \n")
    assert empty.status_code == 400 and "the file is empty" in empty.text
    assert ui.get("/admin/catalog/imports/imp_nope").status_code == 404
    assert ui.get("/admin/catalog/imports/imp_nope/progress").status_code == 404


def test_an_upload_over_the_limit_is_refused(
    db_url: str, tmp_path: Path, creds: Credentials, clock: FrozenClock
) -> None:
    settings = Settings(
        database_url=db_url,
        data_dir=tmp_path / "data",
        pipeline_in_process=False,
        catalog_import_max_bytes=100,
    )
    with TestClient(create_app(settings, clock)) as client:
        client.app.state.container.web.users.create(EMAIL, PASSWORD)  # type: ignore[attr-defined]
        assert login(client).status_code == 303
        r = upload(client, "big.csv", b"id,title\n" + b"p,x\n" * 50)
        assert r.status_code == 400
        assert "the file is over 100 bytes" in r.text


def test_the_root_leads_to_the_admin_ui(ui: TestClient) -> None:
    r = ui.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/admin"
    assert ui.get("/admin/static/admin.css").headers["content-type"].startswith("text/css")
    assert ui.get("/admin/nowhere").status_code == 404


def test_an_upload_needs_a_session_a_token_and_a_file(ui: TestClient) -> None:
    imports = ui.app.state.container.web.imports  # type: ignore[attr-defined]
    stranger = TestClient(ui.app)
    r = stranger.post(
        "/admin/catalog/import",
        files={"feed": ("f.csv", b"id,title\np1,Mug\n", "text/csv")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    no_token = ui.post(
        "/admin/catalog/import", files={"feed": ("f.csv", b"id,title\np1,Mug\n", "text/csv")}
    )
    assert no_token.status_code == 403
    no_file = ui.post("/admin/catalog/import", data={"csrf_token": csrf(ui)})
    assert no_file.status_code == 400 and "choose a feed file" in no_file.text
    bad_format = upload(ui, "f.csv", b"id\np1\n", fmt="xml")
    assert bad_format.status_code == 400 and "format must be auto, csv or json" in bad_format.text
    assert imports.recent() == []
