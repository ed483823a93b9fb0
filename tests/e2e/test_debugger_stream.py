"""The live debugger's server-sent events, read from a live ``tidings serve`` as a browser would."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tidings.testing import Credentials, ServerProcess, prepare_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass
class Live:
    server: ServerProcess
    creds: Credentials

    @property
    def stream_url(self) -> str:
        return f"{self.server.url}/v1/sources/{self.creds.source_id}/events/stream"

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds.admin_token}"}


@pytest.fixture
def live(sqlite_url: str, tmp_path: Path) -> Iterator[Live]:
    creds = prepare_database(sqlite_url)
    server = ServerProcess(
        sqlite_url, env={"TIDINGS_DEBUGGER_POLL_S": "0.1"}, log_path=tmp_path / "server.log"
    ).start()
    try:
        yield Live(server, creds)
    finally:
        server.stop()


@dataclass
class Message:
    event: str | None = None
    data: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads("\n".join(self.data))


def messages(lines: Iterator[str]) -> Iterator[Message]:
    """Server-sent events as the EventSource spec splits them: fields until a blank line."""
    current = Message()
    for line in lines:
        if line == "":
            yield current
            current = Message()
        elif line.startswith(":"):
            current.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                current.event = value
            elif name == "data":
                current.data.append(value)


def test_the_stream_shows_events_and_rejections_as_they_arrive(live: Live) -> None:
    wanted = {"event", "rejection"}
    got: dict[str, list[dict[str, Any]]] = {"event": [], "rejection": []}
    with (
        httpx.Client(base_url=live.server.url, auth=(live.creds.write_key, "")) as sender,
        httpx.stream(
            "GET",
            live.stream_url,
            headers=live.admin,
            params={"max_seconds": 60},
            timeout=httpx.Timeout(10, read=30),
        ) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        incoming = messages(stream.iter_lines())
        hello = next(incoming)
        assert "connected" in hello.comments

        # Sent after connecting: the stream shows what arrives, not what was already there.
        ok = sender.post(
            "/v1/track",
            json={
                "userId": "u-1",
                "event": "Opened",
                "messageId": "sse-ok-1",
                "writeKey": "wk_hidden",
            },
        )
        assert ok.status_code == 200, ok.text
        bad = sender.post(
            "/v1/track",
            json={"userId": "u-1", "messageId": "sse-bad-1", "properties": {"subject": "Hi"}},
        )
        assert bad.status_code == 400
        assert bad.json()["code"] == "missing_field"

        deadline = time.monotonic() + 30
        for message in incoming:
            if message.event in wanted:
                got[message.event].append(message.json())
            if all(got[k] for k in wanted) or time.monotonic() > deadline:
                break

    assert [e["messageId"] for e in got["event"]] == ["sse-ok-1"]
    event = got["event"][0]
    assert event["kind"] == "event"
    assert event["type"] == "track"
    assert event["event"] == "Opened"
    assert event["payload"]["userId"] == "u-1"
    assert "writeKey" not in event["payload"]

    assert len(got["rejection"]) == 1
    rejection = got["rejection"][0]
    assert rejection["kind"] == "rejection"
    assert rejection["code"] == "missing_field"
    assert rejection["field"] == "event"
    assert "event name" in rejection["message"]
    assert rejection["endpoint"] == "track"
    assert rejection["payload"]["messageId"] == "sse-bad-1"


def test_the_stream_reports_a_bad_message_of_a_batch_by_index(live: Live) -> None:
    with httpx.stream(
        "GET",
        live.stream_url,
        headers=live.admin,
        params={"max_seconds": 60},
        timeout=httpx.Timeout(10, read=30),
    ) as stream:
        incoming = messages(stream.iter_lines())
        assert "connected" in next(incoming).comments
        res = httpx.post(
            f"{live.server.url}/v1/batch",
            json={
                "writeKey": live.creds.write_key,
                "batch": [
                    {"type": "identify", "userId": "u-2", "traits": {"plan": "pro"}},
                    {"type": "group", "userId": "u-2"},
                ],
            },
        )
        assert res.status_code == 200, res.text
        assert res.json()["accepted"] == 1
        deadline = time.monotonic() + 30
        kinds: dict[str, dict[str, Any]] = {}
        for message in incoming:
            if message.event:
                kinds[message.event] = message.json()
            if len(kinds) == 2 or time.monotonic() > deadline:
                break
    assert kinds["event"]["type"] == "identify"
    assert kinds["rejection"]["index"] == 1
    assert kinds["rejection"]["field"] == "groupId"
    assert kinds["rejection"]["endpoint"] == "batch"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer tdk_not-a-token", "Basic d2s6", "Bearer"],
    ids=["none", "unknown-token", "basic", "bare-bearer"],
)
def test_the_stream_needs_an_admin_token(live: Live, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.stream("GET", live.stream_url, headers=headers, timeout=10) as stream:
        stream.read()
        assert stream.status_code == 401
        assert stream.json()["success"] is False


def test_a_write_key_does_not_open_the_stream(live: Live) -> None:
    res = httpx.get(live.stream_url, headers={"Authorization": f"Bearer {live.creds.write_key}"})
    assert res.status_code == 401


def test_the_stream_of_an_unknown_source_is_a_404(live: Live) -> None:
    res = httpx.get(
        f"{live.server.url}/v1/sources/src_nope/events/stream", headers=live.admin, timeout=10
    )
    assert res.status_code == 404
    assert res.json()["code"] == "source_not_found"
