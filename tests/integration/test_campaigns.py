"""Campaigns on SQLite and PostgreSQL, sent to a real SMTP server (aiosmtpd on a free port):
the messages it receives are parsed with the stdlib ``email`` package, opened and clicked over
HTTP; replies come back through SendGrid's and Mailgun's inbound shapes; the report is checked
on a crafted history. The app runs without its in-process pipeline; tests apply the log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html as html_lib
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tidings.app import create_app
from tidings.campaigns.smtp import TokenBucket
from tidings.collect.store import CAMPAIGN_OF
from tidings.core.clock import FrozenClock
from tidings.core.settings import Settings
from tidings.testing import Credentials, prepare_database

REPLY_DOMAIN = "reply.shop.example"
MAILGUN_KEY = "mg-signing-key"
SENDGRID_SECRET = "sg-secret"
TEMPLATE = """<!doctype html><html><body>
<p>Hello {{ first_name | default('there') }}!</p>
<a href="https://shop.example/sale?ref=nl">Shop the sale</a>
{{ block(block_id) }}
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
</body></html>"""


@dataclass
class Inbox:
    """What the SMTP server accepted; ``refuse`` addresses get a 550 at RCPT."""

    port: int
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 <" + address + ">: no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK queued"

    def parsed(self) -> dict[str, EmailMessage]:
        out: dict[str, EmailMessage] = {}
        for _, rcpts, raw in self.messages:
            message = message_from_bytes(raw, policy=policy.default)
            assert isinstance(message, EmailMessage)
            out[rcpts[0]] = message
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sending_settings(db_url: str, data_dir: Path, inbox: Inbox, **more: Any) -> Settings:
    """An app's settings that send campaigns over SMTP to ``inbox``, at no rate limit to speak
    of (the web tests share them)."""
    return Settings(
        database_url=db_url,
        data_dir=data_dir,
        pipeline_in_process=False,
        public_url="http://testserver",
        smtp_host="127.0.0.1",
        smtp_port=inbox.port,
        smtp_security="none",
        smtp_from="Shop <news@shop.example>",
        campaign_send_rate=1000,
        **more,
    )


@pytest.fixture
def creds(db_url: str) -> Credentials:
    return prepare_database(db_url)


@pytest.fixture
def client(
    db_url: str, creds: Credentials, clock: FrozenClock, tmp_path: Path, inbox: Inbox
) -> Iterator[TestClient]:
    settings = sending_settings(
        db_url,
        tmp_path / "data",
        inbox,
        reply_domain=REPLY_DOMAIN,
        inbound_sendgrid_secret=SecretStr(SENDGRID_SECRET),
        inbound_mailgun_signing_key=SecretStr(MAILGUN_KEY),
    )
    with TestClient(create_app(settings, clock)) as test_client:
        yield test_client


def basic(creds: Credentials) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{creds.write_key}:".encode()).decode()}


def apply(client: TestClient) -> int:
    return int(client.app.state.container.pipeline.drain())  # type: ignore[attr-defined]


def people(client: TestClient, creds: Credentials, *who: tuple[str, str | None]) -> None:
    for email, first_name in who:
        traits: dict[str, Any] = {"email": email}
        if first_name:
            traits["first_name"] = first_name
        r = client.post(
            "/v1/identify",
            json={"userId": "u_" + email.split("@")[0], "traits": traits},
            headers=basic(creds),
        )
        assert r.status_code == 200, r.text
    apply(client)


def make_block(client: TestClient, admin: dict[str, str]) -> str:
    body = {
        "name": "Picks",
        "variants": [{"creative": {"app": "recently_viewed"}}],
        "fallback": {"kind": "collapse", "link_url": "https://shop.example/"},
    }
    r = client.post("/v1/blocks", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def campaign(
    client: TestClient, admin: dict[str, str], emails: list[str], html: str, **extra: Any
) -> str:
    body = {
        "name": "Spring sale",
        "subject": "Spring is here, {{ first_name | default('friend') }}",
        "html": html,
        "recipients": {"emails": emails},
        **extra,
    }
    r = client.post("/v1/campaigns", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def send(client: TestClient, admin: dict[str, str], campaign_id: str) -> dict[str, Any]:
    r = client.post(f"/v1/campaigns/{campaign_id}/send", headers=admin)
    assert r.status_code == 202, r.text
    for _ in range(500):  # the send is a background job of the app's event loop
        r = client.get(f"/v1/campaigns/{campaign_id}/send", headers=admin)
        status = dict(r.json())
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.02)
    raise AssertionError(f"the send did not finish: {status}")


def events_named(client: TestClient, admin: dict[str, str], ref: str, name: str) -> list[Any]:
    r = client.get(f"/v1/profiles/{ref}/events", headers=admin)
    assert r.status_code == 200, r.text
    return [e["message"] for e in r.json()["data"] if e["event"] == name]


def hrefs(message: EmailMessage) -> tuple[str, list[str], list[str]]:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    html = str(body.get_content())
    links = [html_lib.unescape(h) for h in re.findall(r'href="([^"]*)"', html)]
    images = [html_lib.unescape(s) for s in re.findall(r'src="([^"]*)"', html)]
    return html, links, images


def local(url: str) -> str:
    return url.replace("http://testserver", "")


def test_a_sent_campaign_arrives_personalised_wrapped_and_signed(
    client: TestClient, creds: Credentials, admin: dict[str, str], inbox: Inbox
) -> None:
    people(client, creds, ("ada+shop@example.com", "Ada"), ("bob@example.com", None))
    block_id = make_block(client, admin)
    html = TEMPLATE.replace("block(block_id)", f"block('{block_id}')")
    cid = campaign(client, admin, ["ada+shop@example.com", "bob@example.com"], html)

    status = send(client, admin, cid)
    assert (status["status"], status["total"], status["sent"], status["bounced"]) == (
        "done",
        2,
        2,
        0,
    )
    received = inbox.parsed()
    assert set(received) == {"ada+shop@example.com", "bob@example.com"}
    ada, bob = received["ada+shop@example.com"], received["bob@example.com"]
    assert ada["Subject"] == "Spring is here, Ada" and bob["Subject"] == "Spring is here, friend"
    assert ada["From"] == "Shop <news@shop.example>"
    reply_to = str(ada["Reply-To"])
    assert re.fullmatch(rf"reply\+[0-9a-f]{{20}}@{re.escape(REPLY_DOMAIN)}", reply_to)
    assert reply_to != str(bob["Reply-To"])
    assert ada["Message-ID"] and ada["Message-ID"] != bob["Message-ID"]
    assert str(ada["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"

    text, links, images = hrefs(ada)
    assert "Hello Ada!" in text and "Hello there!" in hrefs(bob)[0]
    clicks = [u for u in links if "/t/c/" in u]
    unsubscribe = [u for u in links if "/t/u/" in u]
    assert len(clicks) == 2 and len(unsubscribe) == 1  # the sale link and the block's link
    assert all(u.startswith("http://testserver/t/c/") for u in clicks)
    assert not [u for u in links if "shop.example/sale" in u]  # no link left unwrapped
    pixel = [s for s in images if "/t/o/" in s]
    creative = [s for s in images if f"/i/{block_id}" in s]
    assert len(pixel) == 1 and len(creative) == 1
    query = parse_qs(urlsplit(creative[0]).query)
    assert query == {"u": ["ada+shop@example.com"], "s": [cid]}
    assert "u=ada%2Bshop%40example.com" in creative[0]  # encoded: the + survives the query

    # The links are signed: a click redirects with UTM parameters, a tampered one does not.
    r = client.get(local(clicks[0]), follow_redirects=False)
    assert r.status_code == 302
    target = urlsplit(r.headers["location"])
    assert (target.netloc, target.path) == ("shop.example", "/sale")
    assert parse_qs(target.query)["utm_campaign"] == ["Spring sale"]
    token = local(clicks[0]).split("/t/c/")[1]
    forged = token[:12] + ("A" if token[12] != "A" else "B") + token[13:]
    assert client.get(f"/t/c/{forged}", follow_redirects=False).status_code == 400
    r = client.get(local(pixel[0]), headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Firefox"})
    assert r.status_code == 200

    apply(client)
    delivered = events_named(client, admin, "email:ada+shop@example.com", "Email Delivered")
    assert len(delivered) == 1
    props = delivered[0]["properties"]
    assert props["campaign_id"] == cid and props["email_subject"] == "Spring is here, Ada"
    opened = events_named(client, admin, "email:ada+shop@example.com", "Email Opened")
    assert opened[0]["properties"]["email_id"] == props["email_id"]
    assert opened[0]["properties"]["recipient_verified"] is True

    # A second send sends nobody twice.
    again = send(client, admin, cid)
    assert (again["sent"], again["skipped"]) == (0, 2)
    assert len(inbox.messages) == 2


def test_a_refused_recipient_is_bounced_and_suppressed_people_are_skipped(
    client: TestClient, creds: Credentials, admin: dict[str, str], inbox: Inbox
) -> None:
    people(
        client,
        creds,
        ("ada@example.com", "Ada"),
        ("gone@example.com", "Gus"),
        ("cy@example.com", "Cy"),
    )
    inbox.refuse.add("nobody@example.com")
    r = client.request(
        "DELETE", "/v1/profiles/email:gone@example.com", headers=admin, json={"reason": "gdpr"}
    )
    assert r.status_code in (200, 202), r.text
    # Cy unsubscribed from an earlier email (an ESP webhook, say): an Unsubscribed event.
    r = client.post(
        "/v1/track",
        json={"userId": "u_cy", "event": "Unsubscribed", "properties": {}},
        headers=basic(creds),
    )
    assert r.status_code == 200, r.text
    apply(client)
    emails = ["ada@example.com", "nobody@example.com", "gone@example.com", "cy@example.com"]
    cid = campaign(client, admin, emails, "<p>Hi {{ first_name }}</p>")
    status = send(client, admin, cid)
    assert (status["sent"], status["bounced"], status["skipped"]) == (1, 1, 2)
    assert [rcpts for _, rcpts, _ in inbox.messages] == [["ada@example.com"]]

    apply(client)
    bounced = events_named(client, admin, "email:nobody@example.com", "Email Bounced")
    assert len(bounced) == 1
    assert bounced[0]["context"]["traits"] == {"email": "nobody@example.com"}
    assert bounced[0]["properties"]["smtp_code"] == 550
    assert "no such user" in bounced[0]["properties"]["smtp_error"]


def test_the_rate_limit_holds(
    client: TestClient, creds: Credentials, admin: dict[str, str], inbox: Inbox
) -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    campaigns = client.app.state.container.campaigns  # type: ignore[attr-defined]
    campaigns.bucket_factory = lambda: TokenBucket(2.0, 1, monotonic=lambda: now[0], sleep=sleep)
    emails = [f"p{i}@example.com" for i in range(5)]
    cid = campaign(client, admin, emails, "<p>Hi</p>")
    assert send(client, admin, cid)["sent"] == 5
    # Two a second, one at a time: the first goes at once, each next one half a second on.
    assert sum(slept) == pytest.approx(2.0)
    assert len(inbox.messages) == 5


def mailgun_form(clock: FrozenClock, **fields: str) -> dict[str, str]:
    timestamp = str(int(clock.now().timestamp()))
    token = "t" * 50
    signature = hmac.new(
        MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature, **fields}


def test_replies_land_in_the_timeline(
    client: TestClient,
    creds: Credentials,
    admin: dict[str, str],
    inbox: Inbox,
    clock: FrozenClock,
) -> None:
    people(client, creds, ("ada@example.com", "Ada"), ("bob@example.com", "Bob"))
    cid = campaign(client, admin, ["ada@example.com", "bob@example.com"], "<p>Hi</p>")
    send(client, admin, cid)
    sent = inbox.parsed()
    reply_to = str(sent["ada@example.com"]["Reply-To"])

    # SendGrid Inbound Parse: multipart form, To is the reply address.
    form = {
        "to": reply_to,
        "from": "Ada <ada@example.com>",
        "subject": "Re: Spring is here, friend",
        "text": "Do you have it in blue?\n\nOn Mon, Nov 23, 2026 Shop wrote:\n> Hi",
        "headers": "Message-ID: <r1@mail.example>\nSubject: Re: Spring is here\n",
        "envelope": orjson.dumps({"to": [reply_to], "from": "ada@example.com"}).decode(),
        "charsets": '{"to":"UTF-8","text":"UTF-8"}',
    }
    files = {k: (None, v) for k, v in form.items()}
    r = client.post("/v1/inbound/sendgrid?secret=wrong", files=files)
    assert r.status_code == 401
    r = client.post(f"/v1/inbound/sendgrid?secret={SENDGRID_SECRET}", files=files)
    assert r.status_code == 200, r.text
    assert r.json()["matched"] is True and r.json()["matched_by"] == "token"

    # Mailgun route: sent to a plain address, matched by In-Reply-To; the signature is checked.
    bob_id = str(sent["bob@example.com"]["Message-ID"])
    fields = {
        "recipient": "news@shop.example",
        "sender": "bob@example.com",
        "from": "Bob <bob@example.com>",
        "subject": "Re: Spring",
        "body-plain": "Yes please!\n> quoted",
        "stripped-text": "Yes please!",
        "Message-Id": "<r2@mail.example>",
        "In-Reply-To": bob_id,
    }
    bad = {**mailgun_form(clock, **fields), "signature": "0" * 64}
    assert client.post("/v1/inbound/mailgun", data=bad).status_code == 401
    r = client.post("/v1/inbound/mailgun", data=mailgun_form(clock, **fields))
    assert r.status_code == 200, r.text
    assert r.json()["matched_by"] == "in_reply_to"
    # An email nobody can be matched to is answered 200 (no retries) and not recorded.
    stray = mailgun_form(clock, recipient="x@shop.example", sender="z@example.com", subject="?")
    r = client.post("/v1/inbound/mailgun", data=stray)
    assert r.status_code == 200 and r.json()["matched"] is False

    apply(client)
    (ada_reply,) = events_named(client, admin, "email:ada@example.com", "Email Replied")
    props = ada_reply["properties"]
    assert props["campaign_id"] == cid and props["snippet"] == "Do you have it in blue?"
    assert props["email_subject"].startswith("Spring is here") and "body" not in props
    (bob_reply,) = events_named(client, admin, "email:bob@example.com", "Email Replied")
    assert bob_reply["properties"]["snippet"] == "Yes please!"
    # The same post again is the same event (deduplicated by its Message-Id).
    client.post("/v1/inbound/mailgun", data=mailgun_form(clock, **fields))
    apply(client)
    assert len(events_named(client, admin, "email:bob@example.com", "Email Replied")) == 1
    report = client.get(f"/v1/campaigns/{cid}/report", headers=admin).json()
    assert report["replies"] == 2


def test_the_report_on_a_crafted_history(
    client: TestClient,
    creds: Credentials,
    admin: dict[str, str],
    inbox: Inbox,
    clock: FrozenClock,
) -> None:
    who = ("ada@example.com", "bob@example.com", "cy@example.com", "dee@example.com")
    people(client, creds, *((w, None) for w in who))
    inbox.refuse.add("dee@example.com")
    block_id = make_block(client, admin)
    html = TEMPLATE.replace("block(block_id)", f"block('{block_id}')")
    cid = campaign(client, admin, list(who), html)
    send(client, admin, cid)
    mail = {to: hrefs(m) for to, m in inbox.parsed().items()}

    def pixel(to: str) -> str:
        return local(next(s for s in mail[to][2] if "/t/o/" in s))

    def sale(to: str) -> str:
        return local(next(u for u in mail[to][1] if "/t/c/" in u))

    browser = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15"}
    # Two seconds after delivery a security scanner follows Ada's link in an ordinary browser:
    # its click still redirects, and counts as a machine's.
    clock.advance(timedelta(seconds=2))
    r = client.get(sale("ada@example.com"), headers=browser, follow_redirects=False)
    assert r.status_code == 302
    clock.advance(timedelta(minutes=5))
    # Ada: only Apple's Mail Privacy Protection fetched her pixel (a machine open).
    client.get(pixel("ada@example.com"), headers={"User-Agent": "Mozilla/5.0"})
    # Bob opens, clicks, and buys three days later: attributed.
    client.get(pixel("bob@example.com"), headers=browser)
    client.get(sale("bob@example.com"), headers=browser, follow_redirects=False)
    # Cy clicks (images blocked: no pixel) and buys seven days later: outside the window.
    client.get(sale("cy@example.com"), headers=browser, follow_redirects=False)
    # Bob's open renders the block: the variant he saw.
    image = next(s for s in mail["bob@example.com"][2] if f"/i/{block_id}" in s)
    assert client.get(local(image), headers=browser).status_code == 200

    def order(user: str, order_id: str, total: float) -> None:
        r = client.post(
            "/v1/track",
            json={
                "userId": user,
                "event": "Order Completed",
                "properties": {"order_id": order_id, "total": total, "products": []},
            },
            headers=basic(creds),
        )
        assert r.status_code == 200, r.text

    clock.advance(timedelta(days=3))
    order("u_bob", "o-1", 120.0)
    order("u_bob", "o-1", 120.0)  # the same order reported twice counts once
    clock.advance(timedelta(days=4))
    order("u_cy", "o-2", 80.0)
    apply(client)

    r = client.get(f"/v1/campaigns/{cid}/report", headers=admin)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["delivered"] == 3 and report["bounced"] == 1
    assert report["unique_opens"] == 2  # Bob, and Cy, whose click is an open
    assert report["machine_opens"] == 1  # Ada's, counted apart
    assert report["unique_clicks"] == 2 and report["click_to_open_rate"] == 1.0
    assert report["machine_clicks"] == 1  # the scanner's, seconds after delivery
    (scanned,) = events_named(client, admin, "email:ada@example.com", "Email Link Clicked")
    assert scanned["properties"]["machine_click"] is True
    assert scanned["properties"]["machine_kind"] == "scanner"
    assert "after delivery" in scanned["properties"]["machine_reason"]
    assert (report["conversions"], report["revenue"]) == (1, 120.0)
    variants = {(v["block_id"], v["variant"]): v for v in report["variants"]}
    (bobs,) = [v for v in variants.values() if v["conversions"] == 1]
    assert bobs["block_id"] == block_id and bobs["variant"] != "not_rendered"
    assert sum(v["recipients"] for v in variants.values()) == 3


def test_two_campaigns_over_several_connections_each_report_only_their_own(
    db_url: str,
    creds: Credentials,
    admin: dict[str, str],
    inbox: Inbox,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    settings = sending_settings(db_url, tmp_path / "data", inbox, smtp_connections=3)
    with TestClient(create_app(settings, clock)) as client:
        who = [f"p{i}@example.com" for i in range(7)]
        people(client, creds, *((w, None) for w in who))
        first = campaign(client, admin, who, "<p>One</p>", name="First")
        assert send(client, admin, first)["sent"] == 7
        second = campaign(client, admin, who, "<p>Two</p>", name="Second")
        assert send(client, admin, second)["sent"] == 7
        # Each person got each campaign once, over the three connections.
        got: dict[str, list[str]] = {}
        pixels: dict[tuple[str, str], str] = {}
        for _, rcpts, raw in inbox.messages:
            message = message_from_bytes(raw, policy=policy.default)
            assert isinstance(message, EmailMessage)
            cid = str(message["X-Tidings-Campaign"])
            got.setdefault(rcpts[0], []).append(cid)
            pixels[(cid, rcpts[0])] = local(next(s for s in hrefs(message)[2] if "/t/o/" in s))
        assert {to: sorted(c) for to, c in got.items()} == {w: sorted([first, second]) for w in who}
        browser = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1"}
        clock.advance(timedelta(minutes=5))
        for to in who[:2]:
            client.get(pixels[(first, to)], headers=browser)
        for to in who[2:5]:  # the second campaign's opens come after the first's, in the log
            client.get(pixels[(second, to)], headers=browser)
        reports = {
            cid: client.get(f"/v1/campaigns/{cid}/report", headers=admin).json()
            for cid in (first, second)
        }
        assert (reports[first]["unique_opens"], reports[second]["unique_opens"]) == (2, 3)
        assert reports[first]["delivered"] == reports[second]["delivered"] == 7
        container = client.app.state.container  # type: ignore[attr-defined]
        listed = {row["id"]: row for row in container.campaigns.overview()}
        assert (listed[first]["unique_opens"], listed[second]["unique_opens"]) == (2, 3)
        # The report reads a campaign's events through the email source's campaign index.
        assert "ix_events_email_campaign" in query_plan(container.db.engine)


def query_plan(engine: Any) -> str:
    sqlite = engine.dialect.name == "sqlite"
    expression = CAMPAIGN_OF[engine.dialect.name]
    mark = "?" if sqlite else "%s"
    sql = (
        "SELECT seq, payload FROM events WHERE source_id = 'src_email' "
        f"AND {expression} = {mark} AND seq > {mark} AND type = 'track' "
        f"AND event IN ({mark}, {mark}) ORDER BY seq LIMIT {mark}"
    )
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        if not sqlite:
            cursor.execute("SET enable_seqscan = off")  # a test's table is tiny
        cursor.execute(
            ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql,
            ("cmp_x", 0, "Email Opened", "Email Link Clicked", 10),
        )
        return " ".join(str(row) for row in cursor.fetchall())


def test_bad_campaigns_are_refused_with_the_field(
    client: TestClient, admin: dict[str, str]
) -> None:
    base = {"name": "x", "subject": "s", "recipients": {"emails": []}}
    r = client.post("/v1/campaigns", json={**base, "html": "{% if %}"}, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "html"
    r = client.post(
        "/v1/campaigns",
        json={**base, "html": "<p>x</p>", "recipients": {"emails": ["not-an-address"]}},
        headers=admin,
    )
    assert r.status_code == 422 and "recipients.emails" in r.json()["field"]
    r = client.post("/v1/campaigns/cmp_missing/send", headers=admin)
    assert r.status_code == 404 and r.json()["code"] == "campaign_not_found"
    cid = client.post(
        "/v1/campaigns", json={**base, "html": "{{ block('blk_nope') }}"}, headers=admin
    ).json()["id"]
    r = client.post(f"/v1/campaigns/{cid}/send", headers=admin)
    assert r.status_code == 400 and r.json()["code"] == "unknown_block"
