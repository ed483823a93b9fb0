"""The admin UI in real headless Chromium against a live ``tidings serve``.

A marketer's and an engineer's path through it: sign in (a wrong password and a form without its
CSRF token are refused), create a source and copy its key, watch an event and a rejection arrive
in the live debugger, look a person up, import a feed, build a block with a two-variant waterfall
and watch its preview change with the recipient, simulate it and copy its creative tag.
Screenshots of the main pages, at 1280 px and at a phone's 375 px, land in
``test-artifacts/screenshots/``; with
``TIDINGS_UPDATE_SCREENSHOTS=1`` the dashboard, debugger and profile ones also replace those in
``docs/screenshots/`` that the README shows (and the block editor's).

Needs Debian's chromium (``make test-deps``): without it these tests are skipped, or fail when
``CI`` is set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import chromium, require
from tidings.testing import Credentials, ServerProcess, prepare_database

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EMAIL, PASSWORD = "ada@shop.example", "correct horse battery"
WAIT_MS = 15_000
DOCUMENTED = (
    "dashboard-1280",
    "debugger-1280",
    "profile-1280",
    "profile-375",
    "block-1280",
    "campaign-1280",
)


def _missing() -> str | None:
    if shutil.which("chromium") is None:
        return "chromium is not installed (make test-deps installs the Debian package)"
    return None


@dataclass
class Live:
    server: ServerProcess
    creds: Credentials
    shots: Path

    @property
    def url(self) -> str:
        return self.server.url

    def send(self, write_key: str, *batch: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/batch", json={"batch": list(batch)}, auth=(write_key, ""), timeout=5
        )

    def caught_up(self, page: Any) -> None:
        """Until the pipeline has applied every stored event (it does within a moment)."""
        for _ in range(100):
            status = httpx.get(
                f"{self.url}/v1/pipeline/status",
                headers={"Authorization": f"Bearer {self.creds.admin_token}"},
                timeout=5,
            ).json()
            if status["backlog"] == 0 and status["position"] == status["head"]:
                return
            page.wait_for_timeout(100)  # Playwright's pause keeps the page's events flowing
        pytest.fail(f"the pipeline did not catch up: {status}")

    def shot(self, page: Any, name: str) -> None:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if os.environ.get("TIDINGS_UPDATE_SCREENSHOTS") == "1" and name in DOCUMENTED:
            docs = ROOT / "docs" / "screenshots"
            docs.mkdir(exist_ok=True)
            shutil.copyfile(path, docs / path.name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(_missing())
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[Live]:
    require(_missing())
    root = tmp_path_factory.mktemp("admin-ui")
    url = f"sqlite:///{root / 'tidings.db'}"
    creds = prepare_database(url, "Web shop")
    made = subprocess.run(
        [sys.executable, "-m", "tidings", "users", "create", EMAIL, "--password-stdin"],
        input=f"{PASSWORD}\n".encode(),
        env={**os.environ, "TIDINGS_DATABASE_URL": url},
        capture_output=True,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    server = ServerProcess(
        url,
        env={"TIDINGS_DATA_DIR": str(root / "data"), "TIDINGS_DEBUGGER_POLL_S": "0.1"},
        log_path=root / "server.log",
    ).start()
    shots = artifacts / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        yield Live(server, creds, shots)
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any, live: Live) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    # Script errors fail the test; "Failed to load resource" is the browser noting a 4xx the
    # test itself provoked and checks.
    tab.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], f"the page logged errors: {errors}"


def sign_in(page: Any, live: Live, target: str = "/admin") -> None:
    page.goto(f"{live.url}{target}")
    page.wait_for_url(re.compile(r"/admin/login"))
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}{target}")


def test_sign_in_refuses_a_wrong_password_and_a_post_without_csrf(page: Any, live: Live) -> None:
    page.goto(f"{live.url}/admin")
    page.wait_for_url(re.compile(r"/admin/login\?next=/admin$"))
    live.shot(page, "login-1280")
    # Keyboard only: the email field has the focus, the skip link comes before it.
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type("not my password")
    page.keyboard.press("Enter")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text() == "Wrong email or password."
    assert page.get_by_label("Email").input_value() == EMAIL

    # The browser holds the session cookie; a POST without the form's token is still refused.
    forged = page.request.post(
        f"{live.url}/admin/login", form={"email": EMAIL, "password": PASSWORD}
    )
    assert forged.status == 403
    assert "This form has expired" in forged.text()

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/admin")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/admin/login\?signed_out=true"))
    page.goto(f"{live.url}/admin/sources")
    page.wait_for_url(re.compile(r"/admin/login"))


def test_create_a_source_copy_its_key_and_watch_events_arrive(
    browser: Any, page: Any, live: Live
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    sign_in(page, live, "/admin/sources")
    page.get_by_label("Name").fill("Mobile app")
    page.get_by_role("button", name="Create source").click()
    page.get_by_role("heading", name="Source created").wait_for()
    write_key = page.get_by_label("Write key").input_value()
    assert write_key.startswith("wk_")
    page.get_by_role("button", name="Copy").click()
    page.get_by_text("Copied to the clipboard.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == write_key
    live.shot(page, "source-key-1280")

    page.get_by_role("link", name="Open the live debugger").click()
    status = page.locator("#live-status[data-state='open']")
    status.wait_for()
    assert page.get_by_text("No events yet.").is_visible()

    sent = live.send(
        write_key,
        {
            "type": "track",
            "userId": "grace@shop.example",
            "event": "Checkout Started",
            "properties": {"order_id": "o-77", "value": 129.5},
        },
    )
    assert sent.status_code == 200, sent.text
    entry = page.locator("#entries .entry", has_text="Checkout Started")
    entry.wait_for()
    assert "userId grace@shop.example" in entry.inner_text()
    entry.get_by_text("Raw payload").click()
    assert '"order_id": "o-77"' in entry.locator("pre").inner_text()

    bad = live.send(write_key, {"type": "track", "userId": "grace@shop.example"})
    assert bad.status_code == 400
    rejected = page.locator("#entries .entry[data-type='rejected']")
    rejected.wait_for()
    assert "missing_field · event: track needs an event name" in rejected.inner_text()

    page.get_by_label("Show").select_option("rejected")
    assert entry.is_hidden() and rejected.is_visible()
    page.get_by_label("Show").select_option("all")
    assert entry.is_visible()
    live.shot(page, "debugger-1280")

    # Keys are never shown in full again; the debugger shows only the hint.
    assert write_key not in page.content()
    page.goto(f"{live.url}/admin/sources")
    assert write_key not in page.content()
    live.shot(page, "sources-1280")


def test_look_up_a_profile(browser: Any, page: Any, live: Live) -> None:
    write_key = live.creds.write_key
    product = {"product_id": "sku-7", "name": "Linen tote", "price": 49, "url": "https://s/p/7"}
    r = live.send(
        write_key,
        {"type": "page", "anonymousId": "anon-3f2", "name": "Home"},
        {
            "type": "track",
            "anonymousId": "anon-3f2",
            "event": "Product Viewed",
            "properties": {
                "product_id": "sku-1",
                "name": "Ceramic mug",
                "price": 18,
                "url": "https://s/p/1",
            },
            "timestamp": "2026-11-23T10:00:00Z",
        },
        {
            "type": "identify",
            "anonymousId": "anon-3f2",
            "userId": "u-1001",
            "traits": {"email": "ada@lovelace.example", "first_name": "Ada", "plan": "gold"},
            "timestamp": "2026-11-23T10:01:00Z",
        },
        {
            "type": "track",
            "userId": "u-1001",
            "event": "Order Completed",
            "properties": {
                "order_id": "o-1",
                "total": 36,
                "currency": "EUR",
                "products": [{"product_id": "sku-1", "price": 18, "quantity": 2}],
            },
            "timestamp": "2026-11-23T10:02:00Z",
        },
        {
            "type": "track",
            "userId": "u-1001",
            "event": "Product Added",
            "properties": product,
            "timestamp": "2026-11-23T10:03:00Z",
        },
    )
    assert r.status_code == 200, r.text
    sign_in(page, live, "/admin/profiles")
    page.get_by_label("Email, userId or anonymousId").fill("ada@lovelace.example")
    live.caught_up(page)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(f"{live.url}/admin/profiles/email:ada@lovelace.example")
    assert page.get_by_role("heading", name="Ada", exact=True).is_visible()
    identities = page.locator("section", has=page.get_by_role("heading", name="Identities"))
    for value in ("anon-3f2", "u-1001", "ada@lovelace.example"):
        assert value in identities.inner_text()
    cart = page.locator("section", has=page.get_by_role("heading", name="Cart"))
    assert "Linen tote" in cart.inner_text()
    order = page.locator("section", has=page.get_by_role("heading", name="Last order"))
    assert "36.00 EUR" in order.inner_text()
    merges = page.locator("section", has=page.get_by_role("heading", name="Merge history"))
    assert "so their profiles were merged" in merges.inner_text()
    live.shot(page, "profile-1280")
    page.set_viewport_size({"width": 375, "height": 800})
    live.shot(page, "profile-375")


def test_import_a_small_feed(browser: Any, page: Any, live: Live, tmp_path: Path) -> None:
    feed = tmp_path / "spring-feed.csv"
    feed.write_text(
        "id,title,price,brand,product_type,availability\n"
        "sku-1,Ceramic mug,18.00 EUR,Potter & Co,Kitchen,in stock\n"
        "sku-7,Linen tote,49.00 EUR,Weaver,Bags,in stock\n"
        "sku-9,Wool scarf,65.00 EUR,Weaver,Accessories,out of stock\n"
        ",No id here,5.00 EUR,,,\n",
        encoding="utf-8",
    )
    sign_in(page, live, "/admin/catalog")
    page.get_by_label("Feed file (CSV, TSV or JSON)").set_input_files(str(feed))
    page.get_by_role("button", name="Import").click()
    page.wait_for_url(re.compile(r"/admin/catalog/imports/imp_"))
    page.get_by_role("heading", name="Imported").wait_for()
    stats = page.locator(".stats").inner_text()
    assert re.search(r"Rows read\s+4", stats) and re.search(r"Rejected\s+1", stats)
    assert "the row has no product id" in page.content()
    live.shot(page, "import-1280")
    page.get_by_role("link", name="See the products").click()
    table = page.locator("table").inner_text()
    assert "Wool scarf" in table and "65.00 EUR" in table
    page.get_by_label("Search products").fill("weaver")
    page.get_by_label("Search products").press("Enter")
    page.wait_for_url(re.compile(r"q=weaver"))
    assert "Ceramic mug" not in page.locator("table").inner_text()
    live.shot(page, "catalog-1280")


def test_the_dashboard_at_desktop_and_phone_width(browser: Any, page: Any, live: Live) -> None:
    views = [
        {"type": "track", "anonymousId": f"a-{n}", "event": "Product Viewed"} for n in range(12)
    ]
    assert live.send(live.creds.write_key, *views).status_code == 200
    sign_in(page, live)
    panels = page.locator("main section.card h2").all_inner_texts()
    assert panels == [
        "Events per minute",
        "Rejected events",
        "Pipeline",
        "Renders per minute",
        "Opens and clicks today",
    ]
    chart = page.locator("svg.chart")
    assert chart.get_attribute("role") == "img"
    assert "events in the last 60 minutes" in chart.locator("desc").text_content()
    live.shot(page, "dashboard-1280")
    page.set_viewport_size({"width": 375, "height": 800})
    # The navigation stays reachable and nothing but the chart scrolls sideways.
    assert page.get_by_role("link", name="Catalog").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide at a 375 px viewport"
    live.shot(page, "dashboard-375")
    page.goto(f"{live.url}/admin/sources/{live.creds.source_id}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    live.shot(page, "debugger-375")


def test_open_a_campaigns_report(page: Any, live: Live) -> None:
    body = {
        "name": "Spring sale",
        "subject": "Spring is here",
        "html": "<p>Hello {{ first_name | default('there') }}</p>",
        "recipients": {"emails": ["ada@example.com", "bob@example.com"]},
    }
    made = httpx.post(
        f"{live.url}/v1/campaigns",
        json=body,
        headers={"Authorization": f"Bearer {live.creds.admin_token}"},
        timeout=5,
    )
    assert made.status_code == 201, made.text
    sign_in(page, live, "/admin/campaigns")
    page.get_by_role("link", name="Spring sale").click()
    page.wait_for_url(f"{live.url}/admin/campaigns/{made.json()['id']}")
    assert page.get_by_role("heading", name="Engagement").is_visible()
    assert page.locator("#report-stats [data-key=delivered] dd").inner_text() == "0"
    assert page.get_by_role("button", name="Send").is_visible()
    live.shot(page, "campaign-1280")


def test_build_a_block_preview_it_for_two_people_simulate_and_copy_its_tag(
    browser: Any, page: Any, live: Live
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    shopper = {"product_id": "sku-3", "name": "Wool socks", "price": 12, "quantity": 2}
    r = live.send(
        live.creds.write_key,
        {"type": "identify", "userId": "u-cart", "traits": {"email": "cara@shop.example"}},
        {"type": "track", "userId": "u-cart", "event": "Product Added", "properties": shopper},
        {"type": "identify", "userId": "u-none", "traits": {"email": "noel@shop.example"}},
    )
    assert r.status_code == 200, r.text
    sign_in(page, live, "/admin/blocks/new")
    page.get_by_label("Name", exact=True).fill("Cart, else hello")
    page.locator("#v0-id").fill("cart")
    page.locator("#v0-columns").fill("3")
    page.locator("#v0-rows").fill("1")
    page.locator("#v0-rule-kind").select_option("cart_not_empty")
    page.locator("#v0-rule-check", has_text="Reads: cart quantity > 0").wait_for()
    # A cart value condition shows its input and reads back as it is typed.
    page.locator("#v0-rule-kind").select_option("cart_value_gt")
    page.locator("#v0-rule-x").fill("abc")
    page.locator("#v0-rule-check", has_text="Not valid yet").wait_for()
    page.locator("#v0-rule-kind").select_option("cart_not_empty")
    assert page.locator("#v0-rule-x").is_hidden()

    page.get_by_role("button", name="Add a variant").click()
    page.locator("#v1-id").wait_for()
    page.locator("#v1-id").fill("hello")
    assert page.locator("#v1-app").input_value() == "text"
    assert page.locator("#v1-columns").is_hidden() and page.locator("#v1-template").is_visible()
    page.locator("#v1-template").fill("Hello {{ email | default('there') }}")
    page.get_by_role("button", name="Save block").first.click()
    page.wait_for_url(re.compile(r"/admin/blocks/blk_[0-9a-f]{20}\?saved=true$"))
    page.get_by_text("Saved. Opens show version 1").wait_for()
    block_url = page.url.split("?")[0]
    live.caught_up(page)

    recipient = page.get_by_label("Recipient (email or userId)")
    recipient.fill("cara@shop.example")
    summary = page.locator("#preview-summary")
    summary.filter(has_text="cart variant shown").wait_for()
    cart_trace = page.locator(".step[data-outcome='chosen']").inner_text()
    assert "cart quantity > 0" in cart_trace
    assert page.locator("#preview-img").evaluate("img => img.naturalWidth") == 600
    recipient.fill("noel@shop.example")
    summary.filter(has_text="hello variant shown").wait_for()
    assert "no match" in page.locator(".step[data-outcome='no_match']").inner_text()
    live.shot(page, "block-1280")

    page.get_by_role("button", name="Run the simulation").click()
    table = page.locator("#simulation")
    table.wait_for()
    rows = table.locator("tbody tr").all_inner_texts()
    assert any(row.startswith("cart") and "50.0%" in row for row in rows), rows
    assert any(row.startswith("hello") and "50.0%" in row for row in rows), rows
    live.shot(page, "block-simulation-1280")

    page.get_by_label("Email service").select_option("mailchimp")
    tag = page.locator("#tag-mailchimp")
    assert tag.is_visible() and page.locator("#tag-generic").is_hidden()
    page.locator("button[data-copy='#tag-mailchimp']").click()
    page.locator("#tag-mailchimp-status", has_text="Copied to the clipboard.").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == tag.input_value() and "*|URL:EMAIL|*" in copied

    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(block_url)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the editor is {width} px wide at a 375 px viewport"
    live.shot(page, "block-375")

    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(f"{live.url}/admin/profiles/email:cara@shop.example")
    panel = page.locator("section", has=page.get_by_role("heading", name="What each block shows"))
    assert "Cart, else hello" in panel.inner_text() and "cart" in panel.inner_text()
    assert panel.locator("img").evaluate("img => img.naturalWidth") == 600
    page.goto(f"{live.url}/admin/blocks")
    assert "Cart, else hello" in page.locator("table").inner_text()
    live.shot(page, "blocks-1280")
