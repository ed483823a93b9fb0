"""Segment's own browser library (@segment/analytics-next 1.84.3) in real headless Chromium.

tidings is both the "CDN" (bundle, lazy chunks, settings) and the tracking API; the test page
comes from a second origin, so the browser does real CORS (a simple GET for the settings and
preflighted POSTs for events, which carry ``Authorization``). Events are read back through the
admin debugger API.

Needs ``make test-deps`` (the npm package in ``.cache/npm`` and ``/usr/bin/chromium``): without
them these tests are skipped, or fail when ``CI`` is set.
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import chromium, require
from tidings.testing import Credentials, ServerProcess, free_port, prepare_database

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
ANALYTICS_NEXT = ROOT / ".cache" / "npm" / "node_modules" / "@segment" / "analytics-next"
WAIT_S = 20.0
T = TypeVar("T")


def _missing_dependency() -> str | None:
    if shutil.which("chromium") is None:
        return "chromium is not installed (make test-deps installs the Debian package)"
    if not (ANALYTICS_NEXT / "dist" / "umd" / "standalone.js").is_file():
        return f"@segment/analytics-next is not at {ANALYTICS_NEXT} (run make test-deps)"
    return None


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(_missing_dependency())
    with chromium() as launched:
        yield launched


@dataclass
class Tidings:
    server: ServerProcess
    creds: Credentials

    @property
    def url(self) -> str:
        return self.server.url

    def events(self) -> list[dict[str, Any]]:
        """Stored events of the test source, oldest first (the debugger lists newest first)."""
        resp = httpx.get(
            f"{self.url}/v1/sources/{self.creds.source_id}/events",
            params={"limit": 200},
            headers={"Authorization": f"Bearer {self.creds.admin_token}"},
            timeout=5.0,
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["rejections"] == [], f"tidings rejected events: {body['rejections']}"
        return list(reversed(body["events"]))

    def wait_for_events(
        self, page: Any, done: Callable[[list[dict[str, Any]]], bool], what: str
    ) -> list[dict[str, Any]]:
        """Poll the debugger until ``done(events)``; fail with what was stored at the deadline.

        It pauses with ``page.wait_for_timeout``: Playwright's sync API delivers the page's
        request and console events to Python only while Python waits on Playwright.
        """
        deadline = time.monotonic() + WAIT_S
        events = self.events()
        while not done(events):
            if time.monotonic() > deadline:
                stored = [(e["type"], e["event"], e["payload"].get("userId")) for e in events]
                pytest.fail(f"within {WAIT_S} s tidings did not store {what}; stored: {stored}")
            page.wait_for_timeout(200)
            events = self.events()
        return events


@pytest.fixture
def tidings(tmp_path: Path) -> Iterator[Tidings]:
    require(_missing_dependency())
    url = f"sqlite:///{tmp_path / 'tidings.db'}"
    creds = prepare_database(url)
    server = ServerProcess(
        url,
        env={"TIDINGS_ANALYTICS_JS_DIR": str(ANALYTICS_NEXT)},
        log_path=tmp_path / "tidings.log",
    ).start()
    try:
        yield Tidings(server, creds)
    finally:
        server.stop()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Site:
    """The web site embedding analytics.js: another origin (its own port) than tidings."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, name: str, html: str) -> str:
        (self.root / name).write_text(html, encoding="utf-8")
        return f"{self.origin}/{name}"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "site"
    root.mkdir()
    made = Site(root)
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", made.port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="site", daemon=True)
    thread.start()
    try:
        yield made
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@dataclass
class Traffic:
    """What the page asked for and what it logged, for assertions and failure messages."""

    requests: list[Any] = field(default_factory=list)
    responses: list[Any] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    preflights: list[dict[str, Any]] = field(default_factory=list)

    def on_cdp_response(self, event: dict[str, Any]) -> None:
        """CORS preflights: Playwright's own events leave them out, Chrome DevTools has them."""
        if event.get("type") == "Preflight":
            response = event["response"]
            headers = {k.lower(): v for k, v in response["headers"].items()}
            self.preflights.append(
                {"url": response["url"], "status": response["status"], "headers": headers}
            )

    def preflights_to(self, url: str) -> list[dict[str, Any]]:
        return [p for p in self.preflights if p["url"] == url]

    def posts(self, url: str) -> list[Any]:
        return [r for r in self.requests if r.method == "POST" and r.url == url]

    def response_to(self, url: str) -> Any:
        found = [r for r in self.responses if r.url == url]
        assert found, f"the page never got a response from {url}; console: {self.console}"
        return found[-1]


@pytest.fixture
def tab(browser: Any) -> Iterator[tuple[Any, Traffic]]:
    context = browser.new_context()
    page = context.new_page()
    traffic = Traffic()
    page.on("request", lambda r: traffic.requests.append(r))
    page.on("response", lambda r: traffic.responses.append(r))
    page.on("console", lambda m: traffic.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: traffic.console.append(f"pageerror: {e}"))
    devtools = context.new_cdp_session(page)
    devtools.on("Network.responseReceived", traffic.on_cdp_response)
    devtools.send("Network.enable")
    try:
        yield page, traffic
    finally:
        context.close()


# --- helpers ----------------------------------------------------------------------------------


def standalone_page(tidings: Tidings, load_options: dict[str, Any] | None = None) -> str:
    """A site loading the standalone build from tidings, as Segment's snippet-less setup does."""
    wk = tidings.creds.write_key
    boot = {"_writeKey": wk, "_cdn": tidings.url, "_loadOptions": load_options or {}}
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tidings shop</title>
<script>window.analytics = {json.dumps(boot)};</script>
<script src="{tidings.url}/analytics.js/v1/{wk}/analytics.min.js"></script>
</head><body><h1>A product page</h1></body></html>
"""


def wait_until_loaded(page: Any, traffic: Traffic) -> None:
    from playwright.sync_api import Error as PlaywrightError

    try:
        page.wait_for_function(
            "() => window.analytics && window.analytics.initialized === true",
            timeout=WAIT_S * 1000,
        )
    except PlaywrightError as exc:
        pytest.fail(f"analytics.js did not initialize: {exc}; console: {traffic.console}")


def eventually(page: Any, get: Callable[[], T], ok: Callable[[T], bool], what: str) -> T:
    """``get()`` once ``ok`` holds for it, pumping the page's events while waiting."""
    deadline = time.monotonic() + WAIT_S
    value = get()
    while not ok(value):
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {WAIT_S} s: {value!r}")
        page.wait_for_timeout(100)
        value = get()
    return value


def assert_preflight_allowed(page: Any, traffic: Traffic, url: str, origin: str) -> None:
    (preflight,) = eventually(
        page, lambda: traffic.preflights_to(url), bool, f"CORS preflight to {url}"
    )
    assert 200 <= preflight["status"] < 300, preflight
    headers = preflight["headers"]
    assert headers.get("access-control-allow-origin") in ("*", origin), headers
    allowed = headers.get("access-control-allow-headers", "").lower()
    assert allowed == "*" or "authorization" in allowed, headers


def of_type(events: list[dict[str, Any]], type_: str, name: str | None = None) -> list[Any]:
    return [e for e in events if e["type"] == type_ and (name is None or e["event"] == name)]


def assert_from_analytics_next(payload: dict[str, Any], page_url: str) -> None:
    assert "writeKey" not in payload, "the write key must not be stored with the event"
    assert payload["messageId"].startswith("ajs-next-"), payload["messageId"]
    assert payload["context"]["library"] == {"name": "analytics.js", "version": "next-1.84.3"}
    assert payload["context"]["page"]["url"] == page_url
    assert payload["context"]["userAgent"]


# --- tests ------------------------------------------------------------------------------------


def test_standalone_build_sends_page_and_track_to_tidings(
    tidings: Tidings, site: Site, tab: tuple[Any, Traffic], artifacts: Path
) -> None:
    page, traffic = tab
    page_url = site.publish("product.html", standalone_page(tidings))
    wk = tidings.creds.write_key

    page.goto(page_url)
    wait_until_loaded(page, traffic)

    bundle = traffic.response_to(f"{tidings.url}/analytics.js/v1/{wk}/analytics.min.js")
    assert bundle.status == 200
    settings = traffic.response_to(f"{tidings.url}/v1/projects/{wk}/settings")
    assert settings.status == 200
    segment_io = settings.json()["integrations"]["Segment.io"]
    assert segment_io["apiKey"] == wk
    assert segment_io["apiHost"] == f"{urlsplit(tidings.url).netloc}/v1"
    assert segment_io["protocol"] == "http"

    anonymous_id = page.evaluate(
        """async () => {
            await window.analytics.page();
            await window.analytics.track('Product Viewed',
                {sku: 'SKU-42', price: 19.5, currency: 'EUR', tags: ['new', 'sale']});
            return window.analytics.user().anonymousId();
        }"""
    )
    assert isinstance(anonymous_id, str) and anonymous_id

    events = tidings.wait_for_events(
        page,
        lambda ev: bool(of_type(ev, "page")) and bool(of_type(ev, "track", "Product Viewed")),
        "a page and a 'Product Viewed' track",
    )
    assert len(events) == 2, [(e["type"], e["event"]) for e in events]

    (viewed,) = of_type(events, "track", "Product Viewed")
    track = viewed["payload"]
    assert track["type"] == "track"
    assert track["event"] == "Product Viewed"
    assert track["properties"] == {
        "sku": "SKU-42",
        "price": 19.5,
        "currency": "EUR",
        "tags": ["new", "sale"],
    }
    assert track["anonymousId"] == anonymous_id
    assert track.get("userId") is None
    assert viewed["messageId"] == track["messageId"]
    assert_from_analytics_next(track, page_url)

    (paged,) = of_type(events, "page")
    page_payload = paged["payload"]
    assert page_payload["anonymousId"] == anonymous_id
    assert page_payload["properties"]["url"] == page_url
    assert page_payload["properties"]["title"] == "tidings shop"
    assert page_payload["properties"]["path"] == "/product.html"
    assert_from_analytics_next(page_payload, page_url)

    # Each event went cross-origin to its short path with the write key as Basic auth, after a
    # CORS preflight that tidings allowed.
    for short in ("p", "t"):
        assert_preflight_allowed(page, traffic, f"{tidings.url}/v1/{short}", site.origin)
        (post,) = traffic.posts(f"{tidings.url}/v1/{short}")
        headers = post.all_headers()
        assert headers["origin"] == site.origin
        assert headers["authorization"].startswith("Basic ")
        assert headers["content-type"].startswith("text/plain")
        response = post.response()
        assert response is not None and response.status == 200
        assert response.json() == {"success": True}

    page.screenshot(path=str(artifacts / "analytics-next-standalone.png"))


def test_query_string_api_identifies_and_tracks_email_clicks(
    tidings: Tidings, site: Site, tab: tuple[Any, Traffic]
) -> None:
    page, traffic = tab
    landing = site.publish("landing.html", standalone_page(tidings))
    query = (
        "?ajs_uid=qs-user&ajs_event=Email%20Link%20Clicked"
        "&ajs_prop_campaign=spring&ajs_trait_email=qs@example.com"
    )

    page.goto(landing + query)
    wait_until_loaded(page, traffic)

    events = tidings.wait_for_events(
        page,
        lambda ev: bool(of_type(ev, "identify")) and bool(of_type(ev, "track")),
        "an identify and a track from the query string",
    )
    chunks = [
        r
        for r in traffic.responses
        if r.url.startswith(f"{tidings.url}/analytics-next/bundles/queryString.bundle.")
    ]
    assert [c.status for c in chunks] == [200], "the query-string chunk comes from tidings"

    (identify,) = [e["payload"] for e in of_type(events, "identify")]
    assert identify["userId"] == "qs-user"
    assert identify["traits"]["email"] == "qs@example.com"
    assert_from_analytics_next(identify, landing + query)

    (track,) = [e["payload"] for e in of_type(events, "track")]
    assert track["event"] == "Email Link Clicked"
    assert track["properties"] == {"campaign": "spring"}
    assert track["userId"] == "qs-user"
    assert track["anonymousId"] == identify["anonymousId"]
    assert_from_analytics_next(track, landing + query)


def test_batching_delivery_posts_to_v1_b(
    tidings: Tidings, site: Site, tab: tuple[Any, Traffic]
) -> None:
    page, traffic = tab
    batching = {"strategy": "batching", "config": {"size": 3, "timeout": 500}}
    page_url = site.publish(
        "batched.html",
        standalone_page(tidings, {"integrations": {"Segment.io": {"deliveryStrategy": batching}}}),
    )

    page.goto(page_url)
    wait_until_loaded(page, traffic)
    page.evaluate(
        """() => {
            window.analytics.track('Batched 1', {n: 1});
            window.analytics.track('Batched 2', {n: 2});
            window.analytics.identify('batch-user', {plan: 'pro'});
            window.analytics.track('Batched 3', {n: 3});
        }"""
    )

    events = tidings.wait_for_events(page, lambda ev: len(ev) >= 4, "four batched events")
    assert sorted((e["type"], e["event"]) for e in events) == [
        ("identify", None),
        ("track", "Batched 1"),
        ("track", "Batched 2"),
        ("track", "Batched 3"),
    ]
    for e in events:
        assert_from_analytics_next(e["payload"], page_url)
    (identify,) = [e["payload"] for e in of_type(events, "identify")]
    assert identify["userId"] == "batch-user"
    assert identify["traits"] == {"plan": "pro"}
    (last,) = [e["payload"] for e in of_type(events, "track", "Batched 3")]
    assert last["properties"] == {"n": 3}
    assert last["userId"] == "batch-user"

    # Three events fill a batch; the fourth goes out when the 500 ms timeout fires.
    batches = eventually(
        page, lambda: traffic.posts(f"{tidings.url}/v1/b"), lambda b: len(b) >= 2, "two batches"
    )
    assert [len(json.loads(b.post_data)["batch"]) for b in batches] == [3, 1]
    assert_preflight_allowed(page, traffic, f"{tidings.url}/v1/b", site.origin)
    for post in batches:
        assert post.all_headers()["origin"] == site.origin
        assert json.loads(post.post_data)["writeKey"] == tidings.creds.write_key
        response = post.response()
        assert response is not None and response.status == 200
        assert response.json()["success"] is True
    single = [r.url for r in traffic.requests if r.method == "POST" and "/v1/b" not in r.url]
    assert single == [], "batching mode must not use the per-type paths"
