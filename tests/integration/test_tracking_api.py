"""Tracking over HTTP on SQLite and PostgreSQL: wrapped links and pixels, ESP webhooks, and the
events they record reaching the events log and, after the pipeline runs, the person's timeline.

The app runs without its in-process pipeline; each test applies the log itself (``apply``).
"""

from __future__ import annotations

import base64
import html as html_lib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tidings.app import create_app
from tidings.core.clock import FrozenClock
from tidings.core.settings import Settings, WebhookMapping
from tidings.testing import Credentials, prepare_database
from tidings.tracking.webhooks import mandrill_signature

EMAIL = """<!doctype html>
<html><body>
<p>Hello *|FNAME|*, our spring sale is on.</p>
<a href="https://shop.example/sale?ref=nl&amp;utm_source=spring-mail#top">Shop the sale</a>
<a href="https://shop.example/account?e=*|EMAIL|*">Your account</a>
<a href="mailto:help@shop.example">Help</a>
<a href="*|UNSUB|*">Unsubscribe</a>
</body></html>
"""
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())


def sendgrid_public_key() -> str:
    der = SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def tracking_settings(db_url: str, data_dir: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=db_url,
        data_dir=data_dir,
        pipeline_in_process=False,
        webhook_sendgrid_public_key=sendgrid_public_key(),
        webhook_mandrill_key=SecretStr("mandrill-key"),
        webhook_postmark_token=SecretStr("pm-token"),
        webhook_mappings={
            "brevo": WebhookMapping(
                secret=SecretStr("hush"),
                event_type="event",
                types={"delivered": "Email Delivered"},
                email="email",
                event_id="id",
            )
        },
        **extra,
    )


@pytest.fixture
def creds(db_url: str) -> Credentials:
    return prepare_database(db_url)


@pytest.fixture
def client(
    db_url: str, creds: Credentials, clock: FrozenClock, tmp_path: Path
) -> Iterator[TestClient]:
    app = create_app(tracking_settings(db_url, tmp_path / "data"), clock)
    with TestClient(app) as test_client:
        yield test_client


def apply(client: TestClient) -> int:
    return int(client.app.state.container.pipeline.drain())  # type: ignore[attr-defined]


def count_events(client: TestClient, source_id: str) -> int:
    store = client.app.state.container.collect_store  # type: ignore[attr-defined]
    return int(store.count_events(source_id))


def wrap(client: TestClient, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    payload = {
        "html": EMAIL,
        "campaign_id": "spring",
        "campaign_name": "Spring sale",
        "email_id": "em_1",
        "email_subject": "Spring is here",
        "esp": "mailchimp",
        **body,
    }
    r = client.post("/v1/emails/wrap", json=payload, headers=admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


def links(html: str) -> tuple[list[str], str]:
    hrefs = [html_lib.unescape(h) for h in re.findall(r'href="([^"]*)"', html)]
    (pixel,) = re.findall(r'<img src="([^"]*)"', html)
    return [h for h in hrefs if "/t/c/" in h], html_lib.unescape(pixel)


def as_sent(url: str, email: str = "ada@example.com") -> str:
    """What the recipient's client fetches once the ESP filled in its merge tags."""
    return url.replace("*|EMAIL|*", email).replace("http://testserver", "")


def timeline(client: TestClient, admin: dict[str, str], ref: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/profiles/{ref}/events", headers=admin)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def debugger(client: TestClient, admin: dict[str, str], source_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/sources/{source_id}/events", headers=admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_wrapped_email_opens_and_clicks_reach_the_timeline(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    # The shopper is known by user id and email from the shop's own identify call.
    basic = base64.b64encode(f"{creds.write_key}:".encode()).decode()
    r = client.post(
        "/v1/identify",
        json={"userId": "u_ada", "traits": {"email": "Ada@Example.com"}},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200, r.text

    out = wrap(client, admin)
    assert out["links_wrapped"] == 2 and out["pixel_added"] is True
    assert {s["reason"] for s in out["skipped"]} == {
        "a mailto: link",
        "an unsubscribe link (the ESP tracks it)",
    }
    assert "Hello *|FNAME|*, our spring sale is on." in out["html"]
    clicks, pixel = links(out["html"])

    r = client.get(as_sent(pixel), headers={"User-Agent": "Mozilla/5.0 (Macintosh)"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    assert r.content.startswith(b"GIF89a") and "no-store" in r.headers["cache-control"]

    r = client.get(as_sent(clicks[0]), follow_redirects=False)
    assert r.status_code == 302
    target = urlsplit(r.headers["location"])
    assert (target.netloc, target.path, target.fragment) == ("shop.example", "/sale", "top")
    query = parse_qs(target.query)
    assert query["ref"] == ["nl"] and query["utm_source"] == ["spring-mail"]  # kept, not overridden
    assert query["utm_medium"] == ["email"] and query["utm_campaign"] == ["Spring sale"]
    assert query["utm_content"] == ["link-1"]

    r = client.get(as_sent(clicks[1]), follow_redirects=False)
    assert r.headers["location"].startswith("https://shop.example/account?e=ada@example.com&utm_")

    assert count_events(client, "src_email") == 3
    apply(client)
    events = timeline(client, admin, "user_id:u_ada")
    names = [e["event"] for e in events]
    assert names.count("Email Link Clicked") == 2 and "Email Opened" in names
    opened = next(e for e in events if e["event"] == "Email Opened")["message"]
    machine = {"machine_open", "machine_kind", "machine_reason"}  # when machine.py is there
    assert {k: v for k, v in opened["properties"].items() if k not in machine} == {
        "email_id": "em_1",
        "email_subject": "Spring is here",
        "campaign_id": "spring",
        "campaign_name": "Spring sale",
        "recipient_verified": False,
        "ip_class": "unknown",
    }
    assert opened["context"]["traits"] == {"email": "ada@example.com"}
    assert opened["context"]["userAgent"] == "Mozilla/5.0 (Macintosh)"
    clicked = [e["message"]["properties"] for e in events if e["event"] == "Email Link Clicked"]
    assert {c["link_url"] for c in clicked} == {
        "https://shop.example/sale?ref=nl&utm_source=spring-mail#top",
        "https://shop.example/account?e=ada@example.com",
    }
    assert all(e["flags"] == [] for e in events)


def _tampered(url: str) -> str:
    path, _, query = url.partition("?")
    head, token = path.rsplit("/", 1)
    suffix = ".gif" if token.endswith(".gif") else ""
    token = token.removesuffix(".gif")
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    return f"{head}/{flipped}{suffix}" + (f"?{query}" if query else "")


def test_forged_pixel_answers_the_gif_and_records_nothing(
    client: TestClient, admin: dict[str, str]
) -> None:
    _, pixel = links(wrap(client, admin)["html"])
    for url in (_tampered(as_sent(pixel)), "/t/o/bm90LWEtdG9rZW4.gif", "/t/o/%00.gif"):
        r = client.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    assert count_events(client, "src_email") == 0
    counts = debugger(client, admin, "src_email")["rejection_counts"]
    assert sum(counts.values()) == 3 and counts.get("bad_signature") == 1


def test_forged_or_altered_clicks_never_redirect(client: TestClient, admin: dict[str, str]) -> None:
    clicks, pixel = links(wrap(client, admin)["html"])
    bad = [
        _tampered(as_sent(clicks[0])),
        "/t/c/" + base64.urlsafe_b64encode(b"\x01abc" + b"x" * 40).decode().rstrip("="),
        pixel.replace("/t/o/", "/t/c/").removesuffix(".gif").replace("http://testserver", ""),
        # The merge value tries to move the link to another host.
        as_sent(clicks[1]).replace("m0=ada@example.com", "m0=x@evil.example%2F"),
    ]
    bad[2] = bad[2].split("?")[0].removesuffix(".gif")
    for url in bad:
        r = client.get(url, follow_redirects=False)
        assert r.status_code in (302, 400), url
        if r.status_code == 302:  # only the host-preserving case may redirect
            assert urlsplit(r.headers["location"]).netloc == "shop.example"
            continue
        assert "location" not in r.headers
        assert r.json()["success"] is False and r.json()["field"] == "token"
    r = client.get(bad[0], follow_redirects=False, headers={"Accept": "text/html,*/*"})
    assert r.status_code == 400 and "This link is not valid" in r.text
    assert count_events(client, "src_email") <= 1  # the host-preserving click only


def test_expired_links_record_nothing_but_still_redirect(
    db_url: str, creds: Credentials, clock: FrozenClock, tmp_path: Path, admin: dict[str, str]
) -> None:
    settings = tracking_settings(db_url, tmp_path / "data", tracking_link_max_age_days=1)
    with TestClient(create_app(settings, clock)) as client:
        clicks, pixel = links(wrap(client, admin)["html"])
        clock.advance(timedelta(days=2))
        assert client.get(as_sent(pixel)).status_code == 200
        r = client.get(as_sent(clicks[0]), follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"].startswith("https://shop.example/")
        assert count_events(client, "src_email") == 0
        assert debugger(client, admin, "src_email")["rejection_counts"] == {"token_expired": 2}


def test_rotated_secret_keys(
    db_url: str, creds: Credentials, clock: FrozenClock, tmp_path: Path, admin: dict[str, str]
) -> None:
    def app_with(**keys: Any) -> TestClient:
        return TestClient(create_app(tracking_settings(db_url, tmp_path / "d", **keys), clock))

    old, new = SecretStr("old-" + "k" * 32), SecretStr("new-" + "k" * 32)
    with app_with(secret_key=old) as client:
        clicks, _ = links(wrap(client, admin)["html"])
    with app_with(secret_key=new, secret_keys_previous=[old]) as client:
        assert client.get(as_sent(clicks[0]), follow_redirects=False).status_code == 302
    with app_with(secret_key=new) as client:
        r = client.get(as_sent(clicks[0]), follow_redirects=False)
        assert r.status_code == 400 and r.json()["code"] == "unknown_key"


def test_wrap_needs_an_admin_token_and_a_recipient_tag(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = {"html": EMAIL, "campaign_id": "c", "esp": "mailchimp"}
    assert client.post("/v1/emails/wrap", json=body).status_code == 401
    r = client.post("/v1/emails/wrap", json={**body, "esp": "postmark"}, headers=admin)
    assert r.status_code == 400 and r.json()["field"] == "recipient_tag"
    r = client.post("/v1/emails/wrap", json={**body, "esp": "smoke-signals"}, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "esp"
    out = wrap(client, admin, esp="postmark", recipient_tag="{{email}}")
    assert "u={{email}}" in out["html"]


def sendgrid_post(client: TestClient, events: Any, *, sign: bool = True) -> Any:
    body = orjson.dumps(events) + b"\r\n"
    timestamp = "1764000000"
    signature = SENDGRID_KEY.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode()
        if sign
        else base64.b64encode(b"nope").decode(),
    }
    return client.post("/v1/webhooks/sendgrid", content=body, headers=headers)


SG_EVENTS = [
    {
        "email": "grace@example.com",
        "timestamp": 1763900000,
        "event": "processed",
        "sg_event_id": "e0",
        "sg_message_id": "m1.filter",
    },
    {
        "email": "grace@example.com",
        "timestamp": 1763900001,
        "event": "delivered",
        "sg_event_id": "e1",
        "sg_message_id": "m1.filter",
        "campaign_id": "spring",
    },
    {
        "email": "grace@example.com",
        "timestamp": 1763900100,
        "event": "open",
        "sg_event_id": "e2",
        "sg_message_id": "m1.filter",
        "sg_machine_open": True,
        "useragent": "Mozilla/5.0",
        "ip": "17.58.0.1",
    },
    {
        "email": "grace@example.com",
        "timestamp": 1763900200,
        "event": "click",
        "url": "https://shop.example/p/1",
        "sg_event_id": "e3",
        "sg_message_id": "m1.filter",
    },
    {"event": "bounce", "timestamp": 1763900300, "sg_event_id": "e4"},  # no email: rejected
]


def test_sendgrid_webhook_verified_deduplicated_and_in_the_timeline(
    client: TestClient, admin: dict[str, str]
) -> None:
    r = sendgrid_post(client, SG_EVENTS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 3 and body["ignored"] == {"processed": 1}
    assert [x["code"] for x in body["rejected"]] == ["no_user_anon_id"]
    # SendGrid retries a post it did not see acknowledged: nothing is counted twice.
    assert sendgrid_post(client, SG_EVENTS).status_code == 200
    assert count_events(client, "src_webhook_sendgrid") == 3
    apply(client)
    events = timeline(client, admin, "email:grace@example.com")
    assert [e["event"] for e in events] == ["Email Link Clicked", "Email Opened", "Email Delivered"]
    opened = events[1]["message"]
    assert opened["properties"]["machine_open"] is True
    assert opened["timestamp"] == "2025-11-23T12:15:00.000Z"


def test_bad_webhooks_get_4xx_and_are_kept_for_the_debugger(
    client: TestClient, admin: dict[str, str]
) -> None:
    r = sendgrid_post(client, SG_EVENTS, sign=False)
    assert r.status_code == 401 and r.json()["code"] == "bad_signature"
    r = client.post("/v1/webhooks/sendgrid", content=b"[]")
    assert r.status_code == 401 and r.json()["code"] == "missing_signature"
    r = sendgrid_post(client, {"not": "an array"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_payload"
    rejections = debugger(client, admin, "src_webhook_sendgrid")["rejections"]
    assert [x["code"] for x in rejections] == [
        "invalid_payload",
        "missing_signature",
        "bad_signature",
    ]
    assert rejections[2]["payload"].startswith('[{"email":"grace@example.com"')
    assert count_events(client, "src_webhook_sendgrid") == 0
    r = client.post("/v1/webhooks/sparkpost", content=b"[]")
    assert r.status_code == 404 and r.json()["field"] == "esp"


def test_mandrill_postmark_and_generic_webhooks(client: TestClient, admin: dict[str, str]) -> None:
    events = [
        {
            "event": "open",
            "ts": 1763900000,
            "_id": "abc",
            "msg": {
                "email": "lin@example.com",
                "subject": "Hi",
                "_id": "abc",
                "metadata": {"campaign_id": "spring"},
            },
        }
    ]
    params = [("mandrill_events", orjson.dumps(events).decode())]
    url = "http://testserver/v1/webhooks/mandrill"
    signature = mandrill_signature("mandrill-key", url, params)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert client.head("/v1/webhooks/mandrill").status_code == 200
    r = client.post(
        "/v1/webhooks/mandrill",
        content=urlencode(params),
        headers={**form, "X-Mandrill-Signature": signature},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    r = client.post(
        "/v1/webhooks/mandrill",
        content=urlencode(params),
        headers={**form, "X-Mandrill-Signature": "forged"},
    )
    assert r.status_code == 401

    record = {
        "RecordType": "Click",
        "Recipient": "lin@example.com",
        "MessageID": "pm1",
        "ReceivedAt": "2025-11-23T12:00:00.1234567Z",
        "OriginalLink": "https://x.example/",
    }
    r = client.post(
        "/v1/webhooks/postmark", json=record, headers={"X-Tidings-Webhook-Token": "pm-token"}
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    assert client.post("/v1/webhooks/postmark", json=record).status_code == 401

    r = client.post(
        "/v1/webhooks/brevo",
        json=[{"event": "delivered", "email": "lin@example.com", "id": 9}],
        headers={"X-Tidings-Webhook-Secret": "hush"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text

    apply(client)
    names = [e["event"] for e in timeline(client, admin, "email:lin@example.com")]
    assert sorted(names) == ["Email Delivered", "Email Link Clicked", "Email Opened"]


def test_cli_wraps_a_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tidings.cli import app

    source = tmp_path / "email.html"
    source.write_text(EMAIL)
    out = tmp_path / "wrapped.html"

    def wrap_cli(*args: str) -> Any:
        argv = ["emails", "wrap", str(source), "--campaign-id", "spring", *args]
        return CliRunner().invoke(app, argv, env={"TIDINGS_DATA_DIR": str(tmp_path / "data")})

    r = wrap_cli("--esp", "mailchimp", "--base-url", "https://t.shop.example", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "wrapped 2 links" in r.output
    clicks = [h for h in re.findall(r'href="([^"]*)"', out.read_text()) if "/t/c/" in h]
    assert len(clicks) == 2 and all(c.startswith("https://t.shop.example/t/c/") for c in clicks)
    assert (tmp_path / "data" / "secret_key").exists()
    r = wrap_cli("--esp", "postmark", "--base-url", "https://t")
    assert r.exit_code == 2 and "recipient_tag" in r.output
