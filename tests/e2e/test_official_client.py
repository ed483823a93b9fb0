"""Segment's own Python library, pointed at a live ``tidings serve``, as a customer would use it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment.analytics import Client
from segment.analytics.version import VERSION

from tidings.testing import Credentials, ServerProcess, prepare_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class Live:
    def __init__(self, server: ServerProcess, creds: Credentials) -> None:
        self.server = server
        self.creds = creds

    def events(self, want: set[str], timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """The debugger's entries for the ``want`` messageIds, polled until all are there."""
        admin = {"Authorization": f"Bearer {self.creds.admin_token}"}
        url = f"{self.server.url}/v1/sources/{self.creds.source_id}/events"
        deadline = time.monotonic() + timeout
        while True:
            res = httpx.get(url, params={"limit": 1000, "kind": "event"}, headers=admin)
            assert res.status_code == 200, res.text
            found = {e["messageId"]: e for e in res.json()["events"]}
            if want <= found.keys() or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def rejections(self) -> list[dict[str, Any]]:
        admin = {"Authorization": f"Bearer {self.creds.admin_token}"}
        res = httpx.get(
            f"{self.server.url}/v1/sources/{self.creds.source_id}/events",
            params={"kind": "rejection"},
            headers=admin,
        )
        assert res.status_code == 200, res.text
        rejections: list[dict[str, Any]] = res.json()["rejections"]
        return rejections


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[Live]:
    creds = prepare_database(db_url)
    server = ServerProcess(db_url, log_path=tmp_path / "server.log").start()
    try:
        yield Live(server, creds)
    finally:
        server.stop()


class Errors:
    """Collects what the client's ``on_error`` hears, from its consumer thread."""

    def __init__(self) -> None:
        self.seen: list[tuple[Exception, list[dict[str, Any]]]] = []
        self.lock = threading.Lock()

    def __call__(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            self.seen.append((error, batch))


def _client(
    live: Live, errors: Errors, *, gzip: bool = False, write_key: str | None = None
) -> Client:
    return Client(
        write_key=write_key or live.creds.write_key,
        host=live.server.url,
        on_error=errors,
        gzip=gzip,
        sync_mode=False,
        upload_size=3,
        upload_interval=0.05,
        max_retries=2,
        timeout=10,
    )


def _send_all_types(client: Client, tag: str) -> dict[str, dict[str, Any]]:
    """One call of each kind; returns what was sent by messageId."""
    past = datetime.now(UTC) - timedelta(hours=2)
    user = f"user-{tag}"
    sent: dict[str, dict[str, Any]] = {}

    def mid(kind: str) -> str:
        message_id = f"{tag}-{kind}-{uuid.uuid4()}"
        sent[message_id] = {"type": kind}
        return message_id

    m = mid("identify")
    sent[m] |= {
        "userId": user,
        "traits": {"email": f"{tag}@example.com", "plan": "pro", "logins": 3},
    }
    client.identify(user, sent[m]["traits"], message_id=m)

    m = mid("track")
    props = {"revenue": 12.5, "currency": "EUR", "items": [{"sku": "a-1", "qty": 2}]}
    sent[m] |= {"userId": user, "event": "Order Completed", "properties": props}
    client.track(user, "Order Completed", props, message_id=m)

    m = mid("track")
    sent[m] |= {
        "anonymousId": f"anon-{tag}",
        "event": "Signed Up",
        "properties": {},
        "timestamp": past,
    }
    client.track(anonymous_id=f"anon-{tag}", event="Signed Up", timestamp=past, message_id=m)

    m = mid("page")
    sent[m] |= {
        "userId": user,
        "name": "Pricing",
        "category": "Docs",
        "properties": {"path": "/pricing"},
    }
    client.page(user, "Docs", "Pricing", {"path": "/pricing"}, message_id=m)

    m = mid("screen")
    sent[m] |= {"userId": user, "name": "Home", "properties": {"tab": "feed"}}
    client.screen(user, name="Home", properties={"tab": "feed"}, message_id=m)

    m = mid("group")
    sent[m] |= {"userId": user, "groupId": f"org-{tag}", "traits": {"name": "Acme", "seats": 40}}
    client.group(user, f"org-{tag}", {"name": "Acme", "seats": 40}, message_id=m)

    m = mid("alias")
    sent[m] |= {"userId": user, "previousId": f"anon-{tag}"}
    client.alias(f"anon-{tag}", user, message_id=m)

    m = mid("identify")
    sent[m] |= {"userId": "4711", "traits": {}}  # a numeric id, sent as a string
    client.identify(4711, message_id=m)
    return sent


def _assert_stored(
    entry: dict[str, Any], want: dict[str, Any], before: datetime, after: datetime
) -> None:
    payload = entry["payload"]
    assert entry["type"] == payload["type"] == want["type"]
    assert payload["messageId"] == entry["messageId"]
    for key in (
        "userId",
        "anonymousId",
        "event",
        "properties",
        "traits",
        "groupId",
        "previousId",
        "name",
        "category",
    ):
        if key in want:
            assert payload[key] == want[key], (key, payload)
    assert entry["event"] == want.get("event")
    assert "writeKey" not in payload
    assert payload["context"]["library"] == {"name": "analytics-python", "version": VERSION}
    received = datetime.fromisoformat(payload["receivedAt"])
    assert before - timedelta(seconds=1) <= received <= after + timedelta(seconds=1)
    # The client sends its call time as `timestamp` and `sentAt` per batch; the server corrects
    # the skew: timestamp = receivedAt - (sentAt - call time), which lands near the call time.
    stored = datetime.fromisoformat(payload["timestamp"])
    called = want.get("timestamp")
    if called is not None:
        assert datetime.fromisoformat(payload["originalTimestamp"]) == called.replace(
            microsecond=called.microsecond // 1000 * 1000
        )
        assert abs(stored - called) < timedelta(minutes=1)
    else:
        assert before - timedelta(minutes=1) <= stored <= after + timedelta(minutes=1)
    assert "sentAt" in payload


def test_every_call_of_the_python_library_is_stored_as_sent(live: Live) -> None:
    errors = Errors()
    before = datetime.now(UTC)
    plain = _client(live, errors)
    zipped = _client(live, errors, gzip=True)
    try:
        sent = _send_all_types(plain, "plain")
        sent |= _send_all_types(zipped, "gzip")
        plain.flush()
        zipped.flush()
    finally:
        plain.shutdown()
        zipped.shutdown()
    after = datetime.now(UTC)
    assert errors.seen == []

    stored = live.events(set(sent))
    assert set(sent) <= stored.keys(), f"missing: {set(sent) - stored.keys()}"
    for message_id, want in sent.items():
        _assert_stored(stored[message_id], want, before, after)
    assert live.rejections() == []


def test_a_resent_batch_is_stored_once(live: Live) -> None:
    errors = Errors()
    client = _client(live, errors)
    try:
        for _ in range(3):  # what a retry after a lost response looks like
            client.track("u-1", "Clicked", message_id="resent-1")
        client.flush()
    finally:
        client.shutdown()
    assert errors.seen == []
    res = httpx.get(
        f"{live.server.url}/v1/sources/{live.creds.source_id}/events",
        headers={"Authorization": f"Bearer {live.creds.admin_token}"},
    )
    ids = [e["messageId"] for e in res.json()["events"]]
    assert ids == ["resent-1"]


def test_an_unknown_write_key_reaches_on_error_as_a_401(live: Live) -> None:
    errors = Errors()
    client = _client(live, errors, write_key="wk_not-a-key-of-this-server")
    try:
        client.track("u-1", "Clicked", message_id="lost-1")
        client.identify("u-1", {"a": 1}, message_id="lost-2")
        client.flush()
    finally:
        client.shutdown()
    assert errors.seen, "on_error was not called"
    statuses = {getattr(err, "status", None) for err, _ in errors.seen}
    codes = {getattr(err, "code", None) for err, _ in errors.seen}
    assert statuses == {401}
    assert codes == {"invalid_write_key"}
    reported = {msg["messageId"] for _, batch in errors.seen for msg in batch}
    assert reported == {"lost-1", "lost-2"}
    assert live.events(set(), timeout=0) == {}
