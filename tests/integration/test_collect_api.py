"""The collection API over HTTP, on SQLite and PostgreSQL (fixture ``db_url``)."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tidings.testing import Credentials

TRACK = {"userId": "u-1", "event": "Product Viewed", "properties": {"sku": "A-1", "price": 12.5}}


def basic(key: str, colon: bool = True) -> dict[str, str]:
    raw = f"{key}:" if colon else key
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


def stored(client: TestClient, creds: Credentials, admin: dict[str, str]) -> list[dict[str, Any]]:
    """Stored events of the test source, oldest first."""
    r = client.get(f"/v1/sources/{creds.source_id}/events?limit=1000", headers=admin)
    assert r.status_code == 200, r.text
    return [e["payload"] for e in reversed(r.json()["events"])]


def rejections(client: TestClient, creds: Credentials, admin: dict[str, str]) -> list[dict]:
    r = client.get(f"/v1/sources/{creds.source_id}/events?kind=rejection", headers=admin)
    return list(reversed(r.json()["rejections"]))


# -- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["basic", "basic-no-colon", "body", "bearer-key"])
def test_each_way_of_sending_the_write_key_is_accepted(
    client: TestClient, creds: Credentials, admin: dict[str, str], how: str
) -> None:
    body: dict[str, Any] = dict(TRACK)
    headers: dict[str, str] = {}
    if how == "basic":
        headers = basic(creds.write_key)
    elif how == "basic-no-colon":
        headers = basic(creds.write_key, colon=False)
    elif how == "body":
        body["writeKey"] = creds.write_key
    else:
        headers = {"Authorization": f"Bearer {creds.write_key}"}
    r = client.post("/v1/track", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True}
    [event] = stored(client, creds, admin)
    assert event["event"] == "Product Viewed"
    assert "writeKey" not in event


def test_admin_bearer_token_with_write_key_in_body(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    ok = client.post("/v1/track", json={**TRACK, "writeKey": creds.write_key}, headers=admin)
    assert ok.status_code == 200
    missing = client.post("/v1/track", json=TRACK, headers=admin)
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_write_key"


@pytest.mark.parametrize(
    ("headers", "body_key", "code"),
    [
        ({}, None, "missing_write_key"),
        (
            {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()},
            None,
            "invalid_write_key",
        ),
        ({"Authorization": "Basic %%%"}, None, "invalid_authorization"),
        ({"Authorization": "Bearer nope"}, None, "invalid_token"),
        ({"Authorization": "Digest abc"}, None, "bad_auth_scheme"),
        ({}, "not-a-key", "invalid_write_key"),
    ],
)
def test_wrong_or_missing_key_is_401_with_a_reason(
    client: TestClient, headers: dict[str, str], body_key: str | None, code: str
) -> None:
    body = dict(TRACK) | ({"writeKey": body_key} if body_key else {})
    r = client.post("/v1/track", json=body, headers=headers)
    assert r.status_code == 401
    assert r.json()["success"] is False
    assert r.json()["code"] == code
    assert r.json()["message"]


# -- endpoints -----------------------------------------------------------------------------------

MESSAGES = {
    "track": {"userId": "u", "event": "Signed Up"},
    "identify": {"userId": "u", "traits": {"email": "u@example.com"}},
    "page": {"anonymousId": "a", "name": "Home", "properties": {"path": "/"}},
    "screen": {"userId": "u", "name": "Cart"},
    "group": {"userId": "u", "groupId": "g-1", "traits": {"plan": "gold"}},
    "alias": {"previousId": "a", "userId": "u"},
}


@pytest.mark.parametrize("type_", list(MESSAGES))
def test_long_and_short_paths_store_the_type_the_path_names(
    client: TestClient, creds: Credentials, admin: dict[str, str], type_: str
) -> None:
    for path in (f"/v1/{type_}", f"/v1/{type_[0]}"):
        # The path decides the type, whatever the body says.
        body = {**MESSAGES[type_], "type": "track" if type_ != "track" else "page"}
        r = client.post(path, content=orjson.dumps(body), headers=basic(creds.write_key))
        assert r.status_code == 200, (path, r.text)
    events = stored(client, creds, admin)
    assert [e["type"] for e in events] == [type_, type_]


def test_text_plain_bodies_as_analytics_js_sends_them(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    body = {"userId": None, "anonymousId": "anon-1", "event": "Clicked", "writeKey": "x"}
    body["writeKey"] = creds.write_key
    r = client.post("/v1/t", content=orjson.dumps(body), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    [event] = stored(client, creds, admin)
    assert event["anonymousId"] == "anon-1"
    assert "userId" not in event  # JSON null counts as absent


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import", "/v1/b"])
def test_batch_aliases_store_every_message(
    client: TestClient, creds: Credentials, admin: dict[str, str], path: str
) -> None:
    batch = [{**m, "type": t} for t, m in MESSAGES.items()]
    r = client.post(path, json={"batch": batch}, headers=basic(creds.write_key))
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "accepted": 6}
    assert [e["type"] for e in stored(client, creds, admin)] == list(MESSAGES)


def test_batch_context_is_merged_into_each_message(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    body = {
        "writeKey": creds.write_key,
        "context": {"library": {"name": "batch-lib"}, "locale": "fr-FR"},
        "batch": [
            {"type": "track", "userId": "u", "event": "A"},
            {"type": "track", "userId": "u", "event": "B", "context": {"locale": "de-DE"}},
        ],
    }
    assert client.post("/v1/batch", json=body).status_code == 200
    first, second = stored(client, creds, admin)
    assert first["context"] == {"library": {"name": "batch-lib"}, "locale": "fr-FR"}
    assert second["context"] == {"library": {"name": "batch-lib"}, "locale": "de-DE"}


def test_gzip_request_bodies(client: TestClient, creds: Credentials, admin: dict[str, str]) -> None:
    body = gzip.compress(orjson.dumps({"batch": [{**TRACK, "type": "track"}] * 3}))
    r = client.post(
        "/v1/batch",
        content=body,
        headers={**basic(creds.write_key), "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    assert len(stored(client, creds, admin)) == 3


def test_broken_gzip_and_unknown_encodings_are_4xx(client: TestClient, creds: Credentials) -> None:
    h = basic(creds.write_key)
    broken = client.post(
        "/v1/track", content=b"not gzip", headers={**h, "Content-Encoding": "gzip"}
    )
    assert broken.status_code == 400
    assert broken.json()["code"] == "invalid_encoding"
    br = client.post("/v1/track", content=b"x", headers={**h, "Content-Encoding": "br"})
    assert br.status_code == 415
    assert br.json()["field"] == "Content-Encoding"


def test_gzip_bomb_is_refused_without_inflating_it(client: TestClient, creds: Credentials) -> None:
    bomb = gzip.compress(b'{"batch":[' + b" " * 50_000_000 + b"]}")
    assert len(bomb) < 100_000
    r = client.post(
        "/v1/batch", content=bomb, headers={**basic(creds.write_key), "Content-Encoding": "gzip"}
    )
    assert r.status_code == 400
    assert r.json()["code"] == "payload_too_large"


@pytest.mark.parametrize("body", [b"{nope", b"", b"[1,2]", b'"text"'])
def test_invalid_json_is_400(client: TestClient, creds: Credentials, body: bytes) -> None:
    r = client.post("/v1/track", content=body, headers=basic(creds.write_key))
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_json"


# -- validation and limits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field", "code"),
    [
        ("/v1/track", {"event": "X"}, "userId", "no_user_anon_id"),
        (
            "/v1/track",
            {"userId": None, "anonymousId": None, "event": "X"},
            "userId",
            "no_user_anon_id",
        ),
        ("/v1/track", {"userId": "u"}, "event", "missing_field"),
        ("/v1/track", {"userId": "u", "event": ""}, "event", "missing_field"),
        ("/v1/group", {"userId": "u"}, "groupId", "missing_field"),
        ("/v1/alias", {"userId": "u"}, "previousId", "missing_field"),
        ("/v1/alias", {"previousId": "a"}, "userId", "missing_field"),
        (
            "/v1/track",
            {"userId": "u", "event": "X", "messageId": "m" * 101},
            "messageId",
            "too_long",
        ),
        ("/v1/track", {"userId": "u", "event": "X", "messageId": 5}, "messageId", "invalid_type"),
        ("/v1/track", {"userId": ["u"], "event": "X"}, "userId", "invalid_type"),
        (
            "/v1/track",
            {"userId": "u", "event": "X", "properties": [1]},
            "properties",
            "invalid_type",
        ),
        ("/v1/identify", {"userId": "u", "traits": "gold"}, "traits", "invalid_type"),
        (
            "/v1/track",
            {"userId": "u", "event": "X", "timestamp": "yesterday"},
            "timestamp",
            "invalid_timestamp",
        ),
        ("/v1/track", {"userId": "u", "event": "X", "sentAt": 17}, "sentAt", "invalid_timestamp"),
    ],
)
def test_bad_single_events_are_400_naming_the_field_and_recorded(
    client: TestClient,
    creds: Credentials,
    admin: dict[str, str],
    path: str,
    body: dict[str, Any],
    field: str,
    code: str,
) -> None:
    r = client.post(path, json=body, headers=basic(creds.write_key))
    assert r.status_code == 400, r.text
    assert (r.json()["field"], r.json()["code"]) == (field, code)
    assert stored(client, creds, admin) == []
    [rejection] = rejections(client, creds, admin)
    assert (rejection["field"], rejection["code"]) == (field, code)


def test_a_batch_with_some_bad_events_keeps_the_good_ones(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "Good 0"},
        {"type": "track", "userId": "u"},
        {"type": "nonsense", "userId": "u"},
        {"type": "identify", "userId": "u", "traits": {"x": 1}},
        "not an object",
    ]
    r = client.post("/v1/batch", json={"batch": batch}, headers=basic(creds.write_key))
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 2
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [
        (1, "event"),
        (2, "type"),
        (4, None),
    ]
    assert [e.get("event") for e in stored(client, creds, admin)] == ["Good 0", None]
    counts = client.get(f"/v1/sources/{creds.source_id}/events", headers=admin).json()
    assert counts["rejection_counts"] == {"missing_field": 1, "invalid_type": 2}


def test_a_batch_with_only_bad_events_is_400_with_each_reason(
    client: TestClient, creds: Credentials
) -> None:
    r = client.post(
        "/v1/batch", json={"batch": [{"type": "track"}]}, headers=basic(creds.write_key)
    )
    assert r.status_code == 400
    assert r.json()["rejected"][0]["code"] == "no_user_anon_id"


def test_single_event_over_32kb_is_refused(client: TestClient, creds: Credentials) -> None:
    body = {**TRACK, "properties": {"blob": "x" * (32 * 1024)}}
    r = client.post("/v1/track", json=body, headers=basic(creds.write_key))
    assert r.status_code == 400
    assert r.json()["code"] == "payload_too_large"
    assert "Exceed payload limit" in r.json()["message"]


def test_batch_event_over_32kb_is_rejected_by_index(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    big = {"type": "track", "userId": "u", "event": "Big", "properties": {"b": "x" * 33_000}}
    small = {"type": "track", "userId": "u", "event": "Small"}
    r = client.post("/v1/batch", json={"batch": [small, big]}, headers=basic(creds.write_key))
    assert r.status_code == 200
    assert r.json()["rejected"] == [
        {
            "index": 1,
            "code": "event_too_large",
            "field": None,
            "message": r.json()["rejected"][0]["message"],
        }
    ]
    assert [e["event"] for e in stored(client, creds, admin)] == ["Small"]


def test_batch_over_500kb_is_refused(client: TestClient, creds: Credentials) -> None:
    batch = [{"type": "track", "userId": "u", "event": "E", "properties": {"p": "x" * 20_000}}] * 26
    r = client.post("/v1/batch", json={"batch": batch}, headers=basic(creds.write_key))
    assert r.status_code == 400
    assert r.json()["code"] == "payload_too_large"


def test_batch_over_2500_events_is_refused_with_the_count(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    batch = [{"type": "track", "userId": "u", "event": "E"}] * 2501
    r = client.post("/v1/batch", json={"batch": batch}, headers=basic(creds.write_key))
    assert r.status_code == 400
    assert r.json()["code"] == "batch_too_large"
    assert "2501" in r.json()["message"]
    assert stored(client, creds, admin) == []
    ok = client.post("/v1/batch", json={"batch": batch[:2500]}, headers=basic(creds.write_key))
    assert ok.json()["accepted"] == 2500


def test_batch_must_be_an_array(client: TestClient, creds: Credentials) -> None:
    r = client.post("/v1/batch", json={"batch": {"a": 1}}, headers=basic(creds.write_key))
    assert r.status_code == 400
    assert r.json()["field"] == "batch"


# -- message ids and deduplication ---------------------------------------------------------------


def test_missing_message_id_is_generated(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    client.post("/v1/track", json=TRACK, headers=basic(creds.write_key))
    client.post("/v1/track", json=TRACK, headers=basic(creds.write_key))
    ids = [e["messageId"] for e in stored(client, creds, admin)]
    assert len(ids) == 2
    assert len(set(ids)) == 2
    assert all(0 < len(i) <= 100 for i in ids)


def test_retries_with_the_same_message_id_are_stored_once(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    body = {**TRACK, "messageId": "retry-1"}
    for _ in range(3):
        assert (
            client.post("/v1/track", json=body, headers=basic(creds.write_key)).status_code == 200
        )
    batch = {"batch": [{**body, "type": "track"}, {**body, "type": "track"}]}
    assert client.post("/v1/batch", json=batch, headers=basic(creds.write_key)).status_code == 200
    assert [e["messageId"] for e in stored(client, creds, admin)] == ["retry-1"]


def test_deduplication_is_per_source(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    other = client.post("/v1/sources", json={"name": "App"}, headers=admin).json()
    body = {**TRACK, "messageId": "shared-id"}
    client.post("/v1/track", json=body, headers=basic(creds.write_key))
    client.post("/v1/track", json=body, headers=basic(other["write_key"]))
    mine = client.get(f"/v1/sources/{creds.source_id}/events", headers=admin).json()["events"]
    theirs = client.get(f"/v1/sources/{other['id']}/events", headers=admin).json()["events"]
    assert len(mine) == len(theirs) == 1


# -- timestamps ----------------------------------------------------------------------------------


def test_clock_skew_is_corrected(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    # The clock fixture says 2026-11-23T12:00:00Z; the device clock is two hours behind.
    body = {
        **TRACK,
        "originalTimestamp": "2026-11-23T10:00:00Z",
        "sentAt": "2026-11-23T10:00:05Z",
    }
    client.post("/v1/track", json=body, headers=basic(creds.write_key))
    [event] = stored(client, creds, admin)
    assert event["receivedAt"] == "2026-11-23T12:00:00.000Z"
    assert event["timestamp"] == "2026-11-23T11:59:55.000Z"
    assert event["originalTimestamp"] == "2026-11-23T10:00:00Z"
    assert event["sentAt"] == "2026-11-23T10:00:05Z"


def test_batch_sent_at_applies_to_each_message(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    body = {
        "sentAt": "2026-11-23T11:00:10+00:00",
        "batch": [
            {**TRACK, "type": "track", "timestamp": "2026-11-23T11:00:00+00:00"},
            {**TRACK, "type": "track", "timestamp": "2026-11-23T11:00:04+00:00"},
        ],
    }
    client.post("/v1/batch", json=body, headers=basic(creds.write_key))
    assert [e["timestamp"] for e in stored(client, creds, admin)] == [
        "2026-11-23T11:59:50.000Z",
        "2026-11-23T11:59:54.000Z",
    ]


def test_without_sent_at_the_given_time_is_kept_and_without_any_it_is_received_at(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    historical = {**TRACK, "timestamp": "2025-01-02T03:04:05.678+01:00"}
    client.post(
        "/v1/import",
        json={"batch": [{**historical, "type": "track"}]},
        headers=basic(creds.write_key),
    )
    client.post("/v1/track", json=TRACK, headers=basic(creds.write_key))
    first, second = stored(client, creds, admin)
    assert first["timestamp"] == "2025-01-02T02:04:05.678Z"
    assert second["timestamp"] == "2026-11-23T12:00:00.000Z"


def test_unparsable_batch_sent_at_is_400(client: TestClient, creds: Credentials) -> None:
    body = {"sentAt": "now", "batch": [{**TRACK, "type": "track"}]}
    r = client.post("/v1/batch", json=body, headers=basic(creds.write_key))
    assert r.status_code == 400
    assert (r.json()["field"], r.json()["code"]) == ("sentAt", "invalid_timestamp")


def test_context_direct_records_the_callers_ip(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    client.post(
        "/v1/track", json={**TRACK, "context": {"direct": True}}, headers=basic(creds.write_key)
    )
    client.post("/v1/track", json=TRACK, headers=basic(creds.write_key))
    direct, plain = stored(client, creds, admin)
    assert direct["context"]["ip"] == "testclient"
    assert "context" not in plain


# -- the fast path ahead of the router ----------------------------------------------------------


def test_fast_path_answers_exactly_as_the_routed_handlers(
    settings: Any, creds: Credentials, clock: Any
) -> None:
    """CollectFastPath serves the ingest POSTs ahead of FastAPI's router; with it removed, the
    router's copies of the same routes must give the same status, body and CORS headers."""
    from tidings.app import create_app
    from tidings.collect.fastpath import CollectFastPath

    def answers(app: Any) -> list[tuple[int, Any, str | None]]:
        out = []
        origin = {"Origin": "https://shop.example"}
        with TestClient(app) as c:
            for path, body, headers in [
                ("/v1/track", TRACK, basic(creds.write_key)),
                ("/v1/t", {**TRACK, "writeKey": creds.write_key}, {}),
                ("/v1/track", {"userId": "u-1"}, basic(creds.write_key)),
                ("/v1/identify", {"traits": {}}, basic(creds.write_key)),
                ("/v1/track", TRACK, basic("wrong-key")),
                (
                    "/v1/batch",
                    {"batch": [{**TRACK, "type": "track"}, {"type": "x"}]},
                    basic(creds.write_key),
                ),
                ("/v1/b", {"batch": "x"}, basic(creds.write_key)),
            ]:
                r = c.post(path, content=orjson.dumps(body), headers={**headers, **origin})
                out.append((r.status_code, r.json(), r.headers.get("access-control-allow-origin")))
            r = c.post("/v1/track", content=b"{not json", headers=basic(creds.write_key))
            out.append((r.status_code, r.json(), None))
        return out

    fast = create_app(settings, clock)
    routed = create_app(settings, clock)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not CollectFastPath]
    assert len(routed.user_middleware) == len(fast.user_middleware) - 1
    got_fast, got_routed = answers(fast), answers(routed)
    assert [a[0] for a in got_fast] == [200, 200, 400, 400, 401, 200, 400, 400]
    assert got_fast == got_routed
    assert got_fast[0][2] == "*"  # CORS still wraps the fast path
