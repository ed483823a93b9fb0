"""The admin UI's campaigns pages and the dashboard's email panels over real HTTP (TestClient),
on SQLite and PostgreSQL, on a crafted history: a campaign sent from the page to a real SMTP
server (aiosmtpd), its pixel fetched by Apple's proxy and by a person, a click, a render."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.test_campaigns import (
    TEMPLATE,
    Inbox,
    hrefs,
    local,
    make_block,
    people,
    sending_settings,
)
from tests.integration.test_web_auth import EMAIL, PASSWORD, csrf_of, login
from tests.integration.test_web_pages import text_of
from tidings.app import create_app
from tidings.core.clock import FrozenClock
from tidings.testing import Credentials

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15"}
APPLE_PROXY = {"User-Agent": "Mozilla/5.0"}  # what Mail Privacy Protection's fetch sends


@pytest.fixture
def ui(
    db_url: str, tmp_path: Path, creds: Credentials, clock: FrozenClock, inbox: Inbox
) -> Iterator[TestClient]:
    """The signed-in admin UI of an app that sends over SMTP to ``inbox``."""
    settings = sending_settings(db_url, tmp_path / "data", inbox)
    with TestClient(create_app(settings, clock)) as client:
        client.app.state.container.web.users.create(EMAIL, PASSWORD)  # type: ignore[attr-defined]
        assert login(client).status_code == 303
        yield client


def new_campaign(client: TestClient, admin: dict[str, str], emails: list[str], html: str) -> str:
    body = {"name": "Spring <sale>", "subject": "Spring is here", "html": html}
    r = client.post("/v1/campaigns", json={**body, "recipients": {"emails": emails}}, headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def send_from_page(client: TestClient, campaign_id: str) -> dict[str, Any]:
    page = client.get(f"/admin/campaigns/{campaign_id}")
    assert page.status_code == 200 and 'id="send-button"' in page.text
    r = client.post(
        f"/admin/campaigns/{campaign_id}/send",
        data={"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/admin/campaigns/{campaign_id}#send"
    for _ in range(500):  # the send is a background job of the app's event loop
        status: dict[str, Any] = client.get(f"/admin/campaigns/{campaign_id}/progress").json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.02)
    raise AssertionError(f"the send did not finish: {status}")


def stats_of(html: str, section: str) -> dict[str, str]:
    """``data-key → shown value`` of one ``<dl class="stats" id=…>``."""
    found = re.search(rf'<dl class="stats" id="{section}">(.*?)</dl>', html, re.S)
    assert found, section
    pairs = re.findall(r'data-key="([^"]+)"><dt>[^<]*</dt><dd>([^<]*)</dd>', found.group(1))
    return dict(pairs)


@pytest.fixture
def history(
    ui: TestClient, creds: Credentials, admin: dict[str, str], inbox: Inbox, clock: FrozenClock
) -> str:
    """A campaign sent from its page to four people (one refused): Ada's pixel fetched only by
    Apple's proxy, Bob opens (rendering the block) and clicks, Cy clicks with images off."""
    who = ("ada@example.com", "bob@example.com", "cy@example.com", "dee@example.com")
    people(ui, creds, *((w, None) for w in who))
    inbox.refuse.add("dee@example.com")
    block_id = make_block(ui, admin)
    campaign_id = new_campaign(
        ui, admin, list(who), TEMPLATE.replace("block(block_id)", f"block('{block_id}')")
    )
    assert send_from_page(ui, campaign_id)["status"] == "done"
    mail = {to: hrefs(m) for to, m in inbox.parsed().items()}

    def pixel(to: str) -> str:
        return local(next(s for s in mail[to][2] if "/t/o/" in s))

    def sale(to: str) -> str:
        return local(next(u for u in mail[to][1] if "/t/c/" in u))

    clock.advance(timedelta(minutes=5))
    assert ui.get(pixel("ada@example.com"), headers=APPLE_PROXY).status_code == 200
    assert ui.get(pixel("bob@example.com"), headers=BROWSER).status_code == 200
    image = next(s for s in mail["bob@example.com"][2] if f"/i/{block_id}" in s)
    assert ui.get(local(image), headers=BROWSER).status_code == 200
    assert ui.get(sale("bob@example.com"), headers=BROWSER, follow_redirects=False).is_redirect
    assert ui.get(sale("cy@example.com"), headers=BROWSER, follow_redirects=False).is_redirect
    c = ui.app.state.container  # type: ignore[attr-defined]
    ui.portal.call(c.decisions.flush)  # type: ignore[attr-defined]
    c.pipeline.drain()
    return campaign_id


def test_the_dashboard_shows_renders_and_todays_opens_and_clicks_apart(
    ui: TestClient, history: str
) -> None:
    body = ui.get("/admin").text
    today = stats_of(body, "email-today")
    assert today == {
        "human_opens": "1",  # Bob
        "machine_opens": "1",  # Apple's proxy, for Ada
        "human_clicks": "2",  # Bob and Cy
        "machine_clicks": "0",
    }
    words = text_of(body)
    assert "1 renders in the last 60 minutes" in words
    assert "Opened by people 1 1 1" in words  # last hour, peak, this minute
    assert "Fetched by machines 0 0 0" in words  # the proxy fetched the pixel, not the block
    # Each chart has its own ids, so each is labelled by its own title.
    for key in ("events-chart", "renders-chart", "email-chart"):
        assert body.count(f'id="{key}-title"') == 1, key


def test_the_dashboard_is_empty_but_whole_before_any_email(ui: TestClient) -> None:
    body = ui.get("/admin").text
    assert "No block was rendered in the last hour" in body
    assert set(stats_of(body, "email-today").values()) == {"0"}


def test_the_campaigns_list_and_report_show_what_happened(ui: TestClient, history: str) -> None:
    listing = ui.get("/admin/campaigns")
    assert listing.status_code == 200
    assert 'aria-current="page"' in listing.text and "Spring &lt;sale&gt;" in listing.text
    words = text_of(listing.text)
    assert "Spring <sale> " + history + " Spring is here done 3 2 2" in words

    page = ui.get(f"/admin/campaigns/{history}").text
    shown = stats_of(page, "report-stats")
    report = ui.app.state.container.campaigns  # type: ignore[attr-defined]
    expected = ui.portal.call(report.report, history)  # type: ignore[attr-defined]
    assert shown["delivered"] == "3" == str(expected["delivered"])
    assert shown["bounced"] == "1"
    assert shown["unique_opens"] == "2"  # Bob, and Cy, whose click is an open
    assert shown["machine_opens"] == "1"  # Ada's, counted apart
    assert shown["unique_clicks"] == "2" and shown["click_to_open_rate"] == "100.0%"
    assert (shown["conversions"], shown["revenue"]) == ("0", "0.00")
    rows = re.findall(r"<tr>.*?</tr>", page.split('id="variants"')[1], re.S)[1:]
    assert len(rows) == len(expected["variants"]) >= 2  # Bob's variant, and not rendered
    assert any("not_rendered" in row for row in rows)
    assert "Sent 3 of 4 Bounced 1" in text_of(page)  # Dee was refused at RCPT


def test_send_needs_the_forms_csrf_token_and_a_session(
    ui: TestClient, creds: Credentials, admin: dict[str, str], inbox: Inbox
) -> None:
    people(ui, creds, ("ada@example.com", None))
    campaign_id = new_campaign(ui, admin, ["ada@example.com"], "<p>Hi</p>")
    for data in ({}, {"csrf_token": "forged"}):
        r = ui.post(f"/admin/campaigns/{campaign_id}/send", data=data, follow_redirects=False)
        assert r.status_code == 403, r.text
    assert inbox.messages == []
    assert ui.get(f"/admin/campaigns/{campaign_id}/progress").json()["status"] == "not_sent"
    ui.cookies.clear()
    r = ui.get(f"/admin/campaigns/{campaign_id}/progress")
    assert r.status_code == 401 and r.json()["code"] == "login_required"


def test_a_send_that_cannot_start_says_why_on_the_page(
    ui: TestClient, admin: dict[str, str], inbox: Inbox
) -> None:
    campaign_id = new_campaign(ui, admin, ["ada@example.com"], "{{ block('blk_missing') }}")
    page = ui.get(f"/admin/campaigns/{campaign_id}").text
    r = ui.post(f"/admin/campaigns/{campaign_id}/send", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 400
    assert "blk_missing" in text_of(r.text) and 'role="alert"' in r.text
    assert ui.get("/admin/campaigns/cmp_nope").status_code == 404
